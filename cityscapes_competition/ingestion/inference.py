"""Running a participant's model over the test images: decode, predict, post-process, write.

Three stages overlap: reader threads decode and resize the next images, the main thread runs the
model batch by batch, writer threads turn each output into the result files. Every queue between
them is bounded, so memory stays flat whatever the number of images.

Post-processing of one image: the model's class scores, at whatever resolution it outputs, are
upsampled bilinearly to the image's size before the argmax; trainIds are mapped to labelIds.
Instances come from the semantic prediction: the connected components (8-connected) of each
instance class, each with the mean probability of its class as confidence, at least
``min_area`` pixels, the ``max_per_image`` highest-scoring kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import write_result_file
from ..core.errors import SubmissionError
from ..core.labels import NUM_LABEL_IDS, id2label
from ..core.naming import FrameId
from ..png.png_io import PngReadError, read_rgb
from ..png.png_write import encode_mask_png, encode_png
from .components import instance_components
from .output_kind import declared_output_kind, looks_like_probabilities
from .submission_metadata import InferenceSettings
from .upsampling import SourcePositions, upsampled_argmax, upsampled_run_sums

TRAIN_ID_TO_LABEL_ID = np.array(
    [
        label_id
        for _, label_id in sorted((id2label[i].trainId, i) for i in range(NUM_LABEL_IDS) if id2label[i].trainId < 255)
    ],
    np.uint8,
)
CHANNELS = {"trainIds": len(TRAIN_ID_TO_LABEL_ID), "labelIds": NUM_LABEL_IDS}
_PNG_LEVEL = 2  # with Up rows: 2.0 ms and 21.9 KB per label map, against 2.4 ms and 21.2 KB at 3


@dataclass(frozen=True)
class TestImage:
    frame: FrameId
    path: Path
    city: str


@dataclass
class ModelOutput:
    """What the model said about one image, at the model's resolution."""

    image: TestImage
    size: tuple[int, int]  # (height, width) of the original image
    scores: np.ndarray  # (h, w, channels) float32


class OutputContract:
    """How to read the model's channels; settled on the first batch and checked on every one.

    With ``scores: auto``, whether they are probabilities comes from the model's graph (``output_kind``),
    else from the first batch's numbers at the output's precision.
    """

    def __init__(self, settings: InferenceSettings, declared: str | None = None, output_dtype: str | None = None):
        self.settings = settings
        self.channels = CHANNELS[settings.output]
        self.kind = (declared if settings.scores == "auto" else settings.scores) or None
        self.output_dtype = output_dtype

    def check(self, scores: np.ndarray, model_name: str) -> None:
        if scores.ndim != 4:
            raise SubmissionError(
                f"outputs a tensor of shape {tuple(scores.shape)}; one (batch, height, width, classes) "
                "tensor is needed",
                model_name,
                "End the model with a per-pixel classification layer, channels last.",
            )
        if scores.shape[-1] != self.channels:
            raise SubmissionError(
                f"outputs {scores.shape[-1]} channels but the metadata says output: {self.settings.output} "
                f"({self.channels} channels)",
                model_name,
                "Output 19 scores in trainId order (output: trainIds) or 34 in labelId order (output: labelIds).",
            )
        if not np.isfinite(scores).all():
            raise SubmissionError(
                "outputs NaN or infinite scores",
                model_name,
                "Check the model's weights and its input scaling (images come as RGB values 0..255).",
            )
        if self.kind is None:
            self.kind = "probabilities" if looks_like_probabilities(scores, self.output_dtype) else "logits"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.kind == "probabilities":
            return scores
        shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)


