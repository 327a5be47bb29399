"""The checker's time projection against a real ingestion run, on this machine.

The starting kit's checker runs a submission on the 5 sample images and projects the ingestion of the whole
test set (model loading and warm-up once, then 500 times the steady per-image pace) and its scoring. This
benchmark runs the checker, then the real ingestion over the test images (``data/competition``, built by
``make demo``) as the platform starts it (``ingestion_program/ingestion.py``, a new process, timed from
outside), and prints both, for each batch size asked for (the baseline's own is 4: with 5 sample images, a last
batch of 1); then, once, the real scoring of those results (``evaluate``) against the scoring's projection.
Each check runs in a process of its own too: TensorFlow in a process that already ran other models is slower.
Timing on a shared machine: compare the ratios, and run it when the machine is quiet.

    python benchmarks/bench_check_projection.py [--images 500] [--batch-sizes 4 1 5] [--submission DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = REPO / "data" / "competition"


def with_batch(submission: Path, batch: int, folder: Path) -> Path:
    """A copy of ``submission`` whose metadata asks for ``batch``."""
    folder.mkdir()
    for entry in submission.iterdir():
        if entry.name != "metadata":
            shutil.copy(entry, folder / entry.name)
    lines = (submission / "metadata").read_text().splitlines()
    kept = [line for line in lines if not line.strip().startswith("batch_size:")]
    (folder / "metadata").write_text("\n".join(kept) + f"\n  batch_size: {batch}\n")
    return folder


def linked_test_images(count: int, folder: Path) -> Path:
    """The first ``count`` test images of the competition data (hard links)."""
    images = sorted((DATA / "input_data" / "leftImg8bit").rglob("*_leftImg8bit.png"))[:count]
    for image in images:
        target = folder / image.relative_to(DATA / "input_data")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(image, target)
    return folder


def project(submission: Path, out: Path) -> None:
    """The checker's projection for ``submission``, as JSON on stdout (run in a process of its own)."""
    from cityscapes_competition.kit.submission_check import check_submission

    result = check_submission(submission, DATA / "sample_data", out, stream=io.StringIO())
    if result.projection is None:
        sys.exit(f"the check made no projection: {result.log.problems}")
    projection = result.projection
    print(json.dumps({"load": projection.load_seconds, "ingest": projection.ingest_per_image}))
    print(json.dumps({"score": projection.score_per_image}))


def in_new_process(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, check=True)


def compare(submission: Path, batch: int, images: Path, root: Path) -> Path:
    """One batch size: the projection, then the real run; returns the real run's results."""
    output = in_new_process(__file__, "--project", submission, root / "check").stdout
    projected = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    load, pace, score = projected[0]["load"], projected[0]["ingest"], projected[1]["score"]
    count = len(list(images.rglob("*_leftImg8bit.png")))
    results = root / "res"
    entry = REPO / "ingestion_program" / "ingestion.py"
    started = time.perf_counter()
    in_new_process("-I", "-u", entry, images, results, entry.parent, submission)
    real = time.perf_counter() - started
    expected = load + count * pace
    print(
        f"batch {batch}: projected {expected:.1f} s ({load:.1f} s loading and warm-up + {count} x {pace:.3f} s), "
        f"real {real:.1f} s (the entry point, start-up included): projected / real {expected / real:.2f}",
        flush=True,
    )
    (root / "score_per_image").write_text(str(score))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500, help="test images of the real run (default: 500)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4], help="batch sizes (default: 4)")
    parser.add_argument("--submission", type=Path, default=REPO / "baseline_submission")
    parser.add_argument("--project", nargs=2, type=Path, metavar=("SUBMISSION", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.project:
        project(*args.project)
        return
    if not (DATA / "input_data").is_dir():
        sys.exit(f"{DATA} is missing: run 'make demo' (or the 'data' command) first")
    with tempfile.TemporaryDirectory(prefix="bench_projection_") as work:
        root = Path(work)
        images = linked_test_images(args.images, root / "input_data")
        print(f"{args.submission}, {args.images} test images of {DATA / 'input_data'}, sample {DATA / 'sample_data'}")
        for index, batch in enumerate(args.batch_sizes):
            folder = root / f"batch_{batch}"
            folder.mkdir()
            submission = with_batch(args.submission, batch, folder / "submission")
            results = compare(submission, batch, images, folder)
            if index == 0:  # the scoring does not depend on the batch size: once
                from cityscapes_competition.scoring.evaluation import evaluate

                per_image = float((folder / "score_per_image").read_text())
                started = time.perf_counter()
                evaluate(DATA / "reference_data", results)
                real = time.perf_counter() - started
                expected = args.images * per_image
                print(
                    f"scoring: projected {expected:.1f} s ({args.images} x {per_image:.3f} s), real {real:.1f} s "
                    f"(evaluate, in this process): projected / real {expected / real:.2f}",
                    flush=True,
                )
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
