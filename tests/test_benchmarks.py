"""The benchmarks run to their end on a tiny case: every row and setting of bench_scoring (with the official
evaluation and the comparison of every metric), its decoding floor, its one-image fixed costs, and
bench_png_decode's check that each reader gives Pillow's pixels. Their timings are not judged here (they go in
the README, measured)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow


def _run(script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_bench_scoring_runs_every_row_and_setting_and_agrees_with_the_official(tmp_path: Path) -> None:
    # 20 instances an image: with 4, the official code meets its known crash (cityscapesScripts issue #89)
    output = _run("bench_scoring.py", "--images", "2", "--instances", "20", "--repeat", "1", "--data", str(tmp_path))
    rows = [line for line in output.splitlines() if line.startswith("| ") and "equal" in line]
    assert len(rows) == 6, output
    assert "metrics compared: all equal to 1e-9" in output
    assert "one image (pillow files, no index), score.py whole process" in output
    floor = output.split("the decoding floor:")[1].split("\n\n")[0]
    assert len([line for line in floor.splitlines() if line.startswith("| ")]) == 2 + 5, output  # all but the project's


def test_bench_scoring_on_the_rle_row_alone(tmp_path: Path) -> None:
    """The fixed costs need a row of mask files: an RLE-only selection prints its table and ends cleanly."""
    arguments = ["--images", "1", "--instances", "3", "--repeat", "1", "--rows", "rle-json", "--data", str(tmp_path)]
    output = _run("bench_scoring.py", *arguments)
    assert "metrics compared: all equal to 1e-9" in output
    assert "one image (" not in output


def test_bench_png_decode_reads_every_kind_as_pillow() -> None:
    output = _run("bench_png_decode.py", "--frames", "1", "--rounds", "1")
    assert "mask, Pillow 1-bit" in output and "photo, OpenCV" in output
