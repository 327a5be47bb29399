"""Scoring benchmark: the official cityscapesScripts evaluation against this project, in one run, on files
written the way participants and the Cityscapes toolchain write them.

Generates once, cached under data/benchmark/n<images>_i<instances>_s<seed>/ (outside the timings):
  ref/, res/      the synthetic test split at 2048x1024 and results of ~40 predicted instances per image,
                  in this project's own encoding (every row Up-filtered, zlib-ng): the earlier benchmarks;
  world/ref/      the same ground truth as the official tools encode it: Pillow's default save of the
                  labelIds (L) and instanceIds (I;16) images (the disparity likewise, I;16);
  world/ref-built/  world/ref as the data builder places it (its PNGs re-encoded Up-filtered, pixel for pixel);
  world/<row>/    the same predictions as each kind of writer writes them, with its default settings.
Then, row by row, on the same files: the official evaluation (tools/run_official_evaluation.py) and this
project's scoring program as the platform starts it (a whole process: start-up, discovery, evaluation,
the three output files), in three settings (SETTINGS): as deployed (the builder's ground truth and the
reference index), the ground truth as downloaded with the index, and as downloaded without any index.
Every metric is compared with the official one to 1e-9; the peak memory is the resident set of the whole
process tree, sampled.

OpenCV (opencv-python-headless) writes the OpenCV rows; it is a benchmark and test dependency only, and
those rows are left out, with a note, where it is not installed.

    python benchmarks/bench_scoring.py [--images 500] [--instances 40] [--workers 2] [--rows pillow,project]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cityscapes_competition.core.labels import NUM_LABEL_IDS, color_of  # noqa: E402
from cityscapes_competition.core.processes import keep_freed_memory  # noqa: E402
from cityscapes_competition.organiser.competition_data import place_reference_file  # noqa: E402
from cityscapes_competition.png.fast_png import row_filters  # noqa: E402
from cityscapes_competition.png.png_io import read_single_channel  # noqa: E402
from cityscapes_competition.scoring.evaluation import plan_evaluation  # noqa: E402
from cityscapes_competition.scoring.frame_evaluation import FrameJob  # noqa: E402
from cityscapes_competition.scoring.groundtruth import add_disparity, decode_ground_truth, read_file  # noqa: E402
from cityscapes_competition.scoring.reference_index import INDEX_NAME, build_reference_index  # noqa: E402
from cityscapes_competition.scoring.results_format import MaskFile  # noqa: E402
from cityscapes_competition.synthetic import results as synthetic_results  # noqa: E402
from cityscapes_competition.synthetic import scenes as synthetic  # noqa: E402

HAVE_OPENCV = importlib.util.find_spec("cv2") is not None
GT_SUFFIXES = ("_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_disparity.png", "_camera.json")


# --- the rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    labels: str  # writer of the pixel-level label maps (see _write_labels)
    masks: str  # writer of the instance masks (see _write_mask), or "rle": one RLE JSON file
    official_on: str | None = None  # the row whose files the official evaluation reads (it cannot read RLE JSON)

    @property
    def opencv(self) -> bool:
        return "opencv" in (self.labels, self.masks)

    @property
    def project(self) -> bool:
        return self.labels == "project"


ROWS = (
    Row("pillow", "Pillow: label maps L, masks '1'", "pillow-L", "pillow-1"),
    Row("pillow-palette", "Pillow: label maps P (palette), masks L 0/255", "pillow-P", "pillow-255"),
    Row("opencv", "OpenCV cv2.imwrite: label maps, masks 0/255", "opencv", "opencv-255"),
    Row("opencv-01", "OpenCV cv2.imwrite: label maps, masks 0/1", "opencv", "opencv-01"),
    Row("rle-json", "Pillow label maps L, instances as one RLE JSON", "pillow-L", "rle", official_on="pillow"),
    Row("project", "this project's encoding (all rows Up, zlib-ng): earlier rounds", "project", "project"),
)
_PALETTE = bytes(channel for label_id in range(NUM_LABEL_IDS) for channel in color_of(label_id))


# --- generation (cached, never timed) -----------------------------------------------------------


def prepare(data_root: Path, images: int, instances: int, seed: int) -> Path:
    """The synthetic split and its results in the project's encoding (the source of every row)."""
    case = data_root / f"n{images}_i{instances}_s{seed}"
    marker = case / ".complete"
    if marker.exists():
        return case
    shutil.rmtree(case, ignore_errors=True)
    print(f"generating {images} frames at 2048x1024 and their results (cached in {case}) ...", flush=True)
    start = time.perf_counter()
    synthetic.generate_split(case / "ref", "val", images, seed=seed, progress=True)
    synthetic_results.generate_results(case / "ref", case / "res", seed=seed, instances_per_image=instances)
    marker.write_text("ok")
    print(f"generated in {time.perf_counter() - start:.0f} s", flush=True)
    return case


