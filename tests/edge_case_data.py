"""Random small data sets dense in the evaluation's corner cases.

Ground truth with instances of every instance class (caravan and trailer too), group regions,
void and ignored labels, overlaps; stereo holes and disparity 0 (infinitely far); predictions
with label switches, predictions of ignored or non-instance classes, duplicates, empty masks,
masks on groups and void, tied confidences, confidences 0 and 1, images without predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

INSTANCE_LABELS = [24, 25, 26, 27, 28, 29, 30, 31, 32, 33]
CAMERA = {"extrinsic": {"baseline": 0.209313}, "intrinsic": {"fx": 2262.52}}


def write_edge_case_data(root: Path, seed: int, frames: int = 6, size: tuple[int, int] = (400, 200)) -> Path:
    rng = np.random.default_rng(seed)
    width, height = size
    for index in range(frames):
        stem = f"frankfurt_000000_{index:06d}"
        labels, instances = _ground_truth(rng, width, height)
        _save(root / "ref" / "gtFine" / "val" / "frankfurt", stem, labels, instances, rng)
        _save_prediction(root / "res", stem, labels, instances, rng)
    return root


def _ground_truth(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((height, width), rng.choice([7, 8, 11, 21, 23]), np.uint8)
    labels[: height // 4] = 23
    labels[height - 8 :] = 1
    labels[height // 2 : height // 2 + 6, : width // 3] = rng.choice([0, 4, 9, 14])
    instances = labels.astype(np.int32)
    next_index: dict[int, int] = {}
    for _ in range(int(rng.integers(3, 12))):
        label = int(rng.choice(INSTANCE_LABELS))
        y, x = int(rng.integers(0, height - 10)), int(rng.integers(0, width - 10))
        h, w = int(rng.integers(3, 90)), int(rng.integers(3, 120))
        labels[y : y + h, x : x + w] = label
        if rng.random() < 0.2:
            instances[y : y + h, x : x + w] = label  # a group region
        else:
            next_index[label] = next_index.get(label, -1) + 1
            instances[y : y + h, x : x + w] = label * 1000 + next_index[label]
    return labels, instances


def _save(gt_dir: Path, stem: str, labels: np.ndarray, instances: np.ndarray, rng: np.random.Generator) -> None:
    gt_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(instances.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    root = gt_dir.parents[2]
    disparity = rng.integers(0, 6000, size=labels.shape).astype(np.uint16)
    disparity[rng.random(labels.shape) < 0.3] = 0
    disparity[rng.random(labels.shape) < 0.05] = 1
    for kind in ("disparity", "camera"):
        (root / kind / "val" / "frankfurt").mkdir(parents=True, exist_ok=True)
    Image.fromarray(disparity).save(root / "disparity" / "val" / "frankfurt" / f"{stem}_disparity.png")
    (root / "camera" / "val" / "frankfurt" / f"{stem}_camera.json").write_text(json.dumps(CAMERA))


def _save_prediction(res: Path, stem: str, labels: np.ndarray, instances: np.ndarray, rng: np.random.Generator) -> None:
    (res / "pixel").mkdir(parents=True, exist_ok=True)
    (res / "instance" / "m").mkdir(parents=True, exist_ok=True)
    prediction = labels.copy()
    noise = rng.random(labels.shape) < 0.2
    prediction[noise] = rng.choice([7, 8, 24, 26, 0, 29, 33, 17], size=int(noise.sum()))
    Image.fromarray(prediction).save(res / "pixel" / f"{stem}_pred.png")
    lines = []
    candidates = [int(v) for v in np.unique(instances) if v >= 1000 or v in INSTANCE_LABELS]
    for k in range(int(rng.integers(0, 25))):
        mask, label = _predicted_mask(rng, instances, candidates)
        name = f"m/{stem}_{k}.png"
        Image.fromarray(mask).save(res / "instance" / name)
        confidence = float(rng.choice([0.5, 0.9, 1.0, 0.0, rng.random()]))
        lines.append(f"{name} {label} {confidence}")
    (res / "instance" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))


def _predicted_mask(rng: np.random.Generator, instances: np.ndarray, candidates: list[int]) -> tuple[np.ndarray, int]:
    height, width = instances.shape
    mask = np.zeros((height, width), np.uint8)
    if candidates and rng.random() < 0.7:
        value = int(rng.choice(candidates))
        mask[instances == value] = 255
        label = value // 1000 if value >= 1000 else value
        mask[rng.random((height, width)) < 0.1] = 0
        mask = np.roll(mask, int(rng.integers(0, 3)), axis=1)
        if rng.random() < 0.2:
            label = int(rng.choice(INSTANCE_LABELS))
    else:
        y, x = int(rng.integers(0, height - 5)), int(rng.integers(0, width - 5))
        mask[y : y + int(rng.integers(1, 20)), x : x + int(rng.integers(1, 30))] = 255
        label = int(rng.choice([*INSTANCE_LABELS, 7]))
    if rng.random() < 0.05:
        mask[:] = 0
    return mask, label
