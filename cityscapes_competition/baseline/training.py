"""Training the baseline model on data in the Cityscapes layout (the synthetic split or a real download).

The pipeline:

- ``find_frames``: the (image, labelIds) pairs of a split, ``leftImg8bit/<split>/**/*_leftImg8bit.png``
  with ``gtFine/<split>/<same folder>/<stem>_gtFine_labelIds.png``; a wrong root or a missing label
  file is one clear ``TrainingDataError``.
- ``hold_out``: the validation frames, a fixed fraction of ``train`` picked by a hash of each frame's name
  (Cityscapes' ``val`` is this competition's test set: it is never used here).
- ``load_frames``: a ``tf.data`` pipeline that decodes each pair once, maps labelIds to trainIds
  (``LABEL_ID_TO_TRAIN_ID``, from cityscapesscripts' label table, ignored labels 255), resizes the
  image (bilinear without antialiasing, as the ingestion program does) and the labels (nearest) to
  the model's input size, and caches the small arrays in memory.
- ``train``: augmentation (horizontal flip, scale and crop jitter, brightness, contrast, colour, noise),
  cross-entropy that ignores 255 (optionally class-balanced), Adam with warm-up and cosine decay,
  one line per epoch and, after each epoch, validation; with ``progress``, a bar with its ETA for loading
  the frames, each epoch and each validation.
- ``evaluate``: what the ingestion and scoring programs will do: image resized to the input size,
  scores upsampled bilinearly to the ground truth's full resolution, argmax, trainId -> labelId,
  then the project's own pixel metric (``metrics.pixel``), IoU and iIoU.
- ``export_model``: ``model.save`` as a Keras 3 archive (``.keras``) or legacy HDF5 (``.h5``), reloaded with
  ``safe_mode=True`` and checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from cityscapesscripts.helpers.labels import labels as cityscapes_labels
from tqdm import tqdm

from ..core.errors import UserFacingError
from ..core.naming import GT_INSTANCE_IDS_SUFFIX, GT_LABEL_IDS_SUFFIX, IMAGE_SUFFIX
from ..png.png_io import PngReadError, read_single_channel
from ..scoring.metrics import pixel
from ..scoring.scores import PixelScores
from .baseline_model import NUM_CLASSES, OUTPUT_STRIDE, build_baseline_model

IGNORE = 255


def _label_tables() -> tuple[np.ndarray, np.ndarray]:
    to_train = np.full(256, IGNORE, np.uint8)  # every byte value, so stray values are ignored too
    to_label = np.full(NUM_CLASSES, IGNORE, np.uint8)
    for label in cityscapes_labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < NUM_CLASSES and not label.ignoreInEval:
            to_train[label.id] = label.trainId
            to_label[label.trainId] = label.id
    assert (to_label != IGNORE).all(), "every trainId 0..18 must have a label id"
    return to_train, to_label


# labelId (0..255) -> trainId (0..18, or 255 for ignored labels), and trainId -> labelId.
LABEL_ID_TO_TRAIN_ID, TRAIN_ID_TO_LABEL_ID = _label_tables()
TRAIN_ID_NAMES: tuple[str, ...] = tuple(
    next(label.name for label in cityscapes_labels if label.id == int(i)) for i in TRAIN_ID_TO_LABEL_ID
)


class TrainingDataError(UserFacingError):
    """The training data (root folder, split, files) is not usable; the message says how to fix it."""


@dataclass(frozen=True)
class Frame:
    """One training or validation example: the camera image and its labelIds ground truth."""

    image: Path
    label_ids: Path

    @property
    def stem(self) -> str:
        return self.image.name[: -len(IMAGE_SUFFIX)]

    @property
    def instance_ids(self) -> Path:
        return self.label_ids.with_name(self.stem + GT_INSTANCE_IDS_SUFFIX)


@dataclass
class TrainConfig:
    input_size: tuple[int, int] = (256, 512)  # (height, width) of the model's input
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 3e-3
    warmup_epochs: float = 1.0
    seed: int = 0
    augment: bool = True
    scale_range: tuple[float, float] = (0.8, 1.3)
    class_balance: bool = True
    balance_c: float = 1.1  # ENet weights 1 / ln(c + frequency); 1.1: rare classes about 3x the commonest
    val_batch_size: int = 4


@dataclass
class EpochLog:
    epoch: int
    loss: float
    pixel_accuracy: float
    learning_rate: float
    seconds: float
    val_miou: float | None = None
    val_seconds: float | None = None


@dataclass
class TrainResult:
    model: object  # keras.Model
    history: list[EpochLog] = field(default_factory=list)
    class_weights: np.ndarray | None = None
    final_scores: PixelScores | None = None


# ------------------------------------------------------------------------------------------ threads


def configure_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` threads (call before any TensorFlow op runs; later it is a no-op)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # the runtime is already initialized (e.g. in a test session): keep its settings


# ------------------------------------------------------------------------------------------- frames


def find_frames(root: Path | str, split: str) -> list[Frame]:
    """Every (image, labelIds) pair of ``split`` under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(
            "is not a folder", root, "Pass the root of a Cityscapes download (it holds leftImg8bit/)."
        )
    image_dir = root / "leftImg8bit" / split
    images = sorted(image_dir.rglob(f"*{IMAGE_SUFFIX}")) if image_dir.is_dir() else []
    if not images:
        raise TrainingDataError(
            f"holds no images of split '{split}' (expected leftImg8bit/{split}/<city>/<stem>{IMAGE_SUFFIX})",
            root,
            "Pass the root of a Cityscapes download: the folder that holds leftImg8bit/ and gtFine/.",
        )
    frames = []
    for image in images:
        relative = image.parent.relative_to(image_dir)
        stem = image.name[: -len(IMAGE_SUFFIX)]
        label = root / "gtFine" / split / relative / f"{stem}{GT_LABEL_IDS_SUFFIX}"
        if not label.is_file():
            raise TrainingDataError(
                f"has no labels: {label} is missing",
                image,
                "Download gtFine (gtFine_trainvaltest.zip) next to leftImg8bit, or remove the image.",
            )
        frames.append(Frame(image, label))
    return frames


