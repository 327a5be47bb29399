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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .atomic import write_bytes_atomic
from .errors import SubmissionError
from .labels import INSTANCE_CLASS_IDS, NUM_LABEL_IDS, id2label
from .naming import FrameId
from .png_write import encode_mask_png, encode_png
from .submission_metadata import InferenceSettings
from .upsampling import bilinear_crop, upsampled_argmax

TRAIN_ID_TO_LABEL_ID = np.array(
    [
        label_id
        for _, label_id in sorted((id2label[i].trainId, i) for i in range(NUM_LABEL_IDS) if id2label[i].trainId < 255)
    ],
    np.uint8,
)
CHANNELS = {"trainIds": len(TRAIN_ID_TO_LABEL_ID), "labelIds": NUM_LABEL_IDS}
_EIGHT_CONNECTED = np.ones((3, 3), bool)
_PNG_LEVEL = 3


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
    """How to read the model's channels; settled on the first batch and checked on every one."""

    def __init__(self, settings: InferenceSettings):
        self.settings = settings
        self.channels = CHANNELS[settings.output]
        self.kind = None if settings.scores == "auto" else settings.scores

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
            self.kind = "probabilities" if _looks_like_probabilities(scores) else "logits"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.kind == "probabilities":
            return scores
        shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)


