"""The project's metrics equal the official cityscapesScripts 2.3.0 evaluation to 1e-9.

The official scripts themselves run (tools/run_official_evaluation.py, in a subprocess: they
keep global state) on the same files as the project's scorer, and every metric is compared:
the confusion matrix, each class and category IoU and iIoU, the four means, the whole AP
matrix (distance settings x classes x overlaps) and every average derived from it.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cityscapes_competition.evaluation import evaluate
from cityscapes_competition.labels import AVERAGE_INSTANCE_SIZE, LABEL_NAMES
from cityscapes_competition.metrics import instance as instance_metric
from cityscapes_competition.scores import Scores
from conftest import REPO
from edge_case_data import write_edge_case_data

# Seeds whose data the official code evaluates without hitting its issue-#89 crash.
EDGE_CASE_SEEDS = (2, 4, 5)


def run_official(root: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "run_official_evaluation.py"), "--gt", str(root / "ref"),
         "--results", str(root / "res"), "--out", str(out), "--distances"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def same(a: float | None, b: float | None) -> bool:
    a = float("nan") if a is None else float(a)
    b = float("nan") if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def assert_equal_to_official(ours: Scores, official: dict) -> None:
    pixel, instance = official["pixel"], official["instance"]
    np.testing.assert_array_equal(ours.pixel.confusion_matrix, np.array(pixel["confMatrix"], np.uint64))
    checks = [
        ("iou_class", ours.pixel.iou_class, pixel["averageScoreClasses"]),
        ("iiou_class", ours.pixel.iiou_class, pixel["averageScoreInstClasses"]),
        ("iou_category", ours.pixel.iou_category, pixel["averageScoreCategories"]),
        ("iiou_category", ours.pixel.iiou_category, pixel["averageScoreInstCategories"]),
    ]
    for name in LABEL_NAMES:  # the official dicts hold every label; NaN where a score is undefined
        checks.append((f"{name} iou", ours.pixel.class_iou.get(name, math.nan), pixel["classScores"][name]))
        checks.append((f"{name} iiou", ours.pixel.class_iiou.get(name, math.nan), pixel["classInstScores"][name]))
    for name, value in pixel["categoryScores"].items():
        checks.append((f"{name} category iou", ours.pixel.category_iou.get(name, math.nan), value))
    for name, value in pixel["categoryInstScores"].items():
        checks.append((f"{name} category iiou", ours.pixel.category_iiou.get(name, math.nan), value))
    averages = instance["averages"]
    checks += [
        ("ap", ours.instance.ap, averages["allAp"]),
        ("ap50", ours.instance.ap50, averages["allAp50%"]),
        ("ap100m", ours.instance.ap100m, averages["allAp100m"]),
        ("ap50m", ours.instance.ap50m, averages["allAp50m"]),
    ]
    for name, values in averages["classes"].items():
        for key, official_key in (("ap", "ap"), ("ap50", "ap50%"), ("ap100m", "ap100m"), ("ap50m", "ap50m")):
            checks.append((f"{name} {key}", ours.instance.class_scores[name][key], values[official_key]))
    wrong = [f"{name}: ours {a} official {b}" for name, a, b in checks if not same(a, b)]
    assert not wrong, "\n".join(wrong)
    official_ap = np.array(instance["resultApMatrix"], float)
    assert ours.instance.ap_matrix.shape == official_ap.shape
    np.testing.assert_array_equal(np.isnan(ours.instance.ap_matrix), np.isnan(official_ap))
    np.testing.assert_allclose(ours.instance.ap_matrix, official_ap, rtol=0, atol=1e-9, equal_nan=True)


@pytest.fixture(scope="session", params=EDGE_CASE_SEEDS)
def edge_case(request, tmp_path_factory) -> tuple[Path, dict]:
    root = write_edge_case_data(tmp_path_factory.mktemp(f"edge{request.param}"), request.param)
    return root, run_official(root, root / "official.json")


def test_edge_cases_equal_the_official_evaluation(edge_case) -> None:
    root, official = edge_case
    ours = evaluate(root / "ref", root / "res", workers=1)
    assert ours.instance.ap100m is not None and not math.isnan(ours.instance.ap100m)
    assert_equal_to_official(ours, official)


def test_worker_processes_give_the_same_scores(edge_case) -> None:
    root, official = edge_case
    assert_equal_to_official(evaluate(root / "ref", root / "res", workers=2), official)


@pytest.fixture(scope="session")
def synthetic_case(tmp_path_factory) -> tuple[Path, dict]:
    from cityscapes_competition import synthetic, synthetic_results

    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate_split(root / "ref", "val", 8, seed=3, size=(512, 256), workers=2)
    synthetic_results.generate_results(root / "ref", root / "res", seed=3, instances_per_image=30, mask_mode="mixed")
    return root, run_official(root, root / "official.json")


def test_synthetic_scenes_equal_the_official_evaluation(synthetic_case) -> None:
    root, official = synthetic_case
    assert_equal_to_official(evaluate(root / "ref", root / "res", workers=2), official)


def _pixels(path: Path, mode: str | None = None) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode) if mode else image)


def _pillow_writes(path: Path, pixels: np.ndarray, **options) -> None:
    Image.fromarray(pixels).save(path, **options)


def _opencv_writes(path: Path, pixels: np.ndarray) -> None:
    assert cv2.imwrite(str(path), pixels)


# Masks as participants write them: Pillow's 1-bit and 8-bit (0/255, 0/1), OpenCV's 8-bit (0/255, 0/1).
MASK_WRITERS = (
    lambda path, mask: _pillow_writes(path, mask),
    lambda path, mask: _pillow_writes(path, mask.astype(np.uint8) * 255),
    lambda path, mask: _pillow_writes(path, mask.astype(np.uint8)),
    lambda path, mask: _opencv_writes(path, mask.astype(np.uint8) * 255),
    lambda path, mask: _opencv_writes(path, mask.astype(np.uint8)),
)


@pytest.fixture(scope="session")
def world_written_case(synthetic_case, tmp_path_factory) -> tuple[Path, dict]:
    """The synthetic scenes saved as the world saves them, not by png_write: the ground truth by Pillow
    (labelIds L, every other one with optimize=True; instanceIds and disparity I;16), the predictions by
    OpenCV and Pillow in turn, the masks by each of MASK_WRITERS in turn."""
    source, _ = synthetic_case
    root = tmp_path_factory.mktemp("world_written")
    for part in ("ref", "res"):
        shutil.copytree(source / part, root / part)
    for index, path in enumerate(sorted((root / "ref" / "gtFine").rglob("*_labelIds.png"))):
        _pillow_writes(path, _pixels(path), optimize=bool(index % 2))
    for path in sorted((root / "ref").rglob("*_instanceIds.png")) + sorted((root / "ref").rglob("*_disparity.png")):
        _pillow_writes(path, _pixels(path).astype(np.uint16))
    for index, path in enumerate(sorted((root / "res" / "pixel").rglob("*.png"))):
        (_pillow_writes if index % 2 else _opencv_writes)(path, _pixels(path))
    masks = sorted((root / "res" / "instance").rglob("*.png"))
    for index, path in enumerate(masks):
        MASK_WRITERS[index % len(MASK_WRITERS)](path, _pixels(path, "L") != 0)
    assert len(masks) >= 2 * len(MASK_WRITERS)
    return root, run_official(root, root / "official.json")


def test_files_written_by_pillow_and_opencv_equal_the_official_evaluation(world_written_case) -> None:
    root, official = world_written_case
    assert_equal_to_official(evaluate(root / "ref", root / "res", workers=2), official)


def test_average_instance_sizes_are_the_official_ones() -> None:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    assert AVERAGE_INSTANCE_SIZE == official.args.avgClassSize


def test_issue_89_case_gives_zero_where_the_official_code_crashes() -> None:
    """Every car prediction lies on a car group region; car ground truth exists elsewhere."""
    gt = np.full((40, 60), 7, np.int32)
    gt[0:20, 0:30] = 26  # a group of cars: never matched, an ignore region
    gt[20:40, 30:60] = 26000  # one car instance
    on_group = instance_metric.Prediction(np.flatnonzero((gt == 26).ravel()), 26, 0.9)
    record = instance_metric.evaluate_frame(gt, [on_group])
    totals = instance_metric.combine([record], with_distances=False)
    scores = instance_metric.summarize(totals)
    car = instance_metric.INSTANCE_CLASS_NAMES.index("car")
    np.testing.assert_array_equal(scores.ap_matrix[0, car], np.zeros(10))
    assert math.isnan(scores.ap_matrix[0, 0, 0])  # person: no ground truth, as officially
