"""Ingestion benchmark: the whole ingestion run against a bare ``model.predict``, in one run.

On the synthetic test images at 2048x1024 (the scoring benchmark's set, generated if needed):
  - bare predict: the images decoded and resized beforehand, then only ``model.predict`` timed;
  - the whole run: ingestion_program/ingestion.py as the platform starts it (TensorFlow start-up,
    safe model loading, decoding, inference, upsampling, instances, writing every result file),
    at 50 and at N images, with the peak memory of the whole process tree.
Each side's CPU seconds (user + system) are printed too: on a shared machine they vary less than
the wall clock, and their ratio is the work the run adds to the model's.

Two submissions by default: the baseline (about 20 ms per image: the run is all decoding and
post-processing) and the reference model of benchmarks/reference_model.py (the compute of a
mid-sized segmentation network, the case the 1.15x goal is about).

    python benchmarks/bench_ingestion.py [--images 500] [--repeat N] [--submission baseline|reference|FOLDER ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_scoring import prepare, timed  # noqa: E402

from cityscapes_competition.ingestion.inference import load_test_image  # noqa: E402
from cityscapes_competition.ingestion.model_files import find_model_file  # noqa: E402
from cityscapes_competition.ingestion.model_loading import load_model_safely  # noqa: E402
from cityscapes_competition.ingestion.run import discover_test_images, model_input_size  # noqa: E402
from cityscapes_competition.ingestion.submission_metadata import find_metadata, read_settings  # noqa: E402


def subset(images_root: Path, count: int, scratch: Path) -> Path:
    """A folder linking the first ``count`` test images."""
    target = scratch / f"images_{count}"
    for image in discover_test_images(images_root)[:count]:
        link = target / "leftImg8bit" / "val" / image.city / image.path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.path)
    return target


def bare_predict_seconds(images_root: Path, submission: Path) -> dict[str, float]:
    """Seconds for the model alone over the decoded images, two ways; the faster is the competitor.

    ``model.predict`` over one array holding every image (as the issue states it), and a loop of
    ``predict_on_batch`` (the call the ingestion pipeline makes, often faster: no tf.data pipeline).
    """
    import numpy as np

    settings = read_settings(find_metadata(submission))
    model = load_model_safely(find_model_file(submission))
    size = model_input_size(settings, model)
    batch_size = settings.batch_size
    images = np.stack([load_test_image(image, size)[0] for image in discover_test_images(images_root)])
    model.predict(images[:batch_size], batch_size=batch_size, verbose=0)  # warm-up: tracing, allocation
    model.predict_on_batch(images[:batch_size])
    seconds = {}
    seconds["model.predict"], seconds["model.predict cpu"] = _seconds_and_cpu(
        lambda: model.predict(images, batch_size=batch_size, verbose=0)
    )
    seconds["predict_on_batch"], seconds["predict_on_batch cpu"] = _seconds_and_cpu(
        lambda: [
            model.predict_on_batch(images[first : first + batch_size]) for first in range(0, len(images), batch_size)
        ]
    )
    return seconds


def _seconds_and_cpu(run: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of ``run`` in this process."""
    start, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_SELF)
    run()
    return time.perf_counter() - start, _cpu_seconds(resource.RUSAGE_SELF) - cpu


def _cpu_seconds(who: int) -> float:
    """User and system CPU seconds: less sensitive than the wall clock to a shared machine's other load."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def resolve_submission(name: str, scratch: Path) -> Path:
    if name == "baseline":
        return REPO / "baseline_submission"
    if name == "reference":
        from reference_model import write_reference_submission

        return write_reference_submission(scratch / "reference_submission")
    return Path(name)


def bench_submission(submission: Path, case: Path, count: int, scratch: Path, repeat: int) -> None:
    """The whole run at 50 images (memory), then ``repeat`` pairs of a whole run and a bare prediction
    at ``count`` images, one after the other so that the shared machine's drift hits both alike, in
    alternating order so that a steady drift favours neither."""
    small = subset(case / "ref", 50, scratch)
    memory = {50: whole_run(submission, small, scratch)["peak"]}
    images = small if count == 50 else subset(case / "ref", count, scratch)
    pairs = []
    for number in range(repeat):
        bare_first = number % 2 == 1
        bare = _bare(images, submission, count) if bare_first else None
        whole = whole_run(submission, images, scratch)
        memory[count] = max(whole["peak"], memory.get(count, 0))
        pairs.append((whole, bare or _bare(images, submission, count)))
    print()
    print(f"model: {find_model_file(submission)}, images: {count} at 2048x1024, cores: {os.cpu_count()}")
    ratios = []
    for number, (whole, bare) in enumerate(pairs, start=1):
        fastest = min(bare["model.predict"], bare["predict_on_batch"])
        ratios.append(whole["seconds"] / fastest)
        print(f"pair {number}:")
        for name in ("model.predict", "predict_on_batch"):
            _print_timing(f"bare {name + ',':17s} decoded beforehand:", bare[name], bare[f"{name} cpu"], count)
        _print_timing(f"{'whole ingestion run:':42s}", whole["seconds"], whole["cpu"], count)
        print(f"  ratio whole / fastest bare prediction:   {ratios[-1]:7.2f}x")
        print(f"  CPU ratio whole / predict_on_batch:      {whole['cpu'] / bare['predict_on_batch cpu']:7.2f}x")
    if len(ratios) > 1:
        print(f"median ratio over {len(ratios)} pairs: {statistics.median(ratios):.2f}x")
    for images_count, peak in sorted(memory.items()):
        print(f"peak memory of a whole run, {images_count:4d} images: {peak / 2**20:6.0f} MiB")
    print(flush=True)


def _print_timing(label: str, seconds: float, cpu: float, count: int) -> None:
    print(f"  {label} {seconds:7.1f} s  ({seconds / count:.3f} s/image), CPU {cpu:7.1f} s")


def _bare(images: Path, submission: Path, count: int) -> dict[str, float]:
    print(f"bare prediction over {count} decoded images ...", flush=True)
    return bare_predict_seconds(images, submission)


def whole_run(submission: Path, images: Path, scratch: Path) -> dict[str, float]:
    """Seconds, CPU seconds and peak memory of ingestion.py as the platform starts it."""
    output = scratch / "out"
    command = [sys.executable, str(REPO / "ingestion_program" / "ingestion.py"), str(images), str(output),
               str(REPO / "ingestion_program"), str(submission)]  # fmt: skip
    print(f"whole ingestion run, {_count(images)} images ...", flush=True)
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN)
    seconds, peak = timed(command)[:2]
    shutil.rmtree(output)
    return {"seconds": seconds, "cpu": _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, "peak": peak}


def _count(images: Path) -> int:
    return sum(1 for _ in images.rglob("*_leftImg8bit.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--submission", nargs="+", default=["baseline", "reference"])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmark")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of whole run and bare run, order alternating")
    args = parser.parse_args()

    case = prepare(args.data, 500, 40, 0)
    for name in args.submission:
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            print(f"== {name}", flush=True)
            bench_submission(resolve_submission(name, scratch), case, args.images, scratch, args.repeat)


if __name__ == "__main__":
    main()
