"""What makes the scorer's fixed costs small changes nothing it writes: the chart process, matplotlib's import
(its font list, no property docs), the charts' PNG encoding, the workers' shares of the frames."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cityscapes_competition.core import processes
from cityscapes_competition.core.processes import ForkedHelper
from cityscapes_competition.scoring import evaluation, program, report_charts
from cityscapes_competition.scoring.evaluation import _chunks, _worker_count
from cityscapes_competition.scoring.report_charts import CHART_FONTS, FONT_LIST_VERSION, chart_jobs, draw_charts
from cityscapes_competition.scoring.score_files import DETAILED_RESULTS, draw_charts_in_two_processes
from cityscapes_competition.scoring.scores import InstanceScores, PixelScores, Scores

REPO = Path(__file__).resolve().parents[1]


def _scores() -> Scores:
    """Scores whose four charts carry text, bars, every cell kind and lines."""
    rng = np.random.default_rng(3)
    names = report_charts.EVAL_CLASS_NAMES
    pixel = PixelScores(
        iou_class=0.5,
        iiou_class=0.4,
        iou_category=0.7,
        iiou_category=0.6,
        class_iou={name: float(v) for name, v in zip(names, rng.random(len(names)), strict=True)},
        class_iiou={"car": 0.5, "person": 0.3},
        category_iou={"flat": 0.95},
        category_iiou={"vehicle": 0.6},
        confusion_matrix=rng.integers(0, 1000, (34, 34)).astype(np.uint64),
    )
    instance = InstanceScores(
        ap=0.3,
        ap50=0.5,
        ap100m=0.25,
        ap50m=0.2,
        class_scores={"car": {"ap": 0.3, "ap50": 0.5}, "bus": {"ap": 0.1, "ap50": 0.2}},
        ap_matrix=rng.random((3, 8, 10)),
        distance_note=None,
    )
    return Scores(pixel, instance, [], 3, True)


def _pixels(uri: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


# --- matplotlib's import ------------------------------------------------------------------------


def test_the_chart_font_list_is_what_matplotlib_reads_from_the_font_files() -> None:
    from matplotlib import font_manager, ft2font
    from matplotlib.cbook import _get_data_path

    assert font_manager.FontManager.__version__ == FONT_LIST_VERSION  # else update it (a new matplotlib)
    for entry in report_charts.chart_font_list()["ttflist"]:
        read = font_manager.ttfFontProperty(ft2font.FT2Font(_get_data_path(entry["fname"])))
        expected = {key: getattr(read, key) for key in ("name", "style", "variant", "weight", "stretch", "size")}
        assert {key: entry[key] for key in expected} == expected
    assert len(CHART_FONTS) == 4


_DRAW = (
    "import json, os, pickle, sys\n"
    "from cityscapes_competition.scoring import report_charts\n"
    "charts = report_charts.draw_charts(pickle.loads(sys.stdin.buffer.read()))\n"
    "import matplotlib\n"
    "print(json.dumps({'charts': charts, 'cache': matplotlib.get_cachedir(),\n"
    "                  'MPLCONFIGDIR': os.environ.get('MPLCONFIGDIR'), 'fonts': len(__import__(\n"
    "                  'matplotlib.font_manager').font_manager.fontManager.ttflist)}))\n"
)


def _draw_in_a_new_process(environment: dict[str, str]) -> dict:
    import pickle

    done = subprocess.run(
        [sys.executable, "-c", _DRAW],
        input=pickle.dumps(chart_jobs(_scores())),
        capture_output=True,
        check=True,
        cwd=REPO,
        env=environment,
    )
    return json.loads(done.stdout)


def test_the_charts_are_the_same_with_the_chart_font_list_as_with_every_font_of_the_machine(tmp_path: Path) -> None:
    base = {key: value for key, value in os.environ.items() if key != "MPLCONFIGDIR"}
    own = _draw_in_a_new_process(base)
    every = _draw_in_a_new_process({**base, "MPLCONFIGDIR": str(tmp_path)})  # matplotlib builds its list
    assert own["fonts"] == 4 and every["fonts"] > 4
    assert own["charts"] == every["charts"]
    # the folder of the chart font list is gone after the import, and not left for child processes
    assert own["MPLCONFIGDIR"] is None and not Path(own["cache"]).exists()
    assert Path(every["cache"]) == tmp_path  # the user's own MPLCONFIGDIR is kept


def test_the_png_holds_the_pixels_savefig_writes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def savefig(figure) -> str:
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=report_charts.DPI, metadata={"Software": None}, facecolor="white")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    figures = []
    original = report_charts._png_data_uri
    report_charts._png_data_uri = lambda figure: figures.append(figure) or original(figure)
    try:
        charts = draw_charts(chart_jobs(_scores()))
    finally:
        report_charts._png_data_uri = original
    assert len(figures) == len(charts) == 4
    for figure, uri in zip(figures, charts.values(), strict=True):
        assert uri is not None
        assert np.array_equal(_pixels(uri), _pixels(savefig(figure)))
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert image.mode == "RGB" and round(image.info["dpi"][0]) == report_charts.DPI


# --- the chart process --------------------------------------------------------------------------


def _noop() -> None:
    pass


def _fail(*_: object) -> None:
    raise RuntimeError("fails in the helper")


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads another test left running would keep the helper from forking (by design): not here."""
    monkeypatch.setattr(processes, "fork_is_safe", lambda: True)


