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

import math
import os
import sys
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
from .png_write import encode_png
from .submission_metadata import InferenceSettings

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

    def write(self, result: ModelOutput) -> int:
        """Write one image's pixel prediction and instances; returns the number of instances."""
        height, width = result.size
        label_ids = self._label_ids(self._upsampled_argmax(result.scores, result.size))
        stem, city = result.image.frame.stem, result.image.city
        pixel_path = self.output / "pixel" / city / f"{stem}_labelIds.png"
        write_bytes_atomic(pixel_path, encode_png(label_ids, _PNG_LEVEL), durable=False)
        instances = []
        if self.settings.instances.mode == "components":
            instances = self._instances(label_ids, result)
        self._write_instances(instances, city, stem, (height, width))
        return len(instances)

    def _upsampled_argmax(self, scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return upsampled_argmax(scores, size)

    def _label_ids(self, winners: np.ndarray) -> np.ndarray:
        if self.settings.output == "trainIds":
            return TRAIN_ID_TO_LABEL_ID[winners]
        return winners.astype(np.uint8)

    def _instances(self, label_ids: np.ndarray, result: ModelOutput) -> list[tuple[float, int, np.ndarray]]:
        """(confidence, label id, mask) of every kept component, best first.

        Each class is handled inside its bounding box only, found for all classes in one pass.
        """
        boxes = ndimage.find_objects(label_ids, max_label=NUM_LABEL_IDS - 1)
        present = [label for label in INSTANCE_CLASS_IDS if boxes[label - 1] is not None]
        if not present:
            return []
        probabilities = self.contract.probabilities(result.scores)
        found = []
        for label in present:
            box = boxes[label - 1]
            channel = probabilities[..., self._channel(label)]
            crop_probability = bilinear_crop(channel, result.size, box)
            found += self._components(label_ids[box] == label, crop_probability, label, box, result.size)
        found.sort(key=lambda item: -item[0])
        return found[: self.settings.instances.max_per_image]

    def _channel(self, label_id: int) -> int:
        if self.settings.output == "trainIds":
            return int(np.flatnonzero(TRAIN_ID_TO_LABEL_ID == label_id)[0])
        return label_id

    def _components(
        self, region: np.ndarray, probability: np.ndarray, label: int, box: tuple[slice, slice], size: tuple[int, int]
    ) -> list:
        components, count = ndimage.label(region, structure=_EIGHT_CONNECTED)
        if count == 0:
            return []
        areas = np.bincount(components.ravel(), minlength=count + 1)
        sums = np.bincount(components.ravel(), weights=probability.ravel(), minlength=count + 1)
        kept = []
        for index, inner in enumerate(ndimage.find_objects(components), start=1):
            if inner is None or areas[index] < self.settings.instances.min_area:
                continue
            mask = np.zeros(size, bool)
            rows = slice(box[0].start + inner[0].start, box[0].start + inner[0].stop)
            cols = slice(box[1].start + inner[1].start, box[1].start + inner[1].stop)
            mask[rows, cols] = components[inner] == index
            kept.append((float(sums[index] / areas[index]), label, mask))
        return kept

    def _write_instances(self, instances: list, city: str, stem: str, size: tuple[int, int]) -> None:
        folder = self.output / "instance" / city
        lines = []
        for k, (confidence, label, mask) in enumerate(instances):
            name = f"masks/{stem}_{k:03d}.png"
            write_bytes_atomic(folder / name, encode_png(mask, _PNG_LEVEL), durable=False)
            lines.append(f"{name} {label} {confidence:.6f}\n")
        write_bytes_atomic(folder / f"{stem}.txt", "".join(lines).encode(), durable=False)


def _source_positions(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling with half-pixel centres (as tf.image.resize): lower index, upper index, weight."""
    position = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, in_size - 1)
    lower = np.floor(position).astype(np.intp)
    return lower, np.minimum(lower + 1, in_size - 1), (position - lower).astype(np.float32)


def bilinear_crop(values: np.ndarray, size: tuple[int, int], box: tuple[slice, slice]) -> np.ndarray:
    """The ``box`` of ``values`` (h, w) upsampled bilinearly to ``size``, computing only the box."""
    rows = [array[box[0]] for array in _source_positions(size[0], values.shape[0])]
    cols = [array[box[1]] for array in _source_positions(size[1], values.shape[1])]
    along_rows = values[rows[0]] * (1 - rows[2])[:, None] + values[rows[1]] * rows[2][:, None]
    return along_rows[:, cols[0]] * (1 - cols[2]) + along_rows[:, cols[1]] * cols[2]


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """argmax over classes of ``scores`` (h, w, classes) upsampled bilinearly to ``size``.

    Interpolating along rows first is cheap (few columns). Along columns, each output pixel mixes
    two neighbouring vectors; a convex mix of two vectors with the same argmax keeps that argmax,
    so only the pixels between columns whose argmax differs need the full computation.
    """
    if scores.shape[:2] == size:
        return np.argmax(scores, axis=-1).astype(np.uint8)
    rows, cols = _source_positions(size[0], scores.shape[0]), _source_positions(size[1], scores.shape[1])
    along_rows = scores[rows[0]] * (1 - rows[2])[:, None, None] + scores[rows[1]] * rows[2][:, None, None]
    winners = np.argmax(along_rows, axis=-1).astype(np.uint8)  # (height, low-res width); classes < 256
    right = np.minimum(np.arange(winners.shape[1]) + 1, winners.shape[1] - 1)
    disagree = (winners != winners[:, right])[:, cols[0]] & (cols[1] != cols[0])
    result = np.ascontiguousarray(winners[:, cols[0]])
    flat = np.flatnonzero(disagree)
    if len(flat) > _DENSE_SHARE * disagree.size:
        return _dense_argmax(scores, size)  # a noisy model: nearly every pixel is on a border
    if len(flat):
        ys, xs = np.divmod(flat, size[1])
        result[ys, xs] = np.argmax(_mix(along_rows[ys, cols[0][xs]], along_rows[ys, cols[1][xs]], cols[2][xs]), axis=-1)
    return result


_DENSE_SHARE = 0.3


def _mix(left: np.ndarray, right: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return left * (1 - weight)[..., None] + right * weight[..., None]


def _dense_argmax(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The same for every pixel: TensorFlow's multi-threaded resize is the fastest way."""
    import tensorflow as tf

    upsampled = tf.image.resize(scores[None], size, method="bilinear")[0]
    return tf.argmax(upsampled, axis=-1, output_type=tf.int32).numpy().astype(np.uint8)


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
) -> RunSummary:
    """Predict every image and write the results; raise SubmissionError on a bad output or budget."""
    contract = OutputContract(settings)
    writer = ResultWriter(output, settings, contract)
    workers = max(1, min(2, os.cpu_count() or 1))
    start, model_seconds, instances = time.perf_counter(), 0.0, 0
    budget = _Budget(settings.time_budget_seconds, len(images), start)
    with ThreadPoolExecutor(workers, "read") as readers, ThreadPoolExecutor(workers, "write") as writers:
        pending_writes: deque[Future] = deque()
        for batch in _batches(readers, images, input_size, settings.batch_size, lookahead=2 * workers + 2):
            tick = time.perf_counter()
            scores = _predict(model, np.stack([pixels for _, pixels, _ in batch]))
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


def _predict(model, batch: np.ndarray) -> np.ndarray:
    outputs = model.predict_on_batch(batch)
    if isinstance(outputs, list | tuple | dict):
        raise SubmissionError(
            f"has {len(outputs)} outputs; one (batch, height, width, classes) output is needed",
            getattr(model, "name", "model"),
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
