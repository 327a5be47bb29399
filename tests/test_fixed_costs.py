"""What makes the scorer's fixed costs small changes nothing it writes, and stays so: no plotting library (the
report's charts are HTML), the workers' shares of the frames, the workers' memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cityscapes_competition.scoring import evaluation
from cityscapes_competition.scoring.evaluation import _chunks, _worker_count
from cityscapes_competition.scoring.score_files import DETAILED_RESULTS

REPO = Path(__file__).resolve().parents[1]


# --- no plotting library ------------------------------------------------------------------------


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reports imported, in every process that wrote to ``stderr``."""
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_score_py_never_imports_matplotlib(tiny_case, tmp_path: Path) -> None:
    # its import and drawing were a third of a 40-image run; the charts are HTML now (report_charts.py)
    done = subprocess.run(
        [sys.executable, "-I", "-X", "importtime", REPO / "scoring_program" / "score.py", tiny_case.ref.parent,
         tmp_path / "out", "--workers", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = _imported(done.stderr)
    assert "numpy" in imported and "cityscapes_competition.scoring.report_html" in imported  # it does report them
    assert not {name for name in imported if name.split(".")[0] == "matplotlib"}
    page = (tmp_path / "out" / DETAILED_RESULTS).read_text()
    assert page.count('<table class="bars">') == 2 and '<table class="heat confusion">' in page


# --- the workers' shares ------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 2, 7, 8, 40, 41, 500])
@pytest.mark.parametrize("workers", [2, 4])
def test_the_shares_keep_the_frames_in_order_and_shrink_to_single_frames(frames: int, workers: int) -> None:
    chunks = _chunks(list(range(frames)), workers)
    assert [frame for chunk in chunks for frame in chunk] == list(range(frames))
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) <= evaluation._MAX_CHUNK
    assert sizes[-min(workers, frames) :] == [1] * min(workers, frames)  # every worker ends on one frame


def test_workers_start_from_two_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "tensorflow_loaded", lambda: False)
    assert _worker_count(1, 2) == 0
    assert _worker_count(2, 2) == 2
    assert _worker_count(40, 2) == 2
    assert _worker_count(40, 1) == 0
    monkeypatch.setattr(evaluation, "tensorflow_loaded", lambda: True)  # workers start afresh: ~0.3 s
    assert _worker_count(7, 2) == 0
    assert _worker_count(8, 2) == 2


def test_a_failing_score_py_leaves_no_folder(tmp_path: Path) -> None:
    environment = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    done = subprocess.run(
        [sys.executable, "-I", REPO / "scoring_program" / "score.py", tmp_path / "nothing", tmp_path / "out"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_workers_reuse_freed_buffers_instead_of_faulting_in_fresh_pages(tmp_path) -> None:
    """Reading 8-bit masks (each inflated into a fresh 2 MB buffer): with glibc mapping every such buffer from
    the kernel (its threshold pinned low here, as its dynamic one often is), each costs ~500 page faults; after
    keep_freed_memory the heap's freed buffers are used again."""
    code = (
        "import ctypes, resource, sys\n"
        "import numpy as np\n"
        "from cityscapes_competition.core.processes import keep_freed_memory\n"
        "from cityscapes_competition.png.png_io import read_masks_runs\n"
        "from cityscapes_competition.png.png_write import encode_png\n"
        "folder = sys.argv[1]\n"
        "paths = []\n"
        "for index in range(10):\n"
        "    mask = np.zeros((1024, 2048), np.uint8)\n"
        "    mask[100 + index : 300, 500 : 700 + index] = 255\n"
        "    path = f'{folder}/mask_{index}.png'\n"
        "    open(path, 'wb').write(encode_png(mask, up_filter=False))\n"
        "    paths.append(path)\n"
        "def faults():\n"
        "    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    for _ in range(3):\n"
        "        list(read_masks_runs(paths))\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start\n"
        "ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: every buffer over 128 KB mapped afresh\n"
        "faults()\n"
        "before = faults()\n"
        "keep_freed_memory()\n"
        "faults()\n"
        "print(before, faults())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO, capture_output=True, text=True
    )
    before, after = map(int, done.stdout.split())
    assert before > 30 * 400 and after < 30 * 20, (before, after)