def test_the_helper_answers_once(forking: None) -> None:
    helper = ForkedHelper.fork(_noop, lambda request: {"pid": os.getpid(), "twice": request * 2})
    assert helper is not None
    answer = helper.ask(21)
    assert answer["twice"] == 42 and answer["pid"] != os.getpid()
    assert helper.pid is None and helper.ask(1) is None  # waited for; asked once
    helper.stop()  # nothing left to stop


@pytest.mark.parametrize(("prepare", "answer"), [(_fail, repr), (_noop, _fail)])
def test_a_failing_helper_answers_none(forking: None, prepare, answer) -> None:
    helper = ForkedHelper.fork(prepare, answer)
    assert helper is not None
    assert helper.ask("x" * 200_000) is None  # more than a pipe holds: the write fails or is never read


def test_a_helper_never_asked_is_stopped(forking: None) -> None:
    helper = ForkedHelper.fork(_noop, repr)
    assert helper is not None
    pid = helper.pid
    helper.stop()
    assert helper.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left


def test_no_helper_where_a_fork_would_copy_another_threads_locks() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert ForkedHelper.fork(_noop, repr) is None
    finally:
        release.set()
        thread.join()


def test_the_chart_process_draws_the_charts_as_this_process_does(forking: None) -> None:
    jobs = chart_jobs(_scores())
    helper = ForkedHelper.fork(program._load_chart_library, program._draw_charts)
    assert helper is not None
    assert helper.ask(jobs) == draw_charts_in_two_processes(jobs) == draw_charts(jobs)


def _score(tiny_case, output: Path, chart_process: bool) -> str:
    args = program.make_parser("score.py", program.DESCRIPTION, program.add_arguments).parse_args(
        [str(tiny_case.ref.parent), str(output), "--workers", "2"]
    )
    assert program.run(args, chart_process=chart_process) == 0
    return (output / DETAILED_RESULTS).read_text()


def test_score_py_makes_the_same_page_with_the_chart_process_as_without(
    forking: None, tiny_case, tmp_path: Path
) -> None:
    assert _score(tiny_case, tmp_path / "with", True) == _score(tiny_case, tmp_path / "without", False)


def test_a_failing_chart_process_leaves_the_charts_to_this_process(
    forking: None, tiny_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _score(tiny_case, tmp_path / "expected", False)
    monkeypatch.setattr(program, "_draw_charts", _fail)
    assert _score(tiny_case, tmp_path / "fallback", True) == expected
    assert expected.count("data:image/png;base64,") == 4


# --- the workers' shares ------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 2, 7, 8, 40, 41, 500])
@pytest.mark.parametrize("workers", [2, 4])
def test_the_shares_keep_the_frames_in_order_and_shrink_to_single_frames(frames: int, workers: int) -> None:
    chunks = _chunks(list(range(frames)), workers)
    assert [frame for chunk in chunks for frame in chunk] == list(range(frames))
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) <= evaluation._MAX_CHUNK
    assert sizes[-min(workers, frames) :] == [1] * min(workers, frames)  # every worker ends on one frame


def test_workers_start_from_two_frames_or_for_one_with_work_to_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "tensorflow_loaded", lambda: False)
    assert _worker_count(1, 2, overlap=False) == 0
    assert _worker_count(1, 2, overlap=True) == 1
    assert _worker_count(2, 2, overlap=False) == 2
    assert _worker_count(40, 2, overlap=False) == 2
    assert _worker_count(40, 1, overlap=True) == 0
    monkeypatch.setattr(evaluation, "tensorflow_loaded", lambda: True)  # workers start afresh: ~0.3 s
    assert _worker_count(7, 2, overlap=True) == 0
    assert _worker_count(8, 2, overlap=False) == 2


_STOPPED_MID_IMPORT = """
import os, sys, tempfile, time
tempfile.tempdir = sys.argv[1]
from cityscapes_competition.core.processes import ForkedHelper
from cityscapes_competition.scoring import program
helper = ForkedHelper.fork(program._load_chart_library, program._draw_charts)
assert helper is not None
deadline = time.monotonic() + 20
while not any(os.scandir(sys.argv[1])) or not os.listdir(os.path.join(sys.argv[1], os.listdir(sys.argv[1])[0])):
    assert time.monotonic() < deadline, "the chart process never made its folder"  # for the chart font list
    time.sleep(0.0002)
helper.stop()
assert os.listdir(sys.argv[1]) == [], os.listdir(sys.argv[1])
"""


def test_a_chart_process_stopped_while_it_imports_matplotlib_leaves_no_folder(tmp_path: Path) -> None:
    # score.py stops it so when scoring fails (a participant's mistake): the folder would be left at every failure
    subprocess.run([sys.executable, "-c", _STOPPED_MID_IMPORT, str(tmp_path)], check=True, cwd=REPO, timeout=60)


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
        "from cityscapes_competition.png.png_io import read_masks_pixels\n"
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
        "        list(read_masks_pixels(paths))\n"
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
