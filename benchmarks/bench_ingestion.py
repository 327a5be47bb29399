"""Ingestion benchmark: the whole ingestion run against a bare ``model.predict``, in one run.

On the synthetic test images at 2048x1024 (the scoring benchmark's set, generated if needed):
  - bare predict: the images decoded and resized beforehand, then only ``model.predict`` timed;
  - the whole run: ingestion_program/ingestion.py as the platform starts it (TensorFlow start-up,
    safe model loading, decoding, inference, upsampling, instances, writing every result file),
    at 50 and at N images, with the peak memory of the whole process tree.

    python benchmarks/bench_ingestion.py [--images 500] [--submission baseline_submission]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_scoring import prepare, timed  # noqa: E402

from cityscapes_competition.inference import load_test_image  # noqa: E402
from cityscapes_competition.ingestion import discover_test_images, model_input_size  # noqa: E402
from cityscapes_competition.model_files import find_model_file  # noqa: E402
from cityscapes_competition.model_loading import load_model_safely  # noqa: E402
from cityscapes_competition.submission_metadata import find_metadata, read_settings  # noqa: E402


def subset(images_root: Path, count: int, scratch: Path) -> Path:
    """A folder linking the first ``count`` test images."""
    target = scratch / f"images_{count}"
    for image in discover_test_images(images_root)[:count]:
        link = target / "leftImg8bit" / "val" / image.city / image.path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.path)
    return target


def bare_predict_seconds(images_root: Path, submission: Path) -> tuple[float, int]:
    settings = read_settings(find_metadata(submission))
    model = load_model_safely(find_model_file(submission))
    size = model_input_size(settings, model)
    import numpy as np

    batch = np.stack([load_test_image(image, size)[0] for image in discover_test_images(images_root)])
    model.predict(batch[: settings.batch_size], batch_size=settings.batch_size, verbose=0)  # warm-up
    start = time.perf_counter()
    model.predict(batch, batch_size=settings.batch_size, verbose=0)
    return time.perf_counter() - start, len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--submission", type=Path, default=REPO / "baseline_submission")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmark")
    args = parser.parse_args()

    case = prepare(args.data, 500, 40, 0)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        runs = {}
        for count in sorted({50, args.images}):
            images = subset(case / "ref", count, scratch)
            output = scratch / f"out_{count}"
            command = [sys.executable, str(REPO / "ingestion_program" / "ingestion.py"), str(images), str(output),
                       str(REPO / "ingestion_program"), str(args.submission)]  # fmt: skip
            print(f"whole ingestion run, {count} images ...", flush=True)
            runs[count] = timed(command)[:2]
            shutil.rmtree(output)
        images = subset(case / "ref", args.images, scratch / "bare")
        print(f"bare model.predict over {args.images} decoded images ...", flush=True)
        bare, count = bare_predict_seconds(images, args.submission)

    whole, _ = runs[args.images]
    print()
    print(f"model: {find_model_file(args.submission)}, images: {count} at 2048x1024, cores: {os.cpu_count()}")
    print(f"bare model.predict (images decoded beforehand): {bare:7.1f} s  ({bare / count:.3f} s per image)")
    print(f"whole ingestion run:                            {whole:7.1f} s  ({whole / count:.3f} s per image)")
    print(f"ratio whole / bare:                             {whole / bare:7.2f}x")
    for images_count, (seconds, memory) in sorted(runs.items()):
        print(f"peak memory, {images_count:4d} images: {memory / 2**20:6.0f} MiB   ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