def hold_out(frames: Sequence[Frame], fraction: float) -> tuple[list[Frame], list[Frame]]:
    """(training, validation) frames: ``round(fraction * len(frames))`` frames held out, the ones whose
    names hash lowest, so the split depends neither on the order nor on the machine; at least one frame
    is left for training."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation fraction must be in [0, 1), not {fraction}")
    count = min(round(fraction * len(frames)), max(len(frames) - 1, 0))
    ranked = sorted(frames, key=lambda frame: hashlib.blake2b(frame.stem.encode(), digest_size=8).digest())
    held = {frame.image for frame in ranked[:count]}
    return [f for f in frames if f.image not in held], [f for f in frames if f.image in held]


# ------------------------------------------------------------------------------------- tf.data input


def _decode_and_resize(image_path: tf.Tensor, label_path: tf.Tensor, input_size: tuple[int, int]):
    table = tf.constant(LABEL_ID_TO_TRAIN_ID)
    image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
    image = tf.image.resize(image, input_size, method="bilinear")  # as inference.resize_image
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    label_ids = tf.io.decode_png(tf.io.read_file(label_path), channels=1)
    label_ids = tf.image.resize(label_ids, input_size, method="nearest")
    train_ids = tf.gather(table, tf.cast(label_ids[..., 0], tf.int32))
    return image, train_ids


def load_frames(frames: Sequence[Frame], input_size: tuple[int, int]) -> tf.data.Dataset:
    """(uint8 image HxWx3, uint8 trainIds HxW) per frame at ``input_size``, decoded once and cached in memory."""
    paths = tf.data.Dataset.from_tensor_slices(
        ([str(f.image) for f in frames], [str(f.label_ids) for f in frames]),
    )
    size = (int(input_size[0]), int(input_size[1]))
    decoded = paths.map(lambda image, label: _decode_and_resize(image, label, size), num_parallel_calls=2)
    return decoded.cache()


def _checked(dataset: tf.data.Dataset, frames: Sequence[Frame]) -> Iterator:
    """Iterate a dataset whose decoding may fail, turning a bad file into a clear message."""
    try:
        yield from dataset
    except tf.errors.InvalidArgumentError as exc:
        bad = next((f for f in frames if not _readable(f)), None)
        where = bad.image if bad is not None else frames[0].image.parent
        raise TrainingDataError(f"could not be decoded ({exc.message.splitlines()[0]})", where) from None


def _readable(frame: Frame) -> bool:
    try:
        for path in (frame.image, frame.label_ids):
            tf.io.decode_png(tf.io.read_file(str(path)))
    except tf.errors.OpError:
        return False
    return True


def class_frequencies(dataset: tf.data.Dataset, frames: Sequence[Frame], progress: bool = False) -> np.ndarray:
    """Pixels per trainId (ignored pixels excluded) over the dataset; iterating also fills its cache (the
    slow part: every frame is decoded here, hence the bar)."""
    counts = np.zeros(NUM_CLASSES, np.int64)
    bar = tqdm(total=len(frames), desc="loading frames", unit="frame", disable=not progress, leave=False)
    with bar:
        for _, train_ids in _checked(dataset, frames):
            counts += np.bincount(train_ids.numpy().ravel(), minlength=256)[:NUM_CLASSES]
            bar.update(1)
    return counts


def balanced_class_weights(counts: np.ndarray, c: float = 1.1) -> np.ndarray:
    """ENet-style weights 1 / ln(c + frequency), classes without pixels 0, normalized to a pixel mean of 1."""
    total = counts.sum()
    if total == 0:
        return np.ones(len(counts), np.float32)
    frequency = counts / total
    weights = np.where(counts > 0, 1.0 / np.log(c + frequency), 0.0)
    weights /= float((weights * frequency).sum())
    return weights.astype(np.float32)


def _augment(image: tf.Tensor, train_ids: tf.Tensor, seed: tf.Tensor, config: TrainConfig):
    """Flip, scale jitter with a random crop (padding labelled 255), brightness, contrast, per-channel gain, noise."""
    height, width = config.input_size
    seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.constant(config.seed, tf.int64)]), 6)
    image = tf.cast(image, tf.float32)
    labels = tf.cast(train_ids, tf.int32)[..., None]
    flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    labels = tf.cond(flip, lambda: tf.reverse(labels, [1]), lambda: labels)
    low, high = config.scale_range
    scale = tf.random.stateless_uniform([], seeds[1], low, high)
    new_h = tf.cast(tf.round(height * scale), tf.int32)
    new_w = tf.cast(tf.round(width * scale), tf.int32)
    image = tf.image.resize(image, [new_h, new_w], method="bilinear")
    labels = tf.image.resize(labels, [new_h, new_w], method="nearest")
    pad_h, pad_w = tf.maximum(height - new_h, 0), tf.maximum(width - new_w, 0)
    offset = tf.random.stateless_uniform([2], seeds[2])
    top = tf.cast(offset[0] * tf.cast(pad_h + 1, tf.float32), tf.int32)
    left = tf.cast(offset[1] * tf.cast(pad_w + 1, tf.float32), tf.int32)
    top, left = tf.minimum(top, pad_h), tf.minimum(left, pad_w)
    paddings = [[top, pad_h - top], [left, pad_w - left], [0, 0]]
    image = tf.pad(image, paddings, constant_values=127.5)
    labels = tf.pad(labels, paddings, constant_values=IGNORE)
    stacked = tf.concat([image, tf.cast(labels, tf.float32)], axis=-1)
    stacked = tf.image.stateless_random_crop(stacked, [height, width, 4], seeds[3])
    image, labels = stacked[..., :3], tf.cast(stacked[..., 3], tf.int32)
    photometric = tf.random.stateless_uniform([6], seeds[4])
    brightness = (photometric[0] - 0.5) * 50.0  # +-25 grey levels
    contrast = 0.8 + 0.4 * photometric[1]
    gain = 0.9 + 0.2 * photometric[2:5]
    mean = tf.reduce_mean(image)
    image = (image - mean) * contrast + mean + brightness
    # Pixel noise: sensor noise, and the quarter grey levels the cached uint8 frames rounded away.
    noise = tf.random.stateless_normal(tf.shape(image), seeds[5]) * (6.0 * photometric[5])
    image = tf.clip_by_value(image * gain + noise, 0.0, 255.0)
    return image, labels


def training_batches(cached: tf.data.Dataset, count: int, config: TrainConfig) -> tf.data.Dataset:
    """Shuffled, augmented batches of one epoch (reshuffled and re-augmented at every iteration)."""
    dataset = cached.shuffle(max(count, 1), seed=config.seed, reshuffle_each_iteration=True)
    if config.augment:
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda frame, s: _augment(frame[0], frame[1], s, config), num_parallel_calls=2, deterministic=True
        )
    else:
        dataset = dataset.map(lambda image, ids: (tf.cast(image, tf.float32), tf.cast(ids, tf.int32)))
    options = tf.data.Options()
    options.threading.private_threadpool_size = 2
    return dataset.batch(config.batch_size, drop_remainder=count >= config.batch_size).prefetch(2).with_options(options)


# ---------------------------------------------------------------------------------------- training


def masked_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
    """Mean (class-weighted) softmax cross-entropy over the pixels whose label is not 255."""
    valid = labels != IGNORE
    safe = tf.where(valid, labels, 0)
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    weights = tf.gather(class_weights, safe) * tf.cast(valid, tf.float32)
    return tf.reduce_sum(per_pixel * weights) / tf.maximum(tf.reduce_sum(weights), 1e-6)


def _training_model(model):
    """The model with its logits upsampled bilinearly to the input size, where the loss is computed."""
    import keras

    upsampled = keras.layers.UpSampling2D(OUTPUT_STRIDE, interpolation="bilinear", name="train_upsample")(model.output)
    return keras.Model(model.input, upsampled, name="train_wrapper")


def train(
    train_frames: Sequence[Frame],
    config: TrainConfig,
    val_frames: Sequence[Frame] = (),
    log: Callable[[str], None] = print,
    model=None,
    progress: bool = False,
) -> TrainResult:
    """Train (a new baseline model, or ``model``) on ``train_frames``; validate after each epoch.
    ``progress``: bars with ETAs on stderr (loading, each epoch, each validation)."""
    import keras

    if not train_frames:
        raise TrainingDataError("there are no training frames")
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    cached = load_frames(train_frames, config.input_size)
    counts = class_frequencies(cached, train_frames, progress)  # fills the cache
    weights = balanced_class_weights(counts, config.balance_c) if config.class_balance else np.ones(NUM_CLASSES)
    present = ", ".join(f"{TRAIN_ID_NAMES[i]} {counts[i] / max(counts.sum(), 1):.1%}" for i in np.argsort(-counts))
    log(f"loaded {len(train_frames)} training frames at {config.input_size} in {time.perf_counter() - started:.1f} s")
    log(f"class pixels: {present}")
    if config.class_balance:
        log("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(TRAIN_ID_NAMES, weights, strict=True)))

    model = model if model is not None else build_baseline_model(config.input_size)
    wrapper = _training_model(model)
    steps_per_epoch = max(1, len(train_frames) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total_steps // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1 if warmup else config.learning_rate,
        decay_steps=max(total_steps - warmup, 1),
        alpha=0.01,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(wrapper.trainable_variables)
    class_weights = tf.constant(weights, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = wrapper(images, training=True)
            loss = masked_cross_entropy(labels, logits, class_weights)
        variables = wrapper.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        valid = labels != IGNORE
        correct = tf.reduce_sum(tf.cast(valid & (tf.argmax(logits, -1, output_type=tf.int32) == labels), tf.int64))
        return loss, correct, tf.reduce_sum(tf.cast(valid, tf.int64))

    result = TrainResult(model=model, class_weights=weights)
    batches = training_batches(cached, len(train_frames), config)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        losses, correct, valid = [], 0, 0
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=not progress,
        )
        for images, labels in bar:
            loss, hits, count = step(images, labels)
            losses.append(float(loss))
            correct, valid = correct + int(hits), valid + int(count)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        entry = EpochLog(
            epoch=epoch,
            loss=float(np.mean(losses)) if losses else math.nan,
            pixel_accuracy=correct / max(valid, 1),
            learning_rate=float(schedule(optimizer.iterations)),
            seconds=time.perf_counter() - epoch_start,
        )
        line = (
            f"epoch {epoch}/{config.epochs}: loss {entry.loss:.4f}, pixel accuracy {entry.pixel_accuracy:.3f}, "
            f"lr {entry.learning_rate:.2e}, {entry.seconds:.0f} s"
        )
        if val_frames:
            val_start = time.perf_counter()
            scores = evaluate(model, val_frames, config.input_size, config.val_batch_size, progress)
            entry.val_miou, entry.val_seconds = scores.iou_class, time.perf_counter() - val_start
            result.final_scores = scores
            line += f"; val mIoU {scores.iou_class:.4f} (category {scores.iou_category:.4f}, {entry.val_seconds:.0f} s)"
        result.history.append(entry)
        log(line)
    return result


# -------------------------------------------------------------------------------------- evaluation


def _instances(frame: Frame, label_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and values of the instanceIds pixels above 1000 (empty without an instanceIds file)."""
    path = frame.instance_ids
    if path.is_file():
        try:
            values = read_single_channel(path, (label_ids.shape[1], label_ids.shape[0])).astype(np.int64).ravel()
        except PngReadError as exc:
            raise TrainingDataError(str(exc), path) from None
        index = np.flatnonzero(values > 1000)
        return index, values[index]
    return np.empty(0, np.int64), np.empty(0, np.int64)


