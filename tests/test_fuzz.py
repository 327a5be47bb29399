"""Random mutations of valid inputs through both programs: exit 0 or 2, one line, no traceback, bounded memory.

The mutations and the checks are in ``fuzz_driver.py``, which runs in a child process for a bounded time
per program (FUZZ_SECONDS, default 40 s each; a fixed seed per run, printed on failure, replays it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BASELINE, REPO, TinyCase

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "40"))
SEED = int(os.environ.get("FUZZ_SEED", "20261207"))
DRIVER = Path(__file__).with_name("fuzz_driver.py")


def run_driver(*arguments: object) -> dict:
    process = subprocess.run(
        [sys.executable, str(DRIVER), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 300,
        cwd=REPO,
    )
    assert process.returncode == 0, f"the fuzz driver died ({process.returncode}):\n{process.stderr[-3000:]}"
    return json.loads(process.stdout.strip().splitlines()[-1])


def assert_clean(summary: dict, minimum_cases: int, peak_mib: int) -> None:
    print({key: value for key, value in summary.items() if key != "failures"})  # shown with -s: the README's counts
    failures = summary["failures"]
    assert not failures, json.dumps(failures[:5], indent=1)
    assert summary["cases"] >= minimum_cases, summary
    assert summary["peak_mib"] < peak_mib, summary
    assert summary["codes"].get("2", 0) > 0, summary  # the mutations do reach the refusals


def test_scoring_survives_mutated_results(tiny_case_template: TinyCase, tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(tiny_case_template.ref, template / "ref")
    shutil.copytree(tiny_case_template.res, template / "res")
    summary = run_driver("scoring", template, tmp_path / "work", FUZZ_SECONDS, SEED)
    assert_clean(summary, minimum_cases=int(FUZZ_SECONDS), peak_mib=1024)  # about 6 cases a second here
    assert summary["codes"].get("0", 0) > 0, summary  # harmless mutations still score


@pytest.fixture(scope="module")
def tiny_input_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz_input") / "leftImg8bit" / "val" / "frankfurt"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in range(2):
        pixels = rng.integers(0, 255, (128, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"frankfurt_000000_{frame:06d}_leftImg8bit.png")
    return root.parents[2]


def test_ingestion_survives_mutated_submissions(tiny_input_data: Path, baseline_h5: Path, tmp_path: Path) -> None:
    as_h5 = tmp_path / "baseline_h5"  # HDF5 damage (superblock, object headers) is mostly unreachable in a .keras
    as_h5.mkdir()
    shutil.copy(BASELINE / "metadata", as_h5 / "metadata")
    shutil.copy(baseline_h5, as_h5 / "model.h5")
    summary = run_driver("ingestion", tiny_input_data, tmp_path / "work", FUZZ_SECONDS, SEED, BASELINE, as_h5)
    assert_clean(summary, minimum_cases=int(FUZZ_SECONDS // 4), peak_mib=3072)  # about 3 cases a second here