def load_test_image(image: TestImage, input_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB float32 0..255 at the model's input size (see ``resize_image``), and the original (height, width)."""
    try:
        pixels = read_rgb(image.path)
    except PngReadError as exc:
        raise SubmissionError(f"cannot be read as an image: it {exc}", image.path) from None
    original = (pixels.shape[0], pixels.shape[1])
    if input_size is None or original == tuple(input_size):
        return pixels.astype(np.float32), original
    return resize_image(pixels, input_size), original


def resize_image(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 RGB at ``size`` (height, width): bilinear, half-pixel centres, no antialiasing.

    Exactly ``tf.image.resize(pixels, size)`` with its defaults, as Keras' ``Resizing`` layer,
    ``cv2.resize`` and ``torch`` interpolate (align_corners=False) do it; at half the size each
    pixel is the mean of a 2x2 block.
    """
    import tensorflow as tf

    return tf.image.resize(np.ascontiguousarray(pixels), size).numpy()


class ResultWriter:
    """Turns model outputs into the scoring program's result files."""

    def __init__(self, output: Path, settings: InferenceSettings, contract: OutputContract):
        self.output, self.settings, self.contract = output, settings, contract
        self._lookup = (
            TRAIN_ID_TO_LABEL_ID if settings.output == "trainIds" else np.arange(NUM_LABEL_IDS, dtype=np.uint8)
        )
        self._channel_of = {int(label): channel for channel, label in enumerate(self._lookup)}  # label id -> channel
        self._made: set[Path] = set()

    def write(self, result: ModelOutput) -> int:
        """Write one image's pixel prediction and instances; returns the number of instances."""
        height, width = result.size
        label_ids = upsampled_argmax(result.scores, result.size, self._lookup)
        stem, city = result.image.frame.stem, result.image.city
        write_result_file(self._folder("pixel", city) / f"{stem}_labelIds.png", encode_png(label_ids, _PNG_LEVEL))
        instances = []
        if self.settings.instances.mode == "components":
            instances = self._instances(label_ids, result)
        self._write_instances(instances, city, stem, (height, width))
        return len(instances)

    def _instances(self, label_ids: np.ndarray, result: ModelOutput) -> list[Instance]:
        """Every component of at least ``min_area`` pixels, best first. Confidence: the mean over the
        component of its class's probability, upsampled bilinearly."""
        components = instance_components(label_ids, min_area=self.settings.instances.min_area)
        if not components:
            return []
        runs = [np.concatenate(parts) for parts in zip(*(component.runs for component in components), strict=True)]
        run_counts = [len(component.runs[0]) for component in components]
        channels = np.repeat([self._channel_of[component.label] for component in components], run_counts)
        sums = upsampled_run_sums(
            result.scores,
            SourcePositions.along(result.size[0], result.scores.shape[0]),
            SourcePositions.along(result.size[1], result.scores.shape[1]),
            (*runs, channels),
            self.contract.probabilities,
        )
        totals = np.add.reduceat(sums, np.cumsum(run_counts) - run_counts)
        found = [
            Instance(float(total) / component.area, component.label, component.mask, component.top, component.left)
            for component, total in zip(components, totals, strict=True)
        ]
        found.sort(key=lambda instance: -instance.confidence)
        return found[: self.settings.instances.max_per_image]

    def _write_instances(self, instances: list[Instance], city: str, stem: str, size: tuple[int, int]) -> None:
        folder = self._folder("instance", city)
        masks = self._folder("instance", city, "masks") if instances else folder
        lines = []
        for k, instance in enumerate(instances):
            name = f"{stem}_{k:03d}.png"
            write_result_file(masks / name, instance.png(size))
            lines.append(f"masks/{name} {instance.label} {instance.confidence:.6f}\n")
        write_result_file(folder / f"{stem}.txt", "".join(lines).encode())

    def _folder(self, *parts: str) -> Path:
        folder = self.output.joinpath(*parts)
        if folder not in self._made:  # one mkdir per folder, not per file
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return folder


@dataclass(frozen=True)
class Instance:
    """One connected component of an instance class: its mask is ``crop`` placed at (top, left)."""

    confidence: float
    label: int
    crop: np.ndarray  # bool, the component's bounding box
    top: int
    left: int

    def png(self, size: tuple[int, int]) -> bytes:
        return encode_mask_png(size, self.crop, self.top, self.left)


class Progress:
    """Images/s and time left on stdout, which the platform shows to the participant."""

    def __init__(self, total: int, every_seconds: float = 10.0, stream=None):
        self.total, self.every, self.stream = total, every_seconds, stream or sys.stdout
        self.start = time.perf_counter()
        self.last = self.start  # the first line after ``every_seconds``: the first images' rate and ETA mislead
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.perf_counter()) - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float) -> str:
        rate = self.rate(now)
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        eta = "?" if math.isinf(left) else _duration(left)
        return f"{self.done}/{self.total} images, {rate:.2f} images/s, {_duration(now - self.start)} elapsed, ETA {eta}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@dataclass(frozen=True)
