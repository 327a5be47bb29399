"""Deterministic participant results for a ground truth, in the official Cityscapes result format.

For every ``*_gtFine_labelIds.png`` under a ground-truth folder this writes what a participant
would submit, with realistic imperfections, for tests and benchmarks of the evaluation::

    <results>/pixel/<split>/<city>/<stem>_leftImg8bit.png       L, label ids 0..33
    <results>/instance/<split>/<city>/<stem>.txt                <mask> <labelId> <confidence>
    <results>/instance/<split>/<city>/masks/<stem>_NNN.png      nonzero = the instance

The pixel prediction is the ground truth with wobbly boundaries, blobs of a confusable class,
missed small instances and blobs of ignored ids. The instance prediction mixes matches of
ground-truth instances at IoUs spread from 0.3 to 0.99, duplicates, false positives on the
background, masks over group regions and void, classes the instance task skips (road, caravan,
trailer), empty and tiny masks, and confidences with exact ties across images, 0 and 1.

Each image's results depend only on (seed, frame name, its ground truth): the same call always
writes the same bytes, whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.atomic import write_bytes_atomic, write_text_atomic
from ..core.errors import ReferenceDataError
from ..core.labels import INSTANCE_CLASS_IDS, NUM_LABEL_IDS
from ..core.naming import GT_INSTANCE_IDS_SUFFIX, GT_LABEL_IDS_SUFFIX
from ..core.processes import worker_pool
from ..png.png_write import encode_png
from .render import smooth_noise

TASKS = ("pixel", "instance")
MASK_MODES = ("1", "L", "mixed")

# Classes a model plausibly confuses (pixel task): label id -> label id.
_CONFUSION = {
    7: 8,  # road -> sidewalk
    8: 7,
    9: 7,  # parking -> road
    11: 12,  # building -> wall
    12: 11,
    13: 12,  # fence -> wall
    17: 20,  # pole -> traffic sign
    19: 17,  # traffic light -> pole
    20: 17,
    21: 22,  # vegetation -> terrain
    22: 21,
    23: 11,  # sky -> building
    24: 25,  # person -> rider
    25: 24,
    26: 27,  # car -> truck
    27: 28,  # truck -> bus
    28: 27,
    29: 27,  # caravan -> truck
    30: 26,  # trailer -> car
    31: 28,  # train -> bus
    32: 33,  # motorcycle -> bicycle
    33: 32,
}
_CONFUSION_TABLE = np.array([_CONFUSION.get(i, i) for i in range(NUM_LABEL_IDS)], dtype=np.uint8)
_IGNORED_PREDICTIONS = np.array([0, 0, 0, 4, 5], dtype=np.uint8)  # mostly "unlabeled"

# Instance task: a wrong but plausible class for a prediction of a ground-truth instance.
_INSTANCE_CONFUSION = {24: 25, 25: 24, 26: 27, 27: 26, 28: 27, 29: 26, 30: 26, 31: 28, 32: 33, 33: 32}
_EVALUATED = frozenset(INSTANCE_CLASS_IDS)
_SKIPPED_CLASSES = (7, 29, 30, 11)  # road, caravan, trailer, building: not in the instance task


def _image_rng(seed: int, stem: str, stream: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{stream}/{stem}".encode()).digest()
    return np.random.default_rng([int(seed), *np.frombuffer(digest[:16], dtype="<u4").tolist()])


def _shared_confidences(seed: int) -> np.ndarray:
    """Confidences that recur in every image: exact ties across images."""
    rng = _image_rng(seed, "", "shared-confidences")
    return np.round(np.concatenate([[0.5, 0.25, 0.9], rng.uniform(0.05, 0.95, 5)]), 4)


# -------------------------------------------------------------------------------------- pixel task


def predict_pixels(labels: np.ndarray, instances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible, imperfect semantic prediction (label ids 0..33) of a ground truth."""
    H, W = labels.shape
    size = (W, H)
    # wobbly boundaries: sample the ground truth through a smooth displacement field
    amplitude = max(1.0, 0.004 * W)
    dy = smooth_noise(rng, size, max(4.0, W / 24)) * amplitude
    dx = smooth_noise(rng, size, max(4.0, W / 24)) * amplitude
    rows = np.clip(np.rint(np.arange(H, dtype=np.float32)[:, None] + dy), 0, H - 1).astype(np.intp)
    cols = np.clip(np.rint(np.arange(W, dtype=np.float32)[None, :] + dx), 0, W - 1).astype(np.intp)
    prediction = labels[rows, cols]
    # missed small instances: filled with what surrounds them
    for value, pixels in _instance_pixels(instances).items():
        if value >= 1000 and len(pixels) < 0.0005 * H * W and rng.random() < 0.5:
            prediction.reshape(-1)[pixels] = _surrounding_label(prediction, pixels, value // 1000)
    # blobs of a confusable class
    blobs = smooth_noise(rng, size, max(4.0, W / 14))
    confused = blobs > rng.uniform(1.3, 1.8)
    prediction[confused] = _CONFUSION_TABLE[prediction[confused]]
    # blobs of ignored ids (what a network outputs for classes it was not trained on)
    ignored = smooth_noise(rng, size, max(4.0, W / 30)) > rng.uniform(1.8, 2.2)
    prediction[ignored] = _IGNORED_PREDICTIONS[rng.integers(len(_IGNORED_PREDICTIONS))]
    return prediction


def _surrounding_label(prediction: np.ndarray, pixels: np.ndarray, own: int) -> int:
    H, W = prediction.shape
    rows, cols = pixels // W, pixels % W
    r0, r1 = max(0, rows.min() - 3), min(H, rows.max() + 4)
    c0, c1 = max(0, cols.min() - 3), min(W, cols.max() + 4)
    around = prediction[r0:r1, c0:c1].ravel()
    around = around[around != own]
    return int(np.bincount(around, minlength=NUM_LABEL_IDS).argmax()) if around.size else 7


def _instance_pixels(instances: np.ndarray) -> dict[int, np.ndarray]:
    """Flat pixel indices of every instance-class value (instances >= 1000 and group regions)."""
    flat = instances.reshape(-1)
    where = np.flatnonzero(flat >= 24)
    if where.size == 0:
        return {}
    values = flat[where]
    order = np.argsort(values, kind="stable")
    values, where = values[order], where[order]
    unique, starts = np.unique(values, return_index=True)
    ends = [*starts[1:].tolist(), len(values)]
    return {int(v): where[s:e] for v, s, e in zip(unique.tolist(), starts.tolist(), ends, strict=True)}


# ----------------------------------------------------------------------------------- instance task


@dataclass
class Prediction:
    label: int
    confidence: float
    top: int  # the mask is a crop placed at (top, left) in the image
    left: int
    mask: np.ndarray  # bool crop


def _crop(pixels: np.ndarray, width: int) -> tuple[int, int, np.ndarray]:
    rows, cols = pixels // width, pixels % width
    top, left = int(rows.min()), int(cols.min())
    mask = np.zeros((int(rows.max()) - top + 1, int(cols.max()) - left + 1), dtype=bool)
    mask[rows - top, cols - left] = True
    return top, left, mask


def _shifted_iou(mask: np.ndarray, dy: int, dx: int) -> tuple[int, int]:
    """Intersection and union of a mask with itself moved by (dy, dx)."""
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        area = int(mask.sum())
        return 0, 2 * area
    a = mask[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
    b = mask[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
    inter = int(np.count_nonzero(a & b))
    area = int(mask.sum())
    return inter, 2 * area - inter


def degrade(mask: np.ndarray, target: float, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
    """A mask whose IoU with ``mask`` is close to ``target``: shifted, then cut on one side.

    Returns the offset (dy, dx) of the new crop relative to the old one and the new crop.
    """
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    # the largest shift along the direction that keeps the IoU at or above the target
    lo, hi = 0, max(mask.shape) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        dy, dx = np.rint(direction * mid).astype(int)
        inter, union = _shifted_iou(mask, int(dy), int(dx))
        lo, hi = (mid, hi) if inter >= target * union else (lo, mid)
    dy, dx = (int(v) for v in np.rint(direction * lo).astype(int))
    h, w = mask.shape
    top, left = min(0, dy), min(0, dx)
    canvas_gt = np.zeros((h + abs(dy), w + abs(dx)), dtype=bool)
    canvas_gt[-top : -top + h, -left : -left + w] = mask
    moved = np.zeros_like(canvas_gt)
    moved[dy - top : dy - top + h, dx - left : dx - left + w] = mask
    # cut the overlap on one side until the IoU is the target
    inter = moved & canvas_gt
    n_inter, union = int(inter.sum()), int((moved | canvas_gt).sum())
    remove = int(n_inter - np.ceil(target * union))
    if remove > 0:
        ys, xs = np.nonzero(inter)
        cut_angle = rng.uniform(0, 2 * np.pi)
        order = np.argsort(ys * np.sin(cut_angle) + xs * np.cos(cut_angle), kind="stable")[:remove]
        moved[ys[order], xs[order]] = False
    return top, left, moved


def _confidence(rng: np.random.Generator, base: float, shared: np.ndarray) -> float:
    draw = rng.random()
    if draw < 0.015:
        return 0.0
    if draw < 0.03:
        return 1.0
    if draw < 0.15:
        return float(shared[rng.integers(len(shared))])
    return float(np.round(np.clip(base + rng.normal(0, 0.08), 0.001, 0.999), 4))


def _blob(height: int, width: int) -> np.ndarray:
    """An elliptic blob of the given box size."""
    yy, xx = np.ogrid[:height, :width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    return ((yy - cy) / max(cy, 0.5)) ** 2 + ((xx - cx) / max(cx, 0.5)) ** 2 <= 1.0


def _part_of(region: np.ndarray, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
    """A crop of a random box covering 30-100 % of a region's bounding box (region: full-size bool)."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    h, w = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
    keep_h, keep_w = max(1, int(h * rng.uniform(0.3, 1.0))), max(1, int(w * rng.uniform(0.3, 1.0)))
    y0, x0 = top + int(rng.integers(0, h - keep_h + 1)), left + int(rng.integers(0, w - keep_w + 1))
    return y0, x0, region[y0 : y0 + keep_h, x0 : x0 + keep_w].copy()


def predict_instances(
    labels: np.ndarray,
    instances: np.ndarray,
    rng: np.random.Generator,
    count: int,
    shared: np.ndarray,
) -> list[Prediction]:
    """About ``count`` instance predictions of one image, of every kind the evaluation must handle."""
    H, W = labels.shape
    if count <= 0 or rng.random() < 0.03:
        return []
    target = max(1, round(count * rng.uniform(0.7, 1.3)))
    regions = _instance_pixels(instances)
    objects = [v for v in regions if v >= 1000]
    groups = [v for v in regions if v < 1000]
    rng.shuffle(objects)
    predictions: list[Prediction] = []

    def add(label: int, base: float, top: int, left: int, mask: np.ndarray) -> None:
        predictions.append(Prediction(label, _confidence(rng, base, shared), top, left, mask))

    # matches of ground-truth instances, some duplicated, some with a wrong class
    for value in objects[: int(target * 0.7)]:
        label = value // 1000
        top, left, mask = _crop(regions[value], W)
        copies = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.05)
        for _ in range(copies):
            iou = float(rng.uniform(0.3, 0.99) if rng.random() < 0.5 else rng.uniform(0.75, 0.99))
            dy, dx, pred = degrade(mask, iou, rng)
            wrong = rng.random() < 0.07
            add(_INSTANCE_CONFUSION.get(label, label) if wrong else label, 0.2 + 0.7 * iou, top + dy, left + dx, pred)
    # group regions and void regions predicted as objects
    for value in groups:
        if rng.random() < 0.7:
            add(value, 0.5, *_part_of(instances == value, rng))
    void = (labels >= 1) & (labels <= 6)  # ego vehicle, borders, static, dynamic, ground
    if rng.random() < 0.6 and void.any():
        add(int(rng.choice([24, 26, 33])), 0.3, *_part_of(void, rng))
    # classes the instance task skips
    for label in _SKIPPED_CLASSES:
        region = labels == label
        if rng.random() < 0.35 and region.any():
            add(label, 0.6, *_part_of(region, rng))
    # empty masks and tiny masks
    if rng.random() < 0.4:
        add(int(rng.choice(list(_EVALUATED))), 0.2, 0, 0, np.zeros((1, 1), dtype=bool))
    for _ in range(int(rng.integers(0, 3))):
        side = int(rng.integers(1, 6))
        add(
            int(rng.choice(list(_EVALUATED))),
            0.3,
            int(rng.integers(0, H)),
            int(rng.integers(0, W)),
            _blob(side, side),
        )
    # false positives on the background, up to the target count
    while len(predictions) < target:
        h = max(1, int(H * rng.uniform(0.005, 0.25)))
        w = max(1, int(h * rng.uniform(0.3, 2.5)))
        add(int(rng.choice(list(_EVALUATED))), 0.25, int(rng.integers(0, H)), int(rng.integers(0, W)), _blob(h, w))
    order = rng.permutation(len(predictions))
    return [predictions[i] for i in order]


def _full_mask(prediction: Prediction, shape: tuple[int, int]) -> np.ndarray:
    """The prediction's crop placed in a full-size mask (clipped to the image)."""
    H, W = shape
    full = np.zeros(shape, dtype=bool)
    h, w = prediction.mask.shape
    y0, x0 = max(0, prediction.top), max(0, prediction.left)
    y1, x1 = min(H, prediction.top + h), min(W, prediction.left + w)
    if y1 > y0 and x1 > x0:
        full[y0:y1, x0:x1] = prediction.mask[
            y0 - prediction.top : y1 - prediction.top, x0 - prediction.left : x1 - prediction.left
        ]
    return full


def _mask_png(mask: np.ndarray, mode: str) -> bytes:
    if mode == "1":
        return encode_png(mask)
    value = 1 if mode == "L1" else 255
    return encode_png(mask.astype(np.uint8) * np.uint8(value))


def _mask_mode(rng: np.random.Generator, mask_mode: str) -> str:
    if mask_mode != "mixed":
        return mask_mode
    draw = rng.random()
    return "L1" if draw < 0.04 else ("1" if draw < 0.5 else "L")


# ------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class _Job:
    labels_path: Path
    folder: Path  # relative: <split>/<city>
    stem: str


def _jobs(gt_root: Path) -> list[_Job]:
    jobs = []
    for path in sorted(gt_root.rglob(f"*{GT_LABEL_IDS_SUFFIX}")):
        folder = path.parent.relative_to(gt_root)
        if folder.parts and folder.parts[0] == "gtFine":
            folder = Path(*folder.parts[1:])
        jobs.append(_Job(path, folder, path.name[: -len(GT_LABEL_IDS_SUFFIX)]))
    return jobs


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ReferenceDataError("is missing", path, "Generate the ground truth again.")
    with Image.open(path) as image:
        return np.asarray(image)


def _results_for_image(
    job: _Job,
    results_root: Path,
    seed: int,
    instances_per_image: int,
    mask_mode: str,
    tasks: tuple[str, ...],
    shared: np.ndarray,
) -> None:
    labels = _read(job.labels_path).astype(np.uint8)
    instances_path = job.labels_path.with_name(job.stem + GT_INSTANCE_IDS_SUFFIX)
    instances = _read(instances_path).astype(np.int64) if instances_path.is_file() else labels.astype(np.int64)
    if instances.shape != labels.shape:
        raise ReferenceDataError("differs in size from its labelIds image", instances_path)
    if "pixel" in tasks:
        prediction = predict_pixels(labels, instances, _image_rng(seed, job.stem, "pixel"))
        path = results_root / "pixel" / job.folder / f"{job.stem}_leftImg8bit.png"
        write_bytes_atomic(path, encode_png(prediction))
    if "instance" in tasks:
        if not instances_path.is_file():
            raise ReferenceDataError("is missing", instances_path, "Instance results need the instanceIds images.")
        rng = _image_rng(seed, job.stem, "instance")
        predictions = predict_instances(labels, instances, rng, instances_per_image, shared)
        folder = results_root / "instance" / job.folder
        lines = []
        for number, prediction in enumerate(predictions):
            name = f"masks/{job.stem}_{number:03d}.png"
            mode = _mask_mode(rng, mask_mode)
            write_bytes_atomic(folder / name, _mask_png(_full_mask(prediction, labels.shape), mode))
            lines.append(f"{name} {prediction.label} {prediction.confidence:.4f}\n")
        write_text_atomic(folder / f"{job.stem}.txt", "".join(lines))


def generate_results(
    gt_root: Path,
    results_root: Path,
    seed: int = 0,
    instances_per_image: int = 40,
    mask_mode: str = "1",
    workers: int | None = None,
    tasks: Sequence[str] = TASKS,
) -> None:
    """Write pixel and/or instance results for every labelIds image under ``gt_root``."""
    tasks = tuple(tasks)
    if unknown := set(tasks) - set(TASKS):
        raise ValueError(f"unknown task(s) {sorted(unknown)}; use {', '.join(TASKS)}")
    if mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mask_mode!r}; use one of {', '.join(MASK_MODES)}")
    gt_root, results_root = Path(gt_root), Path(results_root)
    jobs = _jobs(gt_root)
    work = partial(
        _results_for_image,
        results_root=results_root,
        seed=seed,
        instances_per_image=instances_per_image,
        mask_mode=mask_mode,
        tasks=tasks,
        shared=_shared_confidences(seed),
    )
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            work(job)
        return
    with worker_pool(min(workers, len(jobs))) as pool:
        for _ in pool.map(work, jobs, chunksize=1):
            pass