def _looks_like_probabilities(scores: np.ndarray) -> bool:
    return bool(scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


def load_test_image(image: TestImage, input_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB float32 0..255 at the model's input size (bilinear), and the original (height, width)."""
    try:
        with Image.open(image.path) as picture:
            picture = picture.convert("RGB")
            original = (picture.height, picture.width)
            if input_size is not None and (picture.height, picture.width) != input_size:
                picture = picture.resize((input_size[1], input_size[0]), Image.Resampling.BILINEAR)
            return np.asarray(picture, dtype=np.float32), original
    except (OSError, ValueError) as exc:
        raise SubmissionError(f"cannot be read as an image ({exc})", image.path) from None


class ResultWriter:
    """Turns model outputs into the scoring program's result files."""

    def __init__(self, output: Path, settings: InferenceSettings, contract: OutputContract):
        self.output, self.settings, self.contract = output, settings, contract
        self._lookup = (
            TRAIN_ID_TO_LABEL_ID if settings.output == "trainIds" else np.arange(NUM_LABEL_IDS, dtype=np.uint8)
        )
        self._channel_of = {int(label): channel for channel, label in enumerate(self._lookup)}  # label id -> channel

    def write(self, result: ModelOutput) -> int:
        """Write one image's pixel prediction and instances; returns the number of instances."""
        height, width = result.size
        label_ids = upsampled_argmax(result.scores, result.size, self._lookup)
        stem, city = result.image.frame.stem, result.image.city
        pixel_path = self.output / "pixel" / city / f"{stem}_labelIds.png"
        write_bytes_atomic(pixel_path, encode_png(label_ids, _PNG_LEVEL), durable=False)
        instances = []
        if self.settings.instances.mode == "components":
            instances = self._instances(label_ids, result)
        self._write_instances(instances, city, stem, (height, width))
        return len(instances)

    def _instances(self, label_ids: np.ndarray, result: ModelOutput) -> list[Instance]:
        """Every kept component, best first; each class is labelled inside its own bounding box only."""
        found: list[Instance] = []
        probabilities = None
        for label, box in instance_class_boxes(label_ids):
            components, _ = ndimage.label(label_ids[box] == label, structure=_EIGHT_CONNECTED)
            for index, inner in enumerate(ndimage.find_objects(components), start=1):
                height, width = inner[0].stop - inner[0].start, inner[1].stop - inner[1].start
                if height * width < self.settings.instances.min_area:
                    continue  # even its whole box is too small: a noisy model's many specks cost no more
                crop = components[inner] == index
                area = int(np.count_nonzero(crop))
                if area < self.settings.instances.min_area:
                    continue
                if probabilities is None:
                    probabilities = self.contract.probabilities(result.scores)
                channel = probabilities[..., self._channel_of[label]]
                top, left = box[0].start + inner[0].start, box[1].start + inner[1].start
                where = (slice(top, top + crop.shape[0]), slice(left, left + crop.shape[1]))
                # The mean upsampled probability of the class over the component, computed on its box only.
                total = float(bilinear_crop(channel, result.size, where)[crop].sum(dtype=np.float64))
                found.append(Instance(total / area, label, crop, top, left))
        found.sort(key=lambda instance: -instance.confidence)
        return found[: self.settings.instances.max_per_image]

    def _write_instances(self, instances: list[Instance], city: str, stem: str, size: tuple[int, int]) -> None:
        folder = self.output / "instance" / city
        lines = []
        for k, instance in enumerate(instances):
            name = f"masks/{stem}_{k:03d}.png"
            write_bytes_atomic(folder / name, instance.png(size), durable=False)
            lines.append(f"{name} {instance.label} {instance.confidence:.6f}\n")
        write_bytes_atomic(folder / f"{stem}.txt", "".join(lines).encode(), durable=False)


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


_INSTANCE_BITS = np.zeros(256, np.uint8)
for _bit, _label in enumerate(INSTANCE_CLASS_IDS):  # 8 instance classes: one bit each
    _INSTANCE_BITS[_label] = 1 << _bit


def instance_class_boxes(label_ids: np.ndarray) -> list[tuple[int, tuple[slice, slice]]]:
    """(label id, box) covering every pixel of each instance class, tight and small.

    A class's box is split at the columns that hold none of its pixels: no 8-connected component
    crosses such a column, and the parts (e.g. the cars parked on either side of the street) are
    far smaller than their union's bounding box.
    """
    bits = _INSTANCE_BITS[label_ids]
    column_bits = np.bitwise_or.reduce(bits, axis=0)
    boxes = []
    for bit, label in enumerate(INSTANCE_CLASS_IDS):
        for first, stop in _runs(column_bits & (1 << bit) != 0):
            rows = np.flatnonzero(np.any(bits[:, first:stop] & (1 << bit), axis=1))
            boxes.append((label, (slice(rows[0], rows[-1] + 1), slice(first, stop))))
    return boxes


def _runs(present: np.ndarray) -> list[tuple[int, int]]:
    """[first, stop) of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], present, [False])).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


class Progress:
    """Images/s and time left on stdout, which the platform shows to the participant."""

    def __init__(self, total: int, every_seconds: float = 10.0, stream=None):
        self.total, self.every, self.stream = total, every_seconds, stream or sys.stdout
        self.start = time.perf_counter()
        self.last = -math.inf
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
    contract = OutputContract(settings)
    writer = ResultWriter(output, settings, contract)
    workers = max(1, min(2, os.cpu_count() or 1))
    start, model_seconds, instances = time.perf_counter(), 0.0, 0
    budget = _Budget(time_budget if time_budget is not None else settings.time_budget_seconds, len(images), start)
    with (
        ThreadPoolExecutor(workers, "read", initializer=_yield_to_the_model) as readers,
        ThreadPoolExecutor(workers, "write", initializer=_yield_to_the_model) as writers,
    ):
        pending_writes: deque[Future] = deque()
        for batch in _batches(readers, images, input_size, settings.batch_size, lookahead=2 * workers + 2):
            tick = time.perf_counter()
            scores = _predict(model, np.stack([pixels for _, pixels, _ in batch]), model_name)
            model_seconds += time.perf_counter() - tick
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


def _yield_to_the_model() -> None:
    """Lower this thread's priority: the model's threads split each operation in equal shares, so a
    share delayed by decoding or post-processing stalls the whole operation; these run in its gaps."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HELPER_NICENESS)


_HELPER_NICENESS = 10


def _advance(progress: Progress | None, budget: _Budget) -> None:
    if progress is not None:
        progress.advance()
    budget.advance()


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

    def __init__(self, budget: float | None, total: int, start: float, warmup: int = 2):
        self.budget, self.total, self.start, self.warmup = budget, total, start, warmup
        self.done = 0
        self.after_warmup: float | None = None

    def advance(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.done += 1
        if self.budget is None:
            return
        now = clock()
        if self.done == self.warmup:
            self.after_warmup = now
            return
        if self.after_warmup is None or self.done <= self.warmup + 2:
            return
        per_image = (now - self.after_warmup) / (self.done - self.warmup)
        projected = (now - self.start) + per_image * (self.total - self.done)
        if projected > self.budget:
            raise SubmissionError(
                f"the model takes {per_image:.2f} s per image, so {self.total} images would take about "
                f"{projected:.0f} s, more than the time budget of {self.budget:.0f} s",
                "submission",
                "Use a smaller input_size or a lighter model (the starting kit's check projects the time).",
            )