def predict_label_ids(model, images: np.ndarray | tf.Tensor, full_size: tuple[int, int]) -> np.ndarray:
    """Label ids at ``full_size`` (height, width), as the ingestion program derives them: bilinear upsampling
    of the scores, argmax over the 19 trainIds, trainId -> labelId."""
    predict = _compiled_predict(model, tuple(full_size))
    return TRAIN_ID_TO_LABEL_ID[predict(tf.cast(images, tf.float32)).numpy()]


_PREDICT_CACHE: dict[tuple[int, tuple[int, int]], Callable] = {}


def _compiled_predict(model, full_size: tuple[int, int]) -> Callable:
    key = (id(model), full_size)
    if key not in _PREDICT_CACHE:

        @tf.function(reduce_retracing=True)
        def predict(images):
            scores = model(images, training=False)
            scores = tf.image.resize(scores, full_size, method="bilinear")
            return tf.argmax(scores, axis=-1, output_type=tf.int32)

        _PREDICT_CACHE.clear()  # one model at a time: do not keep old models alive
        _PREDICT_CACHE[key] = predict
    return _PREDICT_CACHE[key]


def evaluate(
    model, frames: Sequence[Frame], input_size: tuple[int, int], batch_size: int = 4, progress: bool = False
) -> PixelScores:
    """Pixel-level scores of ``model`` on ``frames`` at the ground truth's full resolution."""
    records = []
    images = load_frames(frames, input_size).map(lambda image, _: image).batch(batch_size)
    position = 0
    batches = math.ceil(len(frames) / batch_size)
    bar = tqdm(
        _checked(images, frames), total=batches, desc="validation", unit="batch", leave=False, disable=not progress
    )
    for batch in bar:
        chunk = frames[position : position + batch.shape[0]]
        position += len(chunk)
        truths = []
        for frame in chunk:
            try:
                truths.append(read_single_channel(frame.label_ids))
            except PngReadError as exc:
                raise TrainingDataError(str(exc), frame.label_ids) from None
        sizes = {truth.shape for truth in truths}
        if len(sizes) == 1:
            predictions = predict_label_ids(model, batch, sizes.pop())
        else:
            predictions = [predict_label_ids(model, batch[i : i + 1], t.shape)[0] for i, t in enumerate(truths)]
        for frame, truth, prediction in zip(chunk, truths, predictions, strict=True):
            index, value = _instances(frame, truth)
            records.append(pixel.evaluate_frame(truth, prediction, index, value))
    return pixel.summarize(pixel.combine(records))


