"""Tests of tools/run_official_evaluation.py, the harness running the official cityscapesScripts code.

A tiny hand-made dataset (2 images of 64x32) whose official results can be worked out by hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "run_official_evaluation.py"

H, W = 32, 64
BASELINE, FX = 0.209313, 2262.52  # baseline * fx ~ 473.57

STEM1 = "aachen_000000_000019"
STEM2 = "bochum_000000_000313"


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _disparity_for_depth(depth: float) -> int:
    # depth = baseline * fx / ((p - 1) / 256)  ->  p = 1 + 256 * baseline * fx / depth
    return round(1 + 256 * BASELINE * FX / depth)


def build_dataset(root: Path, big_car_depth: float = 70.0) -> tuple[Path, Path]:
    """Ground truth + predictions; returns (GT_ROOT, RESULTS_ROOT)."""
    gt_root, res_root = root / "gt", root / "res"

    # ---- image 1 ----
    lab1 = np.full((H, W), 7, np.uint8)  # road
    lab1[0:8, :] = 23  # sky
    lab1[0:4, 0:10] = 0  # void (unlabeled), 40 px
    inst1 = lab1.astype(np.uint16)
    lab1[10:20, 2:22] = 26  # car 26001, 200 px
    inst1[10:20, 2:22] = 26001
    lab1[:, 30:62] = 26  # car 26002, 1024 px (the only car >= 1000 px)
    inst1[:, 30:62] = 26002
    lab1[20:30, 2:14] = 24  # person 24001, 120 px
    inst1[20:30, 2:14] = 24001
    lab1[24:32, 16:28] = 26  # car group, 96 px
    inst1[24:32, 16:28] = 26

    pred1 = lab1.copy()
    pred1[lab1 == 0] = 7  # void predicted as road (ignored)
    pred1[:, 30:34] = 27  # 128 px of car 26002 predicted as truck

    disp1 = np.zeros((H, W), np.uint16)
    big = np.zeros((H, 32), np.uint16)
    big[:24, :] = _disparity_for_depth(big_car_depth)  # 3/4 valid, 1/4 invalid (0)
    disp1[:, 30:62] = big
    disp1[10:20, 2:22] = _disparity_for_depth(20.0)

    # ---- image 2 ----
    lab2 = np.full((H, W), 7, np.uint8)
    lab2[0:6, :] = 23
    inst2 = lab2.astype(np.uint16)
    lab2[10:20, 40:52] = 24  # person 24001, 120 px
    inst2[10:20, 40:52] = 24001
    lab2[20:30, 5:25] = 26  # car 26001, 200 px
    inst2[20:30, 5:25] = 26001

    pred2 = lab2.copy()
    pred2[20:30, 5:10] = 7  # 50 px of car predicted as road
    pred2[30:32, 5:25] = 26  # 40 px of road predicted as car

    disp2 = np.full((H, W), _disparity_for_depth(30.0), np.uint16)

    for stem, city, lab, inst, pred, disp in (
        (STEM1, "aachen", lab1, inst1, pred1, disp1),
        (STEM2, "bochum", lab2, inst2, pred2, disp2),
    ):
        gt_dir = gt_root / "gtFine" / "val" / city
        _save(gt_dir / f"{stem}_gtFine_labelIds.png", lab)
        _save(gt_dir / f"{stem}_gtFine_instanceIds.png", inst)
        _save(gt_root / "disparity" / "val" / city / f"{stem}_disparity.png", disp)
        cam = gt_root / "camera" / "val" / city / f"{stem}_camera.json"
        cam.parent.mkdir(parents=True, exist_ok=True)
        cam.write_text(json.dumps({"extrinsic": {"baseline": BASELINE}, "intrinsic": {"fx": FX}}))
        _save(res_root / "pixel" / city / f"{stem}_pred.png", pred)

    def mask(*slices) -> np.ndarray:
        m = np.zeros((H, W), np.uint8)
        m[slices] = 255
        return m

    inst_dir = res_root / "instance"
    masks = {
        STEM1: [
            ("car_a.png", mask(slice(10, 20), slice(2, 22)), 26, 0.9),  # car 26001, exact
            ("person_b.png", mask(slice(20, 30), slice(2, 14)), 24, 0.8),  # person 24001, exact
            ("car_c.png", mask(slice(24, 32), slice(16, 28)), 26, 0.5),  # on the car group: ignored
            ("car_f.png", mask(slice(0, 32), slice(30, 62)), 26, 0.6),  # car 26002, exact
        ],
        STEM2: [
            ("car_d.png", mask(slice(20, 30), slice(5, 25)), 26, 0.7),  # car 26001, exact
            ("person_e.png", mask(slice(25, 30), slice(40, 60)), 24, 0.3),  # on road: false positive
        ],
    }
    for stem, entries in masks.items():
        lines = []
        for name, m, label, conf in entries:
            _save(inst_dir / "masks" / f"{stem}_{name}", m)
            lines.append(f"masks/{stem}_{name} {label} {conf}")
        (inst_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return gt_root, res_root


def _listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def run_harness(gt_root: Path, res_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--gt", str(gt_root), "--results", str(res_root), "--out", str(out)]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120, cwd=out.parent)


def _site_packages_cache() -> Path:
    """The official default gtInstances cache location (found without importing the package)."""
    spec = importlib.util.find_spec("cityscapesscripts")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "evaluation" / "gtInstances.json"


@pytest.mark.parametrize(("big_car_depth", "ap50m"), [(70.0, math.nan), (20.0, 1.0)])
def test_official_harness_values(tmp_path, big_car_depth, ap50m):
    gt_root, res_root = build_dataset(tmp_path, big_car_depth)
    before = _listing(tmp_path)
    cache_existed = _site_packages_cache().exists()
    out = tmp_path / "out.json"

    proc = run_harness(gt_root, res_root, out, "--distances")
    assert proc.returncode == 0, proc.stderr
    assert _listing(tmp_path).keys() - before.keys() == {"out.json"}
    assert all(_listing(tmp_path)[k] == v for k, v in before.items())
    assert _site_packages_cache().exists() == cache_existed

    data = json.loads(out.read_text())
    assert set(data) >= {"pixel", "instance", "seconds", "images"}
    assert data["images"] == 2
    assert set(data["seconds"]) >= {"pixel", "instance", "distance_fill"}

    # ---- pixel: car IoU by hand ----
    pixel = data["pixel"]
    assert set(pixel) >= {
        "confMatrix",
        "classScores",
        "classInstScores",
        "categoryScores",
        "categoryInstScores",
        "averageScoreClasses",
        "averageScoreInstClasses",
        "averageScoreCategories",
        "averageScoreInstCategories",
    }
    conf = np.array(pixel["confMatrix"])
    assert conf.shape == (34, 34)
    assert conf.sum() == 2 * H * W
    tp = 200 + (1024 - 128) + 96 + 150
    fn = 128 + 50
    fp = 40
    assert conf[26, 26] == tp
    assert conf[26, 27] == 128
    assert conf[26, 7] == 50
    assert conf[7, 26] == 40
    assert conf[0, 7] == 40  # void predicted as road: in the matrix, not in any score
    assert pixel["classScores"]["car"] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    assert pixel["classScores"]["person"] == 1.0
    assert math.isnan(pixel["classScores"]["unlabeled"])

    # ---- instance: AP by hand ----
    averages = data["instance"]["averages"]
    classes = averages["classes"]
    # car: the 3 ground-truth cars each matched exactly, the group prediction ignored -> AP 1
    # (not exactly 1.0: the official step widths come from a float convolution, 3 recall steps of 1/3)
    assert classes["car"]["ap"] == pytest.approx(1.0, abs=1e-12)
    assert classes["car"]["ap50%"] == pytest.approx(1.0, abs=1e-12)
    # person: one exact match (0.8), one false positive (0.3), one missed -> 0.5 with the official curve
    assert classes["person"]["ap"] == pytest.approx(0.5, abs=1e-12)
    assert math.isnan(classes["truck"]["ap"])
    assert averages["allAp"] == pytest.approx(0.75, abs=1e-12)
    assert averages["allAp50%"] == pytest.approx(0.75, abs=1e-12)
    # distances: only car 26002 (1024 px, distConf 0.75) is >= 1000 px
    assert classes["car"]["ap100m"] == 1.0
    assert math.isnan(classes["person"]["ap100m"])
    assert averages["allAp100m"] == 1.0
    if math.isnan(ap50m):
        assert math.isnan(classes["car"]["ap50m"])
        assert math.isnan(averages["allAp50m"])
    else:
        assert classes["car"]["ap50m"] == ap50m
        assert averages["allAp50m"] == ap50m
        assert averages["allAp50%50m"] == ap50m
    assert np.array(data["instance"]["resultApMatrix"]).shape == (3, 8, 10)


def test_official_harness_without_distances(tmp_path):
    gt_root, res_root = build_dataset(tmp_path)
    out = tmp_path / "out.json"
    proc = run_harness(gt_root, res_root, out, "--tasks", "instance")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert "pixel" not in data
    averages = data["instance"]["averages"]
    assert averages["allAp"] == pytest.approx(0.75, abs=1e-12)
    assert "allAp50m" not in averages
    assert np.array(data["instance"]["resultApMatrix"]).shape == (1, 8, 10)


def test_official_harness_reports_issue_89(tmp_path):
    gt_root, res_root = build_dataset(tmp_path)
    # Every car prediction only on the car group: ground-truth cars, car predictions, all ignored.
    for txt in (res_root / "instance").glob("*.txt"):
        stem = txt.stem
        txt.write_text(f"masks/{STEM1}_car_c.png 26 0.5\n" if stem == STEM1 else "")
    out = tmp_path / "out.json"
    proc = run_harness(gt_root, res_root, out, "--tasks", "instance")
    assert proc.returncode != 0
    assert "#89" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_official_harness_missing_folder(tmp_path):
    gt_root, _ = build_dataset(tmp_path)
    proc = run_harness(gt_root, tmp_path / "nope", tmp_path / "out.json")
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr
