"""Shared fixtures: small data sets made once per session."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "baseline_submission"
BASELINE_MODEL = BASELINE / "model.keras"  # the trained baseline as participants save theirs
FRAMES = ("frankfurt_000000_000019", "frankfurt_000001_000019", "lindau_000000_000019")
WIDTH, HEIGHT = 96, 48


@dataclass(frozen=True)
class TinyCase:
    """A hand-built ground truth and a valid results folder for it (copy before changing)."""

    ref: Path
    res: Path
    frames: tuple[str, ...]


def _ground_truth(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((HEIGHT, WIDTH), 7, np.uint8)
    labels[:12] = 23
    labels[12:20] = 11
    labels[HEIGHT - 4 :] = 1  # ego vehicle: void
    instances = labels.astype(np.int32)
    boxes = [(26, 0, 20, 34, 10, 30), (26, 1, 22, 36, 50, 80), (24, 0, 14, 40, 40, 48), (26, None, 30, 40, 82, 95)]
    for label, k, y0, y1, x0, x1 in boxes:
        shift = int(rng.integers(0, 3))
        labels[y0 + shift : y1, x0:x1] = label
        instances[y0 + shift : y1, x0:x1] = label if k is None else label * 1000 + k
    return labels, instances


def write_tiny_case(root: Path) -> TinyCase:
    rng = np.random.default_rng(7)
    ref, res = root / "ref", root / "res"
    for stem in FRAMES:
        city = stem.split("_")[0]
        labels, instances = _ground_truth(rng)
        gt_dir = ref / "gtFine" / "val" / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instances.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        disparity = np.where(np.arange(WIDTH) % 7 == 0, 0, 2000 + np.arange(WIDTH) * 10)[None].repeat(HEIGHT, 0)
        for kind in ("disparity", "camera"):
            (ref / kind / "val" / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(disparity.astype(np.uint16)).save(ref / "disparity" / "val" / city / f"{stem}_disparity.png")
        camera = {"extrinsic": {"baseline": 0.209313}, "intrinsic": {"fx": 2262.52}}
        (ref / "camera" / "val" / city / f"{stem}_camera.json").write_text(json.dumps(camera))
        pixel_dir, instance_dir = res / "pixel" / city, res / "instance" / city
        pixel_dir.mkdir(parents=True, exist_ok=True)
        (instance_dir / "masks").mkdir(parents=True, exist_ok=True)
        prediction = labels.copy()
        prediction[30:34, 0:20] = 8
        Image.fromarray(prediction).save(pixel_dir / f"{stem}_leftImg8bit.png")
        lines = []
        for k, value in enumerate(v for v in np.unique(instances) if v >= 1000):
            mask = (instances == value).astype(np.uint8) * 255
            mask_name = f"masks/{stem}_{k}.png"
            Image.fromarray(mask).save(instance_dir / mask_name)
            lines.append(f"{mask_name} {value // 1000} {0.9 - 0.1 * k:.2f}")
        (instance_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return TinyCase(ref, res, FRAMES)


@pytest.fixture(scope="session")
def tiny_case_template(tmp_path_factory) -> TinyCase:
    return write_tiny_case(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_case(tiny_case_template: TinyCase, tmp_path: Path) -> TinyCase:
    """A private copy that a test may break."""
    ref, res = tmp_path / "ref", tmp_path / "res"
    shutil.copytree(tiny_case_template.ref, ref)
    shutil.copytree(tiny_case_template.res, res)
    return TinyCase(ref, res, tiny_case_template.frames)


@pytest.fixture(scope="session")
def baseline_h5(tmp_path_factory) -> Path:
    """The trained baseline saved again as legacy HDF5: only the .keras is committed, and .h5 stays accepted."""
    from cityscapes_competition.model_loading import load_model_safely

    path = tmp_path_factory.mktemp("baseline_h5") / "model.h5"
    load_model_safely(BASELINE_MODEL).save(path)
    return path


def rle_predictions(res: Path) -> list[dict]:
    """The instance results of a results folder as one COCO RLE document (each txt mask encoded by pycocotools)."""
    from pycocotools import mask as rle_codec

    predictions = []
    for txt in sorted((res / "instance").rglob("*.txt")):
        for line in txt.read_text().splitlines():
            mask_name, label, confidence = line.split()
            mask = np.asfortranarray((np.array(Image.open(txt.parent / mask_name)) != 0).astype(np.uint8))
            rle = rle_codec.encode(mask)
            rle["counts"] = rle["counts"].decode("ascii")
            stem = txt.name[: -len(".txt")]
            predictions.append(
                {"image_id": stem, "category_id": int(label), "segmentation": rle, "score": float(confidence)}
            )
    return predictions


pytest_plugins = ["test_official_equivalence"]  # its session fixtures (official runs) are shared
