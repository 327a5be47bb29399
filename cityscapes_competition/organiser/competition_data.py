"""Build the competition's data folders from a real Cityscapes download or from synthetic scenes.

``python -m cityscapes_competition data --out data/competition
[--cityscapes ROOT | --synthetic N]`` writes::

    OUT/reference_data/   hidden: gtFine/val (labelIds, instanceIds), disparity/val, camera/val + reference index
    OUT/input_data/       what the participants' models see: leftImg8bit/val only
    OUT/sample_data/      a few frames (spread over the cities) with the same input_data/ and reference_data/
    OUT/competition_data.json   what was built from what; written last, so its presence means a complete build

The test set is the val split of Cityscapes (500 frames). Only the files the scorer reads are
copied: ``_gtFine_color.png`` and ``_gtFine_polygons.json`` stay behind, which keeps the hidden
data small. Files are hard-linked where the file system allows it, else copied; never symlinked,
since the bundle is zipped. Test photos the ingestion program cannot decode on its fast path (a real
download's are Paeth-filtered) are re-encoded, pixel for pixel, with Up-filtered rows: decoding them
then takes about half the time, for every submission. So are the ground truth and disparity PNGs the
scorer decodes (a download's are mostly Paeth rows): 2 to 3 times faster to decode, in every scoring.
Links inside the source pointing out of it are refused. OUT is built in a temporary folder beside it
and renamed into place, so it is never seen half-built; an existing OUT is replaced only if it is empty
or an earlier build of this command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.atomic import write_bytes_atomic, write_text_atomic
from ..core.errors import ReferenceDataError
from ..core.naming import (
    DISPARITY_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    FrameId,
    pick_samples,
)
from ..png.png_io import PngReadError, decode_photo, up_filtered_copy
from ..png.png_write import encode_png
from ..scoring.reference_index import build_reference_index
from ..synthetic import scenes as synthetic
from .cityscapes_source import SPLIT, Source, scan_cityscapes

EXPECTED_FRAMES = 500
REFERENCE_DATA = "reference_data"
INPUT_DATA = "input_data"
SAMPLE_DATA = "sample_data"
MANIFEST_NAME = "competition_data.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class CompetitionData:
    """The three data folders of a build, and what they hold."""

    out: Path
    reference_data: Path
    input_data: Path
    sample_data: Path
    frames: int
    samples: int
    has_distances: bool
    source: str
    reused: bool = False
    warnings: tuple[str, ...] = ()


def build_competition_data(
    out: Path,
    *,
    cityscapes_root: Path | None = None,
    synthetic_count: int = synthetic.DEFAULT_TEST_COUNT,
    seed: int = 0,
    sample_count: int = 5,
    progress: bool = True,
    synthetic_size: tuple[int, int] = synthetic.DEFAULT_SIZE,
    synthetic_cache: Path | None = None,
    workers: int | None = None,
) -> CompetitionData:
    """Build OUT/{reference_data,input_data,sample_data} from ``cityscapes_root``, else from synthetic scenes.

    A synthetic build is skipped when OUT already holds a complete one with the same settings;
    ``synthetic_cache`` keeps the generated source for later builds (else it goes to a temporary folder).
    """
    out = Path(out).absolute()
    if sample_count < 1:
        raise ReferenceDataError(f"the sample must hold at least 1 frame, not {sample_count}", None, None)
    _check_out(out)
    if cityscapes_root is not None:
        source = scan_cityscapes(Path(cityscapes_root))
        _check_not_inside(source.root, out)
        warnings = list(source.warnings)
        if len(source.frames) != EXPECTED_FRAMES:
            warnings.append(
                f"{cityscapes_root}: found {len(source.frames)} {SPLIT} frames; the Cityscapes {SPLIT} split has "
                f"{EXPECTED_FRAMES}. Check that the download is complete."
            )
        key = {"source": "cityscapes", "root": str(source.root), "samples": sample_count}
        return _build(out, source, key, sample_count, warnings, progress, workers)
    if synthetic_count < 1:
        raise ReferenceDataError(f"the synthetic test set must hold at least 1 frame, not {synthetic_count}")
    key = _synthetic_key(synthetic_count, seed, synthetic_size, sample_count)
    previous = _reusable_build(out, key)
    if previous is not None:
        _say(progress, f"{out} already holds this build ({previous.source}); nothing to do.")
        return previous
    if synthetic_cache is not None:
        _check_not_inside(Path(synthetic_cache).absolute(), out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _synthetic_source(out, synthetic_count, seed, synthetic_size, synthetic_cache, workers, progress) as root:
        description = f"synthetic: {synthetic_count} frames, seed {seed}, {synthetic_size[0]}x{synthetic_size[1]}"
        source = replace(scan_cityscapes(root), description=description)
        return _build(out, source, key, sample_count, list(source.warnings), progress, workers)


def _check_out(out: Path) -> None:
    """OUT is replaced only if it is new, empty, or a previous build of this command."""
    if out.exists() and not out.is_dir():
        raise ReferenceDataError("is a file, not a folder", out, "Choose a folder for --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise ReferenceDataError(
            f"is not empty and holds no {MANIFEST_NAME}, so it is not a build of this command and would be replaced",
            out,
            "Choose a new or empty folder for --out, or delete this one yourself.",
        )


def _check_not_inside(source: Path, out: Path) -> None:
    if source.resolve().is_relative_to(out.resolve()):
        raise ReferenceDataError(
            f"lies inside the output folder {out}, which the build replaces", source, "Choose another --out."
        )


def _synthetic_key(count: int, seed: int, size: tuple[int, int], sample_count: int) -> dict[str, object]:
    digest = hashlib.blake2b(digest_size=8)
    for module in sorted(Path(synthetic.__file__).parent.glob("*.py")):  # every module of the scene generator
        digest.update(module.read_bytes())
    generator = digest.hexdigest()
    return {
        "source": "synthetic",
        "count": count,
        "seed": seed,
        "size": [int(size[0]), int(size[1])],
        "samples": sample_count,
        "generator": generator,
    }


@contextmanager
def _synthetic_source(
    out: Path,
    count: int,
    seed: int,
    size: tuple[int, int],
    cache: Path | None,
    workers: int | None,
    progress: bool,
) -> Iterator[Path]:
    """A generated val split: in ``cache`` (kept, reused when complete) or in a temporary folder beside OUT."""
    if cache is None:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.synthetic-") as temporary:
            _generate(Path(temporary), count, seed, size, workers, progress)
            yield Path(temporary)
        return
    cache = Path(cache).absolute()
    root = cache / f"{SPLIT}-{count}-seed{seed}-{size[0]}x{size[1]}"
    marker = root / ".complete.json"
    wanted = json.dumps(_synthetic_key(count, seed, size, 0))
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == wanted):
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=f".{root.name}.generating-"))
        try:
            _generate(staging, count, seed, size, workers, progress)
            write_text_atomic(staging / marker.name, wanted)
            _replace_folder(staging, root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    yield root


def _generate(root: Path, count: int, seed: int, size: tuple[int, int], workers: int | None, progress: bool) -> None:
    _say(progress, f"Generating {count} synthetic {SPLIT} frames ({size[0]}x{size[1]}, seed {seed}) in {root} ...")
    synthetic.generate_split(root, SPLIT, count, seed=seed, size=size, workers=workers, progress=progress)


def _reusable_build(out: Path, key: dict[str, object]) -> CompetitionData | None:
    """The build already in OUT, if it was made with ``key`` and still has all its files."""
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT or manifest.get("key") != key:
            return None
        if any(_count_files(out / folder) != count for folder, count in manifest["files"].items()):
            return None
        return _data(out, manifest, reused=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _data(out: Path, manifest: dict, reused: bool) -> CompetitionData:
    return CompetitionData(
        out=out,
        reference_data=out / REFERENCE_DATA,
        input_data=out / INPUT_DATA,
        sample_data=out / SAMPLE_DATA,
        frames=int(manifest["frames"]),
        samples=len(manifest["sample_frames"]),
        has_distances=bool(manifest["has_distances"]),
        source=str(manifest["source"]),
        reused=reused,
        warnings=tuple(manifest["warnings"]),
    )


def _build(
    out: Path,
    source: Source,
    key: dict[str, object],
    sample_count: int,
    warnings: list[str],
    progress: bool,
    workers: int | None,
) -> CompetitionData:
    """Place everything in a temporary folder beside OUT, index it, write the manifest, rename it to OUT."""
    samples = pick_samples([f.frame for f in source.frames], sample_count)
    if len(samples) < sample_count:
        warnings.append(f"the sample holds all {len(samples)} frames, fewer than the {sample_count} asked for")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
        staging.chmod(0o755)  # mkdtemp makes it private; OUT is an ordinary folder
    except OSError as exc:
        raise _write_error(exc, out) from None
    try:
        origin = _place_frames(staging, source, samples, progress)
        _say(progress, "Building the reference indexes ...")
        _index(staging / REFERENCE_DATA, origin, workers)
        _index(staging / SAMPLE_DATA / REFERENCE_DATA, origin, workers)
        manifest = {
            "format": MANIFEST_FORMAT,
            "key": key,
            "source": source.description,
            "frames": len(source.frames),
            "sample_frames": [frame.stem for frame in samples],
            "has_distances": source.has_distances,
            "files": {name: _count_files(staging / name) for name in (REFERENCE_DATA, INPUT_DATA, SAMPLE_DATA)},
            "warnings": warnings,
        }
        write_text_atomic(staging / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        _replace_folder(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _write_error(exc, out) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _say(progress, f"Wrote {out}: {len(source.frames)} frames, a sample of {len(samples)}.")
    return _data(out, manifest, reused=False)


# The PNGs the scorer decodes, re-encoded for pywuffs (png_io.up_filtered_copy).
_REENCODED_SUFFIXES = (GT_LABEL_IDS_SUFFIX, GT_INSTANCE_IDS_SUFFIX, DISPARITY_SUFFIX)


def _place_frames(staging: Path, source: Source, samples: list[FrameId], progress: bool) -> dict[Path, Path]:
    """Link or copy every frame's files into place; returns each placed file's source file."""
    origin: dict[Path, Path] = {}
    sampled = set(samples)
    targets = {False: staging, True: staging / SAMPLE_DATA}
    for item in tqdm(source.frames, desc="placing files", unit="frame", disable=not progress):
        for in_sample in (False, True) if item.frame in sampled else (False,):
            base = targets[in_sample]
            for file in item.reference:
                origin[place_reference_file(file.real, base / REFERENCE_DATA / file.relative)] = file.real
            origin[_place_photo(item.image.real, base / INPUT_DATA / item.image.relative)] = item.image.real
    return origin


def place_reference_file(source: Path, target: Path) -> Path:
    """A ground-truth or disparity PNG re-encoded with Up-filtered rows, pixel for pixel, unless it is
    already so (the camera files and this project's synthetic data are linked as they are). A download's
    PNGs, written by the Cityscapes tools through Pillow, are mostly Paeth rows: pywuffs decodes them 2 to 3
    times slower, in every submission's scoring (benchmarks/bench_scoring.py)."""
    if not source.name.endswith(_REENCODED_SUFFIXES):
        return _place(source, target)
    try:
        encoded = up_filtered_copy(source.read_bytes())
    except (OSError, PngReadError) as exc:
        raise ReferenceDataError(f"is not a readable PNG: {exc}", source, "Unpack the download again.") from None
    if encoded is None:
        return _place(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, encoded, durable=False)
    return target


def _place_photo(source: Path, target: Path) -> Path:
    """A test photo, linked as it is if the fast decoder reads it, else re-encoded for it (same pixels)."""
    try:
        pixels, fast = decode_photo(source.read_bytes())
    except (OSError, PngReadError) as exc:
        raise ReferenceDataError(f"is not a readable photo: {exc}", source, "Unpack the download again.") from None
    if fast:
        return _place(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, encode_png(np.ascontiguousarray(pixels), level=6, up_filter=True), durable=False)
    return target


def _place(source: Path, target: Path) -> Path:
    """Hard-link ``source`` at ``target``, or copy it where links are not possible (never a symlink)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def _index(reference: Path, origin: dict[Path, Path], workers: int | None) -> None:
    """Build the reference index; a bad ground-truth file is named by its path in the source."""
    try:
        build_reference_index(reference, workers)
    except ReferenceDataError as error:
        if error.path is None or error.path not in origin:
            raise
        raise ReferenceDataError(error.detail, origin[error.path], error.fix) from None


def _replace_folder(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, moving an existing ``target`` aside first and deleting it after."""
    if not (target.exists() or target.is_symlink()):
        os.rename(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    if old.is_symlink() or not old.is_dir():
        old.unlink()
    else:
        shutil.rmtree(old)


def _count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def _write_error(exc: OSError, out: Path) -> ReferenceDataError:
    return ReferenceDataError(
        f"could not be copied or written while building {out} ({exc.strerror or exc})",
        exc.filename or out,
        "Check the free space and the permissions.",
    )


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)


# ------------------------------------------------------------------------------------------- CLI


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    """Build the competition's data folders (reference_data, input_data, sample_data)."""
    from ..core.errors import guarded

    parser = argparse.ArgumentParser(
        prog="data",
        description="Build OUT/reference_data (hidden ground truth), OUT/input_data (test images) and "
        "OUT/sample_data (a few frames of both, for the starting kit), from a Cityscapes download or synthetic scenes.",
    )
    parser.add_argument("--out", type=Path, default=Path("data/competition"), help="default: data/competition")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--cityscapes",
        type=Path,
        metavar="ROOT",
        help="folder into which gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip (and disparity_, camera_) "
        "were unpacked; its val split is the test set",
    )
    source.add_argument(
        "--synthetic",
        type=_positive,
        metavar="N",
        help=f"generate N synthetic frames (the default source, N={synthetic.DEFAULT_TEST_COUNT})",
    )
    parser.add_argument("--seed", type=int, default=None, help="synthetic only (default 0)")
    parser.add_argument("--cache", type=Path, default=None, help="synthetic only: keep the generated frames here")
    parser.add_argument("--samples", type=_positive, default=5, help="frames in sample_data (default 5)")
    parser.add_argument("--workers", type=_positive, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)
    if args.cityscapes is not None and (args.seed is not None or args.cache is not None):
        parser.error("--seed and --cache apply to synthetic data only, not to --cityscapes")

    def run() -> None:
        data = build_competition_data(
            args.out,
            cityscapes_root=args.cityscapes,
            synthetic_count=args.synthetic or synthetic.DEFAULT_TEST_COUNT,
            seed=args.seed or 0,
            sample_count=args.samples,
            synthetic_cache=args.cache,
            workers=args.workers,
        )
        for warning in data.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"reference data: {data.reference_data} ({data.frames} frames)")
        print(f"input data:     {data.input_data}")
        print(f"sample data:    {data.sample_data} ({data.samples} frames)")

    return guarded(run, "data")