@dataclass(frozen=True)
class Frame:
    folder: Path  # <split>/<city>, relative
    stem: str


def _frames(case: Path) -> list[Frame]:
    gt = case / "ref" / "gtFine"
    return [
        Frame(path.parent.relative_to(gt), path.name[: -len(GT_SUFFIXES[0])])
        for path in sorted(gt.rglob(f"*{GT_SUFFIXES[0]}"))
    ]


def prepare_world(case: Path, rows: Iterable[Row], workers: int) -> None:
    """world/ref and world/<row> for the rows not yet generated, frame by frame in worker processes."""
    world = case / "world"
    todo = [row for row in rows if not row.project and not (world / f".complete-{row.name}").exists()]
    gt_todo = not (world / ".complete-ref").exists()
    if not todo and not gt_todo:
        return
    print(f"writing the ground truth with Pillow and the results of {[r.name for r in todo]} ...", flush=True)
    start = time.perf_counter()
    for name in ["ref"] * gt_todo + [row.name for row in todo]:
        shutil.rmtree(world / name, ignore_errors=True)
    convert = partial(_convert_frame, case=case, rows=tuple(todo), with_gt=gt_todo)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rle = [entry for entries in pool.map(convert, _frames(case), chunksize=4) for entry in entries]
    for row in todo:
        if row.masks == "rle":
            (world / row.name / "instance").mkdir(parents=True, exist_ok=True)
            (world / row.name / "instance" / "results.json").write_text(json.dumps(rle))
        (world / f".complete-{row.name}").write_text("ok")
    if gt_todo:
        (world / ".complete-ref").write_text("ok")
    print(f"written in {time.perf_counter() - start:.0f} s", flush=True)


def prepare_built_gt(case: Path) -> None:
    """world/ref-built: world/ref as the data builder places it (``competition_data.place_reference_file``:
    the Pillow-written PNGs re-encoded Up-filtered, pixel for pixel; the camera files as they are)."""
    built = case / "world" / "ref-built"
    marker = case / "world" / ".complete-ref-built"
    if marker.exists():
        return
    shutil.rmtree(built, ignore_errors=True)
    source = case / "world" / "ref"
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != INDEX_NAME:
            place_reference_file(path, built / path.relative_to(source))
    marker.write_text("ok")


def _convert_frame(frame: Frame, case: Path, rows: tuple[Row, ...], with_gt: bool) -> list[dict]:
    """Write one frame's files for the world ground truth and every row; the RLE JSON entries returned."""
    if with_gt:
        _write_world_gt(case, frame)
    labels = _read(case / "res" / "pixel" / frame.folder / f"{frame.stem}_leftImg8bit.png")
    lines = _instance_lines(case / "res" / "instance" / frame.folder / f"{frame.stem}.txt")
    masks = {name: _read(case / "res" / "instance" / frame.folder / name) != 0 for name, _, _ in lines}
    rle: list[dict] = []
    for row in rows:
        res = case / "world" / row.name
        _write_labels(row.labels, res / "pixel" / frame.folder / f"{frame.stem}_leftImg8bit.png", labels)
        if row.masks == "rle":
            rle += [_rle_entry(frame.stem, masks[name], label, score) for name, label, score in lines]
            continue
        folder = res / "instance" / frame.folder
        for name, _, _ in lines:
            _write_mask(row.masks, folder / name, masks[name])
        text = "".join(f"{name} {label} {score}\n" for name, label, score in lines)
        (folder / f"{frame.stem}.txt").write_text(text)
    return rle