class RunSummary:
    images: int
    instances: int
    seconds: float
    model_seconds: float


def run_inference(
    model,
    images: list[TestImage],
    output: Path,
    settings: InferenceSettings,
    model_name: str,
    input_size: tuple[int, int] | None,
    progress: Progress | None = None,
    time_budget: float | None = None,
) -> RunSummary:
    """Predict every image and write the results; raise SubmissionError on a bad output or budget.

    ``time_budget`` (seconds from now) defaults to the metadata's ``time_budget_seconds``.
    """
    contract = OutputContract(settings, declared_output_kind(model), _output_dtype(model))
    writer = ResultWriter(output, settings, contract)
    workers = max(1, min(2, os.cpu_count() or 1))
    start, model_seconds, instances = time.perf_counter(), 0.0, 0
    budget = _Budget(time_budget if time_budget is not None else settings.time_budget_seconds, len(images), start)
    with (
        ThreadPoolExecutor(workers, "read", initializer=_yield_to_the_model) as readers,
        ThreadPoolExecutor(workers, "write", initializer=_yield_to_the_model) as writers,
    ):
        pending_writes: deque[Future] = deque()
        predicted = 0
        for batch in _batches(readers, images, input_size, settings.batch_size, lookahead=2 * workers + 2):
            tick = time.perf_counter()
            budget.before_batch(predicted, tick)
            scores = _predict(model, np.stack([pixels for _, pixels, _ in batch]), model_name)
            model_seconds += time.perf_counter() - tick
            predicted += len(batch)
            budget.after_batch(predicted, time.perf_counter())
            contract.check(scores, model_name)
            for (image, _, size), image_scores in zip(batch, scores, strict=True):
                pending_writes.append(writers.submit(writer.write, ModelOutput(image, size, image_scores)))
            while len(pending_writes) > 2 * workers + settings.batch_size:
                instances += pending_writes.popleft().result()
                _advance(progress, budget)
        while pending_writes:
            instances += pending_writes.popleft().result()
            _advance(progress, budget)
    return RunSummary(len(images), instances, time.perf_counter() - start, model_seconds)


