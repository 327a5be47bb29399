"""The scoring outputs as the platforms read them, and atomic writing."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from cityscapes_competition.core import atomic
from cityscapes_competition.scoring.evaluation import evaluate
from cityscapes_competition.scoring.report_html import render_detailed_results
from cityscapes_competition.scoring.score_files import (
    leaderboard_lines,
    scores_document,
    write_score_files,
)
from cityscapes_competition.scoring.scores import LEADERBOARD_KEYS, InstanceScores, PixelScores, Scores


def _scores(ap100m: float | None = 0.25, iou_class: float = 0.5) -> Scores:
    pixel = PixelScores(
        iou_class=iou_class,
        iiou_class=0.4,
        iou_category=0.7,
        iiou_category=0.6,
        class_iou={"road": 0.9, "traffic light": math.nan},
        class_iiou={"car": 0.5},
        category_iou={"flat": 0.95},
        category_iiou={"vehicle": 0.6},
        confusion_matrix=np.eye(34, dtype=np.uint64),
    )
    instance = InstanceScores(
        ap=0.3,
        ap50=0.5,
        ap100m=ap100m,
        ap50m=None if ap100m is None else 0.2,
        class_scores={"car": {"ap": 0.3, "ap50": 0.5}},
        ap_matrix=np.zeros((1, 8, 10)),
        distance_note=None if ap100m is not None else "no disparity",
    )
    return Scores(pixel, instance, ["a warning"], 3, ap100m is not None)


def test_scores_txt_parses_as_codalab_and_codabench_do() -> None:
    text = leaderboard_lines(_scores())
    codalab = {}
    for line in text.splitlines():
        label, value = line.split(":")
        codalab[label] = float(value)
    assert list(codalab) == list(LEADERBOARD_KEYS)
    assert yaml.safe_load(text) == codalab  # Codabench reads the file as YAML
    assert codalab["iou_class"] == 0.5


def test_undefined_leaderboard_score_is_written_as_a_number() -> None:
    text = leaderboard_lines(_scores(iou_class=math.nan))
    assert isinstance(yaml.safe_load(text)["iou_class"], float)


def test_distance_metrics_left_out_without_distance_data() -> None:
    keys = [line.split(":")[0] for line in leaderboard_lines(_scores(ap100m=None)).splitlines()]
    assert "ap100m" not in keys and "ap50m" not in keys and "ap" in keys


def test_scores_json_structure() -> None:
    document = json.loads(json.dumps(scores_document(_scores()), allow_nan=False))
    assert {key: document[key] for key in LEADERBOARD_KEYS} == {
        "iou_class": 0.5,
        "iiou_class": 0.4,
        "iou_category": 0.7,
        "iiou_category": 0.6,
        "ap": 0.3,
        "ap50": 0.5,
        "ap100m": 0.25,
        "ap50m": 0.2,
    }
    assert document["classes"]["traffic light"] == {"iou": None}  # NaN as null
    assert document["classes"]["car"] == {"iiou": 0.5, "ap": 0.3, "ap50": 0.5}
    assert document["categories"]["vehicle"] == {"iiou": 0.6}
    assert len(document["confusion_matrix"]["rows_ground_truth_columns_prediction"]) == 34
    assert document["warnings"] == ["a warning"]


def test_full_precision_survives_the_files(tiny_case, tmp_path) -> None:
    scores = evaluate(tiny_case.ref, tiny_case.res, workers=1)
    write_score_files(tmp_path, scores)
    document = json.loads((tmp_path / "scores.json").read_text())
    text = dict(line.split(": ") for line in (tmp_path / "scores.txt").read_text().splitlines())
    assert document["iou_class"] == scores.pixel.iou_class
    assert float(text["iou_class"]) == scores.pixel.iou_class


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch) -> None:
    target = tmp_path / "scores.txt"
    target.write_text("old: 1.0\n")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic.write_text_atomic(target, "new: 2.0\n")
    assert target.read_text() == "old: 1.0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.txt"]  # no temporary left behind


@pytest.mark.parametrize("fail_in", ["write", "replace"])
def test_result_file_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch, fail_in: str) -> None:
    target = tmp_path / "frankfurt_000000_000294_labelIds.png"
    target.write_bytes(b"old")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, fail_in, crash)
    with pytest.raises(OSError):
        atomic.write_result_file(target, b"new" * 100_000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left behind


def test_result_file_write_replaces_whole_files(tmp_path) -> None:
    target = tmp_path / "mask.png"
    atomic.write_result_file(target, b"x" * 3_000_000)
    atomic.write_result_file(target, b"short")
    assert target.read_bytes() == b"short" and oct(target.stat().st_mode & 0o777) in ("0o644", "0o664", "0o640")
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]


def codabench_stored_scores(scores_json: Path, columns: list[str]) -> dict[str, float]:
    """compute_worker.py push_scores (json.load of scores.json, read before scores.txt), then
    src/apps/api/views/submissions.py upload_submission_scores: keys that are no leaderboard column are
    skipped; each column's value goes into SubmissionScore.score, a DecimalField that cannot be null."""
    stored = {}
    for key, score in json.loads(scores_json.read_text()).items():
        if key not in columns:
            continue
        assert score is not None, f"{key}: SubmissionScore.score is not nullable: the submission loses its scores"
        assert isinstance(score, int | float) and not isinstance(score, bool), (key, score)
        stored[key] = float(score)
    return stored


def test_an_undefined_score_reaches_codabench_as_a_number(tiny_case, tmp_path) -> None:
    """Ground truth without any instance: AP and iIoU are undefined, written as 0 with a warning saying so."""
    from PIL import Image

    for path in tiny_case.ref.rglob("*_gtFine_*Ids.png"):
        values = np.array(Image.open(path))
        values[values >= 24] = 7  # road: no instance class anywhere
        Image.fromarray(values).save(path)
    scores = evaluate(tiny_case.ref, tiny_case.res)
    write_score_files(tmp_path, scores)
    undefined = scores.undefined_leaderboard_keys()
    assert {"ap", "ap50"} <= set(undefined)
    stored = codabench_stored_scores(tmp_path / "scores.json", list(LEADERBOARD_KEYS))
    assert sorted(stored) == sorted(LEADERBOARD_KEYS) and all(stored[key] == 0.0 for key in undefined)
    document = json.loads((tmp_path / "scores.json").read_text())
    assert any(warning.startswith("ap is undefined") for warning in document["warnings"])
    assert "ap is undefined" in (tmp_path / "detailed_results.html").read_text()


def test_the_page_written_is_the_page_rendered(tmp_path) -> None:
    scores = _scores()
    write_score_files(tmp_path, scores)
    assert (tmp_path / "detailed_results.html").read_text() == render_detailed_results(scores)