# ------------------------------------------------------------------------------------------ export


EXPORT_SUFFIXES = (".keras", ".h5")  # Keras picks the format by the suffix: Keras 3 archive or legacy HDF5


def metadata_text(input_size: tuple[int, int], description: str, batch_size: int = 4) -> str:
    """The submission's ``metadata`` for a baseline-architecture model: trainId logits at ``input_size``."""
    return (
        f"description: {json.dumps(description)}\n"  # a JSON string is a YAML double-quoted scalar
        "inference:\n"
        f"  input_size: [{input_size[0]}, {input_size[1]}]\n"
        "  output: trainIds\n"
        "  scores: logits\n"
        f"  batch_size: {batch_size}\n"
    )


def export_model(model, path: Path | str) -> Path:
    """Save ``model`` (inference graph only: no optimizer, no training config) at ``path``, as a Keras 3
    archive (``.keras``) or legacy HDF5 (``.h5``), atomically; reload it with ``safe_mode=True`` and check it
    gives the same scores."""
    import keras

    path = Path(path)
    if path.suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"{path}: the model file must end with {' or '.join(EXPORT_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # the same suffix: the same format
    model.save(partial)
    try:
        reloaded = keras.models.load_model(partial, compile=False, safe_mode=True)
        forbidden = [layer.name for layer in reloaded.layers if type(layer).__name__ == "Lambda"]
        if forbidden:
            raise ValueError(f"the model holds Lambda layers {forbidden}; the ingestion program refuses them")
        sample = np.random.default_rng(0).uniform(0, 255, (1, *model.input.shape[1:])).astype(np.float32)
        expected, actual = model(sample, training=False), reloaded(sample, training=False)
        if not np.allclose(np.asarray(expected), np.asarray(actual), rtol=1e-4, atol=1e-4):
            raise ValueError("the reloaded model does not reproduce the saved model's scores")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