def _output_dtype(model) -> str | None:
    try:
        return str(model.outputs[0].dtype)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _yield_to_the_model() -> None:
    """Lower this thread's priority: the model's threads split each operation in equal shares, so a
    share delayed by decoding or post-processing stalls the whole operation; these run in its gaps."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HELPER_NICENESS)


_HELPER_NICENESS = 10


def _advance(progress: Progress | None, budget: _Budget) -> None:
    if progress is not None:
        progress.advance()


def _batches(
    readers: ThreadPoolExecutor, images: list[TestImage], input_size, batch_size: int, lookahead: int
) -> Iterator[list[tuple[TestImage, np.ndarray, tuple[int, int]]]]:
    """Batches of decoded images, decoding at most ``lookahead`` images ahead."""
    loads: deque[tuple[TestImage, Future]] = deque()
    upcoming = iter(images)
    batch = []
    while True:
        while len(loads) < lookahead:
            image = next(upcoming, None)
            if image is None:
                break
            loads.append((image, readers.submit(load_test_image, image, input_size)))
        if not loads:
            break
        image, future = loads.popleft()
        pixels, size = future.result()
        if batch and pixels.shape != batch[0][1].shape:
            yield batch  # differently sized images go in separate batches
            batch = []
        batch.append((image, pixels, size))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _predict(model, batch: np.ndarray, model_name: str) -> np.ndarray:
    from .model_loading import short_reason

    try:
        outputs = model.predict_on_batch(batch)
    except Exception as error:  # the model's own failure (shapes, memory): the participant's to fix
        raise SubmissionError(
            f"failed on a batch of shape {tuple(batch.shape)}: {short_reason(error)}",
            model_name,
            "Check input_size and batch_size in the metadata against the model's input, or run the starting "
            "kit's check_submission.py, which runs the model the same way.",
        ) from None
    if isinstance(outputs, list | tuple | dict):
        raise SubmissionError(
            f"has {len(outputs)} outputs; one (batch, height, width, classes) output is needed",
            model_name,
            "Export a model with a single segmentation output.",
        )
    return np.asarray(outputs, dtype=np.float32)


class _Budget:
    """Stops a run that will not finish within the time budget, and says why, before the platform kills it."""

    def __init__(self, budget: float | None, total: int, start: float, counted_before_projecting: int = 2):
        self.budget, self.total, self.start = budget, total, start
        self.counted_before_projecting = counted_before_projecting
        self.first_batch: tuple[int, float] | None = None  # (images predicted, when) after the first batch
        self.batch_started, self.batches, self.batch_seconds = start, 0, 0.0

    def after_batch(self, predicted: int, now: float) -> None:
        """Project the run from the model's own pace: images predicted, not results written (the writers lag
        the model, and in bursts: a short run's pace looked 15 times faster than it was), from the end of the
        first batch on (it traces the model)."""
        if self.budget is None:
            return
        if self.first_batch is None:
            self.first_batch = (predicted, now)
            return
        counted = predicted - self.first_batch[0]
        if counted < self.counted_before_projecting:
            return
        per_image = (now - self.first_batch[1]) / counted
        projected = (now - self.start) + per_image * (self.total - predicted)
        if projected > self.budget:
            raise SubmissionError(
                f"the model takes {per_image:.2f} s per image, so {self.total} images would take about "
                f"{projected:.0f} s, more than the time budget of {self.budget:.0f} s",
                "submission",
                _BUDGET_FIX,
            )

    def before_batch(self, predicted: int, now: float) -> None:
        """Stop before a batch that would end after the budget. The projection in ``advance`` starts only
        after the warm-up and trusts the mean pace, and between two of its checks a whole batch runs."""
        last = now - self.batch_started
        self.batch_started, self.batches, self.batch_seconds = now, self.batches + 1, self.batch_seconds + last
        if self.budget is None:
            return
        pace = max(last, self.batch_seconds / self.batches)  # seconds per batch, the main thread's whole cycle
        elapsed = now - self.start
        if elapsed + _NEXT_BATCH_FACTOR * pace > self.budget:
            raise SubmissionError(
                f"stopped after {predicted} of {self.total} images: {elapsed:.0f} s of the time budget of "
                f"{self.budget:.0f} s are spent and a batch takes about {pace:.1f} s",
                "submission",
                _BUDGET_FIX,
            )


# Measured from the second batch on (before the first, which traces the model, only the wait for its images is
# known): a batch took up to 1.56x the larger of the
# last and the mean batch time (192 batches: 3 whole runs each of the reference model and the baseline over 48
# 2048x1024 images, twice, on a shared 2-core machine at load 4-6). Counted twice.
_NEXT_BATCH_FACTOR = 2.0
_BUDGET_FIX = "Use a smaller input_size or a lighter model (the starting kit's check projects the time)."
