"""Train the baseline model of the competition and save it as a complete submission: the model and its metadata.

    python tools/train_baseline.py                            # synthetic data, into my_submission/
    python tools/train_baseline.py --data-root PATH           # a real Cityscapes download (leftImg8bit/, gtFine/)
    python tools/train_baseline.py --out my_model/model.h5    # legacy HDF5 instead of the Keras 3 format

``--out`` is a folder that receives ``model.keras`` and ``metadata`` (default ``my_submission/``), or a model
file (``.keras`` or ``.h5``) with ``metadata`` written beside it. A model or metadata already there is
replaced only with ``--force``, and this is checked before training starts. The next step is the checker,
whose command is printed at the end.

Validation: a fixed fraction of the ``train`` frames (``--val-fraction``) is held out, picked by a hash of
each frame's name, and never trained on; after each epoch up to ``--val-frames`` of them are scored as the
server scores. Cityscapes' ``val`` split is this competition's test set, so it is never read.

Without ``--data-root`` the synthetic ``train`` split (``--generate`` frames, seed 0 as in the
competition's own data, rendered at 1024x512: training runs at a lower resolution anyway) is generated once
with ``cityscapes_competition.synthetic.scenes``.
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
DEFAULT_OUT = Path("my_submission")  # a new folder in the working directory, never the baseline's
CHECKER = REPO / "starting_kit" / "check_submission.py"
MODEL_NAME = "model.keras"
METADATA_NAME = "metadata"  # submission_metadata.METADATA_NAME, without importing the package here
EXPORT_SUFFIXES = (".keras", ".h5")  # training.EXPORT_SUFFIXES, without importing TensorFlow here
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")  # what the server takes as a model file (model_files.MODEL_SUFFIXES)
TRAIN_SEED = 0  # the seed of the competition's synthetic train split
TRAIN_RENDER_SIZE = (1024, 512)  # (width, height)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--data-root", type=Path, help="root of a Cityscapes download (default: synthetic data, generated once)")
    add("--generate", type=int, default=300, metavar="N", help="synthetic train frames (default: %(default)s)")
    add(
        "--val-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="fraction of the train frames held out for validation, never trained on (default: %(default)s); "
        "Cityscapes' val is the competition's test set and is never used",
    )
    add(
        "--val-frames",
        type=int,
        default=30,
        metavar="K",
        help="held-out frames scored after each epoch, 0: no validation (default: %(default)s)",
    )
    add("--epochs", type=int, default=20, metavar="N", help="training epochs (default: %(default)s)")
    add("--batch-size", type=int, default=8, metavar="N", help="training batch size (default: %(default)s)")
    add("--learning-rate", type=float, default=3e-3, metavar="LR", help="peak learning rate (default: %(default)s)")
    add(
        "--input-size",
        type=int,
        nargs=2,
        default=(256, 512),
        metavar=("H", "W"),
        help="the model's input size, multiples of 16 (default: 256 512)",
    )
    add("--no-class-balance", action="store_true", help="plain cross-entropy, no class weights (default: balanced)")
    add(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="the submission folder (it receives model.keras and metadata), or a model file .keras or .h5 "
        "(metadata beside it) (default: %(default)s)",
    )
    add("--force", action="store_true", help="replace a model or metadata already at --out (default: refuse)")
    add("--seed", type=int, default=0, help="seed of initialization, shuffling and augmentation (default: %(default)s)")
    add("--threads", type=int, default=2, help="CPU threads for TensorFlow (default: %(default)s)")
    add("--cache-dir", type=Path, default=DEFAULT_CACHE, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.generate < 1 or args.epochs < 1 or args.batch_size < 1 or args.val_frames < 0:
        parser.error("--generate, --epochs and --batch-size must be at least 1, --val-frames at least 0")
    if not 0 <= args.val_fraction < 1:
        parser.error("--val-fraction must be at least 0 and less than 1")
    if any(v <= 0 or v % 16 for v in args.input_size):
        parser.error("--input-size H W: both must be positive multiples of 16")
    folder, model = output_paths(args.out)
    if model is None:
        parser.error("--out must be a folder (e.g. my_submission) or name a .keras or .h5 file")
    problem = output_problem(folder, model, args.force)
    if problem:
        parser.error(problem)
    args.folder, args.model = folder, model
    return args


def output_paths(out: Path) -> tuple[Path, Path | None]:
    """(the submission folder, the model file): a folder receives model.keras; a .keras/.h5 name is the model."""
    if out.suffix in EXPORT_SUFFIXES:
        return out.parent, out
    if out.suffix and not out.is_dir():
        return out.parent, None  # neither a folder name nor a model file Keras can write
    return out, out / MODEL_NAME


def output_problem(folder: Path, model: Path, force: bool) -> str | None:
    """Why the submission cannot be written there (checked before training), or None."""
    if folder.exists() and not folder.is_dir():
        return f"--out: {folder} is a file, not a folder"
    if not folder.is_dir():
        return None
    taken = [path.name for path in (model, folder / METADATA_NAME) if os.path.lexists(path)]
    if taken and not force:
        return (
            f"--out: {folder} already holds {' and '.join(taken)}; give another --out, or add --force to replace "
            f"{'them' if len(taken) > 1 else 'it'}"
        )
    others = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(MODEL_SUFFIXES) and p != model)
    if others:
        return (
            f"--out: {folder} also holds {', '.join(others)}: the submission would hold two model files, which the "
            "server refuses; remove it or give another --out"
        )
    return None


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
    print(f"generating {count} synthetic {split} frames at {size[0]}x{size[1]} in {cache} (once) ...", flush=True)
    synthetic.generate_split(cache, split, count, seed=seed, size=size, workers=workers, progress=True)
    marker.write_text(json.dumps(wanted))


def import_training():
    """The training module; TensorFlow's start-up chatter on stderr is swallowed (shown if the import fails)."""
    from cityscapes_competition.ingestion.keras_runtime import _stderr_swallowed

    print("loading TensorFlow ...", flush=True)
    with _stderr_swallowed():
        from cityscapes_competition.baseline import training
    return training


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cityscapes_competition.core.atomic import write_text_atomic
    from cityscapes_competition.core.errors import UserFacingError
    from cityscapes_competition.ingestion.submission_metadata import read_settings

    training = import_training()
    training.configure_threads(args.threads)
    try:
        if args.data_root is None:
            root, source = args.cache_dir, "the synthetic train split"
            synthetic_split(root, "train", args.generate, TRAIN_SEED, TRAIN_RENDER_SIZE, args.threads)
        else:
            root, source = args.data_root, "Cityscapes train"
        fraction = args.val_fraction if args.val_frames else 0.0
        train_frames, held_out = training.hold_out(training.find_frames(root, "train"), fraction)
        val_frames = held_out[: args.val_frames]
        config = training.TrainConfig(
            input_size=tuple(args.input_size),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            class_balance=not args.no_class_balance,
        )
        validation = _validation_text(val_frames, held_out, fraction)
        print(f"training on {len(train_frames)} train frames of {root}; {validation}", flush=True)
        started = time.perf_counter()
        result = training.train(
            train_frames, config, val_frames, log=lambda line: print(line, flush=True), progress=True
        )
        minutes = (time.perf_counter() - started) / 60
        print("exporting the model (reloaded and checked in safe mode) ...", flush=True)
        path = training.export_model(result.model, args.model)
        epochs = f"{args.epochs} epoch{'' if args.epochs == 1 else 's'}"
        description = (
            f"Baseline architecture trained by tools/train_baseline.py on {source}, {epochs} at "
            f"{args.input_size[0]}x{args.input_size[1]}."
        )
        metadata = args.folder / METADATA_NAME
        write_text_atomic(metadata, training.metadata_text(config.input_size, description))
        read_settings(metadata)  # what the checker and the server will read
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(result, path, metadata, minutes, args.folder)
    return 0


def _validation_text(val_frames: list, held_out: list, fraction: float) -> str:
    if not val_frames:
        return "no validation"
    return (
        f"validating on {len(val_frames)} of the {len(held_out)} train frames held out ({fraction:.0%} of train, "
        "never trained on; Cityscapes' val is the competition's test set and is not used)"
    )


def _report(result, model: Path, metadata: Path, minutes: float, folder: Path) -> None:
    print(f"trained in {minutes:.1f} min; saved {model} ({model.stat().st_size / 1e6:.2f} MB) and {metadata}")
    if result.final_scores is not None:
        print(f"final validation mIoU {result.final_scores.iou_class:.4f} (held-out train frames)")
        for name, value in result.final_scores.class_iou.items():
            print(f"  {name:14s} {value:.4f}")
    print(f"{folder} is a complete submission. Next, check it as the server will:")
    print(f"  python {_shown(CHECKER)} {_shown(folder)}")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (as the kit's README writes commands)."""
    absolute = path.absolute()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


if __name__ == "__main__":
    sys.exit(main())
