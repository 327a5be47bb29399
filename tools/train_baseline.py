"""Train the baseline model of the competition and export it as the baseline submission's ``model.keras``.

    python tools/train_baseline.py                       # synthetic data, generated once under data/train_synthetic/
    python tools/train_baseline.py --data-root PATH      # a real Cityscapes download (leftImg8bit/, gtFine/)
    python tools/train_baseline.py --out my/model.h5     # legacy HDF5 instead of the Keras 3 format

Without ``--data-root`` the synthetic ``train`` split (``--generate`` frames, seed 0 as in the
competition's own data, rendered at 1024x512: training runs at a lower resolution anyway) and a
validation set are generated with ``cityscapes_competition.synthetic.scenes``. The validation frames are
the ``val`` split rendered with seed 1 at the full 2048x1024, so they are new scenes, not the
competition's test frames (``val`` with seed 0), seen at the test set's resolution. With
``--data-root`` the same code trains on ``train`` and validates on ``val`` of the download.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the package sits beside tools/ in the repository and in the starting kit
DEFAULT_CACHE = REPO / "data" / "train_synthetic"
DEFAULT_OUT = REPO / "baseline_submission" / "model.keras"
TRAIN_SEED = 0  # the seed of the competition's synthetic train split
VAL_SEED = 1  # validation scenes distinct from the test set (val, seed 0)
TRAIN_RENDER_SIZE = (1024, 512)  # (width, height)
VAL_RENDER_SIZE = (2048, 1024)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, help="root of a Cityscapes download (default: synthetic data)")
    parser.add_argument("--generate", type=int, default=300, metavar="N", help="synthetic train frames (default 300)")
    parser.add_argument("--val-frames", type=int, default=30, metavar="K", help="validation frames, 0: none (30)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--input-size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--no-class-balance", action="store_true", help="plain cross-entropy, no class weights")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the model file to write, .keras or .h5")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialization, shuffling and augmentation")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow (default 2)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate < 1 or args.epochs < 1 or args.batch_size < 1 or args.val_frames < 0:
        parser.error("--generate, --epochs and --batch-size must be at least 1, --val-frames at least 0")
    if any(v <= 0 or v % 16 for v in args.input_size):
        parser.error("--input-size H W: both must be positive multiples of 16")
    if args.out.suffix not in (".keras", ".h5"):  # training.EXPORT_SUFFIXES, without importing TensorFlow here
        parser.error("--out must name a .keras or .h5 file")
    return args


def synthetic_split(cache: Path, split: str, count: int, seed: int, size: tuple[int, int], workers: int) -> None:
    """Generate ``count`` frames of ``split`` under ``cache`` unless exactly these are there already."""
    from cityscapes_competition.synthetic import scenes as synthetic

    marker = cache / f".generated_{split}.json"
    wanted = {"split": split, "count": count, "seed": seed, "size": list(size), "version": 1}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    for kind in ("leftImg8bit", "gtFine", "disparity", "camera"):
        shutil.rmtree(cache / kind / split, ignore_errors=True)
    marker.unlink(missing_ok=True)
    print(f"generating {count} synthetic {split} frames at {size[0]}x{size[1]} in {cache} ...", flush=True)
    started = time.perf_counter()
    synthetic.generate_split(cache, split, count, seed=seed, size=size, workers=workers)
    marker.write_text(json.dumps(wanted))
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cityscapes_competition.baseline import training
    from cityscapes_competition.core.errors import UserFacingError

    training.configure_threads(args.threads)
    try:
        if args.data_root is None:
            root = args.cache_dir
            synthetic_split(root, "train", args.generate, TRAIN_SEED, TRAIN_RENDER_SIZE, args.threads)
            if args.val_frames:
                synthetic_split(root, "val", args.val_frames, VAL_SEED, VAL_RENDER_SIZE, args.threads)
        else:
            root = args.data_root
        train_frames = training.find_frames(root, "train")
        val_frames = training.find_frames(root, "val")[: args.val_frames] if args.val_frames else []
        config = training.TrainConfig(
            input_size=tuple(args.input_size),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            class_balance=not args.no_class_balance,
        )
        print(f"training on {len(train_frames)} frames of {root}, validating on {len(val_frames)}", flush=True)
        started = time.perf_counter()
        result = training.train(train_frames, config, val_frames, log=lambda line: print(line, flush=True))
        minutes = (time.perf_counter() - started) / 60
        path = training.export_model(result.model, args.out)
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained in {minutes:.1f} min; saved {path} ({path.stat().st_size / 1e6:.2f} MB), reloads in safe mode")
    if result.final_scores is not None:
        print(f"final validation mIoU {result.final_scores.iou_class:.4f}")
        for name, value in result.final_scores.class_iou.items():
            print(f"  {name:14s} {value:.4f}")
    height, width = args.input_size
    print(
        "metadata for this model:\n"
        f"inference:\n  input_size: [{height}, {width}]\n  output: trainIds\n  scores: logits\n  batch_size: 4"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
