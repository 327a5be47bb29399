"""The project's metrics equal the official cityscapesScripts 2.3.0 evaluation to 1e-9.

The official scripts themselves run (tools/run_official_evaluation.py, in a subprocess: they
keep global state) on the same files as the project's scorer, and every metric is compared:
the confusion matrix, each class and category IoU and iIoU, the four means, the whole AP
matrix (distance settings x classes x overlaps) and every average derived from it.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import assert_equal_to_official, run_official
from PIL import Image

from cityscapes_competition.core.arrays import PixelRuns
from cityscapes_competition.core.labels import AVERAGE_INSTANCE_SIZE
from cityscapes_competition.scoring.evaluation import evaluate
from cityscapes_competition.scoring.metrics import instance as instance_metric


def test_edge_cases_equal_the_official_evaluation(edge_case) -> None:
    root, official = edge_case
    ours = evaluate(root / "ref", root / "res", workers=1)
    assert ours.instance.ap100m is not None and not math.isnan(ours.instance.ap100m)
    assert_equal_to_official(ours, official)


def test_worker_processes_give_the_same_scores(edge_case) -> None:
    root, official = edge_case
    assert_equal_to_official(evaluate(root / "ref", root / "res", workers=2), official)


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
    on_group = instance_metric.Prediction(PixelRuns.of_flags((gt == 26).ravel()), 26, 0.9)
    record = instance_metric.evaluate_frame(gt, [on_group])
    totals = instance_metric.combine([record], with_distances=False)
    scores = instance_metric.summarize(totals)
    car = instance_metric.INSTANCE_CLASS_NAMES.index("car")
    np.testing.assert_array_equal(scores.ap_matrix[0, car], np.zeros(10))
    assert math.isnan(scores.ap_matrix[0, 0, 0])  # person: no ground truth, as officially
