"""Scoring benchmark: the official cityscapesScripts evaluation against this project, in one run.

Generates (once, cached under data/benchmark) the synthetic test split at full size with results
of ~40 predicted instances per image, then times, on the same files:
  - the official pixel-level and instance-level evaluation (tools/run_official_evaluation.py),
  - this project's scoring program (scoring_program/score.py), as the platform runs it,
checks that every metric agrees to 1e-9 and prints the speed ratio and the peak memory
(resident set of the whole process tree, sampled).

    python benchmarks/bench_scoring.py [--images 500] [--instances 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cityscapes_competition.scoring.reference_index import INDEX_NAME, build_reference_index  # noqa: E402
from cityscapes_competition.synthetic import results as synthetic_results  # noqa: E402
from cityscapes_competition.synthetic import scenes as synthetic  # noqa: E402


def prepare(data_root: Path, images: int, instances: int, seed: int) -> Path:
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


def timed(command: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    stdout, stderr = process.communicate()
    elapsed = time.perf_counter() - start
    peak = memory.stop()
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if process.returncode:
        sys.exit(f"{command[1]} failed:\n{stderr[-2000:]}")
    return elapsed, peak, result


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
    for name, value in pixel["classScores"].items():
        if name in ours["classes"] and "iou" in ours["classes"][name]:
            pairs.append((f"{name} iou", value, ours["classes"][name]["iou"]))
    for name, values in instance["classes"].items():
        for key, official_key in (("ap", "ap"), ("ap50", "ap50%"), ("ap100m", "ap100m"), ("ap50m", "ap50m")):
            if official_key in values:
                pairs.append((f"{name} {key}", values[official_key], ours["classes"][name].get(key)))
    return [f"{n}: official {a} ours {b}" for n, a, b in pairs if not _same(a, b)]


def _same(a, b) -> bool:
    a = float("nan") if a is None else float(a)
    b = float("nan") if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmark")
    args = parser.parse_args()

    case = prepare(args.data, args.images, args.instances, args.seed)
    (case / "ref" / INDEX_NAME).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        official_json = scratch / "official.json"
        print("official cityscapesScripts evaluation (pixel + instance) ...", flush=True)
        official_wall, official_peak, _ = timed(
            [sys.executable, str(REPO / "tools" / "run_official_evaluation.py"), "--gt", str(case / "ref"),
             "--results", str(case / "res"), "--out", str(official_json), "--distances"]
        )  # fmt: skip
        official = json.loads(official_json.read_text())
        score_input = scratch / "input"
        score_input.mkdir()
        (score_input / "ref").symlink_to(case / "ref")
        (score_input / "res").symlink_to(case / "res")
        score = [sys.executable, str(REPO / "scoring_program" / "score.py"), str(score_input), str(scratch / "out")]
        score += ["--workers", str(args.workers)]
        print("this project's scoring program, without a reference index ...", flush=True)
        unindexed_wall, unindexed_peak, _ = timed(score)
        unindexed = json.loads((scratch / "out" / "scores.json").read_text())
        print("building the reference index (once per reference data set) ...", flush=True)
        start = time.perf_counter()
        build_reference_index(case / "ref", args.workers)
        index_seconds = time.perf_counter() - start
        print("this project's scoring program, with the reference index ...", flush=True)
        ours_wall, ours_peak, _ = timed(score)
        ours = json.loads((scratch / "out" / "scores.json").read_text())

    seconds = official["seconds"]
    official_time = seconds["pixel"] + seconds["instance"]
    disagreements = compare(official, ours) + compare(official, unindexed)
    print()
    print(f"images: {official['images']}, predicted instances per image: ~{args.instances}, cores: {os.cpu_count()}")
    print(f"official pixel-level:     {seconds['pixel']:8.1f} s")
    print(f"official instance-level:  {seconds['instance']:8.1f} s   (its distance data filled outside the timing)")
    print(f"official total:           {official_time:8.1f} s   peak memory {official_peak / 2**20:6.0f} MiB")
    print(
        f"this project, with index: {ours_wall:8.1f} s   peak memory {ours_peak / 2**20:6.0f} MiB (all processes)"
        f"   speed-up {official_time / ours_wall:5.1f}x"
    )
    print(
        f"this project, no index:   {unindexed_wall:8.1f} s   peak memory {unindexed_peak / 2**20:6.0f} MiB"
        f"                  speed-up {official_time / unindexed_wall:5.1f}x"
    )
    print(f"building the index once:  {index_seconds:8.1f} s")
    print(f"metrics compared: {'all equal to 1e-9' if not disagreements else 'DIFFERENT'}")
    for line in disagreements:
        print("  " + line)
    print(f"(official wall time including start-up and distance filling: {official_wall:.1f} s)")
    sys.exit(1 if disagreements else 0)


if __name__ == "__main__":
    main()