def _write_world_gt(case: Path, frame: Frame) -> None:
    """The ground truth as cityscapesScripts writes it (json2labelImg, json2instanceImg): Pillow's default save."""
    for suffix, kind in zip(GT_SUFFIXES, ("gtFine", "gtFine", "disparity", "camera"), strict=True):
        source = case / "ref" / kind / frame.folder / f"{frame.stem}{suffix}"
        target = case / "world" / "ref" / kind / frame.folder / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if suffix.endswith(".json"):
            shutil.copyfile(source, target)
        elif "labelIds" in suffix:
            Image.fromarray(_read(source).astype(np.uint8)).save(target)  # mode L
        else:
            # Pillow >= 11 no longer writes json2instanceImg's mode "I" as PNG; I;16 gives the file older ones wrote
            Image.fromarray(_read(source).astype(np.uint16)).save(target)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _instance_lines(path: Path) -> list[tuple[str, int, str]]:
    """(mask path, label id, confidence as written) per line of an official instance txt file."""
    lines = []
    for line in path.read_text().splitlines():
        name, label, score = line.split()
        lines.append((name, int(label), score))
    return lines


def _write_labels(writer: str, path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if writer == "pillow-L":
        Image.fromarray(labels).save(path)
    elif writer == "pillow-P":  # label ids as palette indices, in the Cityscapes colours: viewable
        image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
        image.putpalette(_PALETTE)
        image.save(path)
    elif writer == "opencv":
        _imwrite(path, labels)
    else:
        raise ValueError(writer)


def _write_mask(writer: str, path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if writer == "pillow-1":
        Image.fromarray(mask).save(path)  # a bool array is mode "1"
    elif writer == "pillow-255":
        Image.fromarray(mask.astype(np.uint8) * np.uint8(255)).save(path)
    elif writer == "opencv-255":
        _imwrite(path, mask.astype(np.uint8) * np.uint8(255))
    elif writer == "opencv-01":
        _imwrite(path, mask.astype(np.uint8))
    else:
        raise ValueError(writer)


def _imwrite(path: Path, pixels: np.ndarray) -> None:
    import cv2  # a benchmark and test dependency only

    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cv2.imwrite failed on {path}")


def _rle_entry(stem: str, mask: np.ndarray, label: int, score: str) -> dict:
    from pycocotools import mask as rle_codec

    encoded = rle_codec.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "image_id": stem,
        "category_id": label,
        "segmentation": {"size": [int(n) for n in encoded["size"]], "counts": encoded["counts"].decode("ascii")},
        "score": float(score),
    }


# --- measuring ----------------------------------------------------------------------------------


class PeakMemory:
    """Peak summed resident memory of a process and all its descendants, sampled every 20 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(self.pid)))
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                stack.extend(int(child) for child in children)
        except OSError:
            continue
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    peak: int  # bytes, resident, all processes
    cpu: float  # seconds of user + system time, all processes: what other jobs on a shared machine barely change


def timed(command: list[str]) -> Timing:
    """Wall time, peak memory and CPU time of ``command`` (without the cv2 path a PYTHONPATH may add)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # counts every descendant once it is waited for
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    memory = PeakMemory(process.pid)
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - start
    peak = memory.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode:
        sys.exit(f"{command[1]} failed:\n{stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, peak, cpu)


def _warm(folders: Iterable[Path]) -> None:
    """Read every file once, so that no run pays for the disk and all read from the page cache."""
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and "leftImg8bit" not in path.parts:
                path.read_bytes()


@dataclass
class Measured:
    row: Row
    official_seconds: float = math.nan  # the official evaluation calls (as timed by the official harness)
    official: Timing | None = None  # its whole process
    runs: dict[str, list[Timing]] = field(default_factory=lambda: {setting: [] for setting in SETTINGS})
    disagreements: list[str] = field(default_factory=list)


def run_official(gt: Path, res: Path, scratch: Path) -> tuple[dict, Timing]:
    out = scratch / "official.json"
    timing = timed(
        [sys.executable, str(REPO / "tools" / "run_official_evaluation.py"), "--gt", str(gt),
         "--results", str(res), "--out", str(out), "--distances"]
    )  # fmt: skip
    return json.loads(out.read_text()), timing


def run_ours(gt: Path, res: Path, scratch: Path, workers: int) -> tuple[dict, Timing]:
    score_input = scratch / "input"
    shutil.rmtree(score_input, ignore_errors=True)
    score_input.mkdir()
    (score_input / "ref").symlink_to(gt)
    (score_input / "res").symlink_to(res)
    output = scratch / "out"
    timing = timed(
        [sys.executable, str(REPO / "scoring_program" / "score.py"), str(score_input), str(output),
         "--workers", str(workers)]
    )  # fmt: skip
    return json.loads((output / "scores.json").read_text()), timing


def compare(official: dict, ours: dict) -> list[str]:
    """Every metric both compute, as (name, official, ours) disagreements beyond 1e-9."""
    pixel, instance = official["pixel"], official["instance"]["averages"]
    pairs = [
        ("iou_class", pixel["averageScoreClasses"], ours["iou_class"]),
        ("iiou_class", pixel["averageScoreInstClasses"], ours["iiou_class"]),
        ("iou_category", pixel["averageScoreCategories"], ours["iou_category"]),
        ("iiou_category", pixel["averageScoreInstCategories"], ours["iiou_category"]),
        ("ap", instance["allAp"], ours["ap"]),
        ("ap50", instance["allAp50%"], ours["ap50"]),
        ("ap100m", instance.get("allAp100m"), ours.get("ap100m")),
        ("ap50m", instance.get("allAp50m"), ours.get("ap50m")),
    ]
    for official_key, section, key in (
        ("classScores", "classes", "iou"),
        ("classInstScores", "classes", "iiou"),
        ("categoryScores", "categories", "iou"),
        ("categoryInstScores", "categories", "iiou"),
    ):
        for name, value in pixel[official_key].items():
            if name in ours[section] and key in ours[section][name]:
                pairs.append((f"{name} {key}", value, ours[section][name][key]))
    if "confMatrix" in pixel:  # counts: equal, not merely close
        same = pixel["confMatrix"] == ours["confusion_matrix"]["rows_ground_truth_columns_prediction"]
        pairs.append(("confusion matrix", 0.0, 0.0 if same else 1.0))
    for name, values in instance["classes"].items():
        for key, official_key in (("ap", "ap"), ("ap50", "ap50%"), ("ap100m", "ap100m"), ("ap50m", "ap50m")):
            if official_key in values:
                pairs.append((f"{name} {key}", values[official_key], ours["classes"][name].get(key)))
    return [f"{n}: official {a} ours {b}" for n, a, b in pairs if not _same(a, b)]


def _same(a, b) -> bool:
    a = float("nan") if a is None else float(a)
    b = float("nan") if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


# The settings each row is scored in: the ground truth the data builder places (the download's PNGs re-encoded) with
# the reference index, as a bundle built by this project deploys it; the ground truth exactly as downloaded
# (Pillow-written) with the index; and as downloaded without any index, the least an organiser can upload.
SETTINGS = ("deployed", "downloaded", "downloaded, no index")


def _folders(case: Path, row: Row, setting: str = "downloaded") -> tuple[Path, Path]:
    """(ground truth, results) of a row in a setting. The project row's ground truth is the builder's already."""
    if row.project:
        return case / "ref", case / "res"
    gt = case / "world" / ("ref-built" if setting == "deployed" else "ref")
    return gt, case / "world" / row.name


@dataclass
class Official:
    result: dict
    timing: Timing


def measure_row(
    case: Path, row: Row, officials: dict[str, Official], scratch: Path, args: argparse.Namespace
) -> Measured:
    """The official evaluation once (or the run of the row it reads), this scorer ``--repeat`` times in each
    of the SETTINGS, taking turns."""
    official_row = _official_row(row)
    folders = {setting: _folders(case, row, setting) for setting in SETTINGS}
    for gt, res in folders.values():
        _warm([gt / "gtFine", gt / "disparity", gt / "camera", res])
    _warm(_folders(case, official_row)[1:])
    if official_row.name not in officials:
        print(f"  official evaluation on the {official_row.name} files ...", flush=True)
        officials[official_row.name] = Official(*run_official(*_folders(case, official_row), scratch))
    official = officials[official_row.name]
    seconds = official.result["seconds"]
    measured = Measured(row, seconds["pixel"] + seconds["instance"], official.timing)
    for _ in range(args.repeat):
        for setting, (gt, res) in folders.items():
            index = gt / INDEX_NAME
            hidden = index.with_name(INDEX_NAME + ".off")
            if setting.endswith("no index"):
                index.rename(hidden)
            try:
                ours, timing = run_ours(gt, res, scratch, args.workers)
            finally:
                if hidden.exists():
                    hidden.rename(index)
            measured.runs[setting].append(timing)
            measured.disagreements += compare(official.result, ours)
    return measured


def _official_row(row: Row) -> Row:
    return next(r for r in ROWS if r.name == (row.official_on or row.name))


def build_index(gt: Path, workers: int) -> float:
    (gt / INDEX_NAME).unlink(missing_ok=True)
    start = time.perf_counter()
    build_reference_index(gt, workers)
    return time.perf_counter() - start


# --- fixed costs --------------------------------------------------------------------------------

# Run in a fresh interpreter (python -I, as the platforms start score.py) on a one-image case: the scorer's
# steps as scoring/program.py takes them, one by one, through the same functions. Each import step loads
# only what that step of score.py loads first. Its first and last lines stamp time.perf_counter() (one
# clock for all processes on Linux), so that the caller can time the interpreter's start-up and its exit.
_STEPS = """
import time
begun = time.perf_counter()
import gc, importlib, json, os, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
steps = {{}}

def step(name, call):
    start = time.perf_counter()
    value = call()
    steps[name] = time.perf_counter() - start
    return value

def imported(*names):
    return lambda: [importlib.import_module(name) for name in names]

def isolated():
    from cityscapes_competition.core.isolation import isolate_imports
    isolate_imports({repo!r}, "score.py")

step("isolating the imports (score.py)", isolated)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as score.py does
step("imports: the entry point (argparse, the package's errors)", imported("cityscapes_competition.scoring.program"))
from cityscapes_competition.scoring import program
root, out = Path({root!r}), Path({out!r})
args = step("parsing the command line",
            lambda: program.make_parser("score.py", program.DESCRIPTION, program.add_arguments).parse_args(
                [str(root), str(out), "--workers", "{workers}"]))
step("imports: the output writers (numpy, the report's HTML and charts)",
     imported("cityscapes_competition.scoring.score_files"))
from cityscapes_competition.scoring import score_files
step("the page saying scoring is under way",
     lambda: (score_files.watched_by_platform(out), score_files.prepare_output(out)))
gc.disable()  # as program.collections_paused does
step("imports: the evaluation, the challenge, the submission rules", imported(
    "cityscapes_competition.core.challenge", "cityscapes_competition.core.ingestion_status",
    "cityscapes_competition.scoring.evaluation", "cityscapes_competition.scoring.submission_rules"))
from cityscapes_competition.core import challenge, ingestion_status
from cityscapes_competition.scoring import evaluation, submission_rules
settings = step("the ingestion's status, the challenge settings", lambda: (
    ingestion_status.refuse_failed_ingestion(root / "res"), challenge.load_challenge(None))[1])
decision = step("the submission rules (no platform metadata, no ledger)",
                lambda: submission_rules.check_submission(root, settings, ledger_path=None))
plan = step("file walk and checks (ground truth, results, masks named)",
            lambda: evaluation.plan_evaluation(root / "ref", root / "res"))
scores = step("evaluating the one image (here), and the scores",
              lambda: evaluation.run_plan(plan, args.workers))
step("rendering the page (its charts included) and writing it, scores.json, scores.txt",
     lambda: score_files.write_score_files(out, scores))
step("recording the decision, the summary", lambda: (decision.complete(scores.leaderboard()),
                                                       program.leaderboard_summary(scores)))
assert not [name for name in sys.modules if name.split(".")[0] == "matplotlib"], "matplotlib was imported"
gc.freeze()  # as score_main does before the interpreter exits
print(json.dumps({{"begun": begun, "steps": steps, "ended": time.perf_counter()}}), flush=True)
"""

# The workers a run of two images or more starts (fork; forkserver with TensorFlow loaded, from 8 images),
# timed apart: the one-image run starts none.
_WORKERS = """
import json, sys, time
sys.path.insert(0, {repo!r})
from cityscapes_competition.scoring import evaluation  # what is loaded when score.py forks them
from cityscapes_competition.core.processes import worker_pool
start = time.perf_counter()
with worker_pool({workers}) as pool:
    list(pool.map(abs, range({workers})))
print(json.dumps(time.perf_counter() - start))
"""


def one_image_case(case: Path, row: Row, target: Path) -> Path:
    """A copy of the row's first frame (ground truth, results, the masks it names), without an index."""
    gt, res = _folders(case, row)
    frame = _frames(case)[0]
    shutil.rmtree(target, ignore_errors=True)
    for kind, suffixes in (("gtFine", GT_SUFFIXES[:2]), ("disparity", GT_SUFFIXES[2:3]), ("camera", GT_SUFFIXES[3:])):
        for suffix in suffixes:
            _copy(gt / kind / frame.folder / f"{frame.stem}{suffix}", target / "ref" / kind / frame.folder)
    _copy(res / "pixel" / frame.folder / f"{frame.stem}_leftImg8bit.png", target / "res" / "pixel" / frame.folder)
    txt = res / "instance" / frame.folder / f"{frame.stem}.txt"
    _copy(txt, target / "res" / "instance" / frame.folder)
    for name, _, _ in _instance_lines(txt):
        _copy(txt.parent / name, (target / "res" / "instance" / frame.folder / name).parent)
    return target


def _copy(source: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, folder / source.name)


def fixed_costs(case: Path, row: Row, scratch: Path, workers: int, repeat: int) -> Iterator[str]:
    """Lines saying what a one-image run costs, step by step (medians of ``repeat`` runs)."""
    root = one_image_case(case, row, scratch / "one")
    python = [sys.executable, "-I"]
    start_up = [timed([*python, "-c", "pass"]).wall for _ in range(repeat)]
    score = [*python, str(REPO / "scoring_program" / "score.py"), str(root), str(scratch / "one-out")]
    whole = [timed(score) for _ in range(repeat)]
    code = _STEPS.format(repo=str(REPO), root=str(root), out=str(scratch / "steps-out"), workers=workers)
    runs = [_step_run([*python, "-c", code]) for _ in range(repeat)]
    pool = [json.loads(_run([*python, "-c", _WORKERS.format(repo=str(REPO), workers=workers)])) for _ in range(repeat)]
    yield (
        f"one image ({row.name} files, no index), score.py whole process: {_median(whole, 'wall'):.3f} s "
        f"(CPU {_median(whole, 'cpu'):.2f} s)"
    )
    yield f"  interpreter start-up alone (python -I -c pass): {statistics.median(start_up):.3f} s"
    yield f"  start-up, to the script's first line: {statistics.median(run['start-up'] for run in runs):.3f} s"
    for name in runs[0]["steps"]:
        yield f"  {name}: {statistics.median(run['steps'][name] for run in runs):.3f} s"
    yield f"  exit, from the last line to the process's end: {statistics.median(run['exit'] for run in runs):.3f} s"
    total = statistics.median(run["total"] for run in runs)
    yield f"  the steps script's whole process: {total:.3f} s"
    yield f"starting and stopping {workers} worker processes (two images or more): {statistics.median(pool):.3f} s"


def _step_run(command: list[str]) -> dict:
    """The steps script's times, with its start-up (launch to first line) and exit (last line to its end)."""
    launched = time.perf_counter()
    output = _run(command)
    ended = time.perf_counter()
    run = json.loads(output)
    run["start-up"] = run["begun"] - launched
    run["exit"] = ended - run["ended"]
    run["total"] = ended - launched
    return run


def _run(command: list[str]) -> str:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode:
        sys.exit(f"the fixed-costs script failed:\n{done.stderr[-2000:]}")
    return done.stdout.splitlines()[-1]


# --- the decoding floor --------------------------------------------------------------------------


def decoding_floor(case: Path, row: Row, workers: int, repeat: int) -> float:
    """Seconds to decode, in ``workers`` processes set up as the scorer's, only what an exact evaluation of the
    row cannot do without when the ground truth is as downloaded and there is no index: each frame's labelIds
    and instanceIds, its disparity down to the lowest instance-class pixel, the pixel prediction, with this
    scorer's decoders (the fastest measured), and every mask file read and inflated (not unfiltered); nothing
    else (no mask's pixels, no metric, no start-up): a bound on any scorer using these decoders."""
    gt, res = _folders(case, row, "downloaded, no index")
    jobs = [job for job in plan_evaluation(gt, res).jobs if job.pixel_prediction is not None]
    with ProcessPoolExecutor(workers, initializer=keep_freed_memory) as pool:
        list(pool.map(_decode_frame, jobs[: 2 * workers]))  # the workers started and warm
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            list(pool.map(_decode_frame, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _decode_frame(job: FrameJob) -> None:
    frame = job.ground_truth
    image = decode_ground_truth(frame, read_file(frame.label_ids), read_file(frame.instance_ids))
    add_disparity(image, frame)  # down to the lowest instance-class pixel
    read_single_channel(job.pixel_prediction, image.size, job.results_root)
    for line in job.instance_lines or ():
        if isinstance(line.mask, MaskFile):
            row_filters(Path(line.mask.path).read_bytes())  # the image data inflated


def floor_table(results: list[Measured], floors: dict[str, float]) -> Iterator[str]:
    yield (
        "| files written by | official evaluation | decoding alone, as downloaded, no index | the most it allows "
        "| this scorer, as downloaded, no index |"
    )
    yield "| --- | ---: | ---: | ---: | ---: |"
    for m in results:
        if m.row.name in floors:
            floor, wall = floors[m.row.name], _median(m.runs["downloaded, no index"], "wall")
            yield (
                f"| {m.row.title} | {m.official_seconds:.1f} s | {floor:.2f} s | {m.official_seconds / floor:.1f}x "
                f"| {wall:.2f} s ({m.official_seconds / wall:.1f}x) |"
            )


# --- report -------------------------------------------------------------------------------------


def table(results: list[Measured]) -> Iterator[str]:
    yield (
        "| files written by | official evaluation | this scorer, as deployed (the data builder's ground truth, "
        "the index) | speed-up | ground truth as downloaded, the index | speed-up | as downloaded, no index "
        "| speed-up | CPU time, official whole process / this scorer as deployed (ratio) "
        "| peak memory, this scorer (all processes) / official | metrics to 1e-9 |"
    )
    yield "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for m in results:
        assert m.official is not None
        walls = [_median(m.runs[setting], "wall") for setting in SETTINGS]
        cpu = _median(m.runs["deployed"], "cpu")
        peak = max(run.peak for runs in m.runs.values() for run in runs)
        official = f"{m.official_seconds:.1f} s" + (f" (on the {m.row.official_on} files)" if m.row.official_on else "")
        cells = [f"{wall:.2f} s | **{m.official_seconds / wall:.1f}x**" for wall in walls]
        yield (
            f"| {m.row.title} | {official} | {' | '.join(cells)} "
            f"| {m.official.cpu:.1f} s / {cpu:.2f} s ({m.official.cpu / cpu:.1f}x) "
            f"| {peak / 2**20:.0f} MiB / {m.official.peak / 2**20:.0f} MiB "
            f"| {'equal' if not m.disagreements else 'DIFFERENT'} |"
        )


def _median(runs: list[Timing], what: str) -> float:
    return statistics.median(getattr(run, what) for run in runs)


def _rows(names: str | None) -> list[Row]:
    rows = list(ROWS) if names is None else [r for r in ROWS if r.name in names.split(",")]
    if names is not None and len(rows) != len(names.split(",")):
        sys.exit(f"--rows: choose among {', '.join(r.name for r in ROWS)}")
    if not HAVE_OPENCV and any(r.opencv for r in rows):
        print("note: OpenCV (opencv-python-headless) is not installed: the OpenCV rows are left out", flush=True)
        rows = [r for r in rows if not r.opencv]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmark")
    parser.add_argument("--rows", default=None, help=f"some of {','.join(r.name for r in ROWS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of this scorer per row and setting (median)")
    args = parser.parse_args()

    rows = _rows(args.rows)
    case = prepare(args.data, args.images, args.instances, args.seed)
    prepare_world(case, {*rows, *map(_official_row, rows)}, args.workers)
    prepare_built_gt(case)
    ground_truths = dict.fromkeys(_folders(case, row, setting)[0] for row in rows for setting in SETTINGS)
    index_seconds = {gt: build_index(gt, args.workers) for gt in ground_truths}
    results, officials = [], {}
    load_before = os.getloadavg()[1]
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            print(f"{row.name}: {row.title} ...", flush=True)
            results.append(measure_row(case, row, officials, Path(scratch), args))

    images = next(iter(officials.values())).result["images"]
    print()
    print(f"images: {images} at 2048x1024, predicted instances per image: ~{args.instances}, cores: {os.cpu_count()}")
    print(f"this scorer: median of {args.repeat} runs per setting; the official evaluation: one run (its evaluation")
    print("calls, as tools/run_official_evaluation.py times them; its whole process beside, start-up and distances")
    print("included)")
    # other jobs slow both sides, not alike: the CPU times say what the wall times would be on an idle machine
    print(f"machine load (5-minute average) before / after the runs: {load_before:.1f} / {os.getloadavg()[1]:.1f}")
    print()
    for line in table(results):
        print(line)
    print()
    floors = {
        m.row.name: decoding_floor(case, m.row, args.workers, args.repeat)
        for m in results
        if not m.row.project  # the project row's ground truth is the builder's, not a download's
    }
    if floors:
        print("the decoding floor: the ground truth as downloaded, the pixel predictions and the masks' data decoded")
        for line in floor_table(results, floors):
            print(line)
        print()
    mask_rows = [row for row in rows if row.masks != "rle"]  # a one-image copy of an RLE JSON is not made
    with tempfile.TemporaryDirectory() as scratch:
        for line in fixed_costs(case, mask_rows[0], Path(scratch), args.workers, args.repeat) if mask_rows else ():
            print(line)
    for gt, seconds in index_seconds.items():
        print(f"building the reference index of {gt.relative_to(case)} once: {seconds:.1f} s")
    disagreements = [f"{m.row.name}: {line}" for m in results for line in m.disagreements]
    print(f"metrics compared: {'all equal to 1e-9' if not disagreements else 'DIFFERENT'}")
    for line in disagreements[:40]:
        print("  " + line)
    sys.exit(1 if disagreements else 0)


if __name__ == "__main__":
    main()
