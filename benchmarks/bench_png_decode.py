"""PNG decoding microbenchmark: png_io against Pillow (the official reader) on each kind of file.

Synthetic 2048x1024 street scenes are saved the ways participants and the Cityscapes toolchain save
them (png_write, Pillow, OpenCV; label maps, instanceIds, disparity, masks, photos); each file is
read from disk by Pillow as the official scripts read it and by png_io as the scorer and the
ingestion do. The readers take turns on every file, in a rotating order, for ``--rounds`` rounds;
the table gives the median milliseconds per file of each kind. Every png_io result is first checked
equal to Pillow's.

``--baseline REV`` also times png_io as it was at git revision REV (its png_io.py, fast_png.py and
untrusted_files.py, loaded beside the current ones), interleaved with the others: a before/after.

    python benchmarks/bench_png_decode.py [--frames 3] [--rounds 5] [--baseline REV]
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cityscapes_competition.core.labels import color_of, id2label  # noqa: E402
from cityscapes_competition.core.naming import FrameId  # noqa: E402
from cityscapes_competition.png import png_io  # noqa: E402
from cityscapes_competition.png.png_write import encode_mask_png, encode_png  # noqa: E402
from cityscapes_competition.synthetic.scenes import FrameData, render_frame  # noqa: E402

Reader = Callable[[Path], np.ndarray]


def pillow_png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def opencv_png(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels[..., ::-1] if pixels.ndim == 3 else pixels)[1].tobytes()


def palette_png(labels: np.ndarray) -> bytes:
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    colors = [color_of(label) if label in id2label else (label, label, label) for label in range(256)]
    image.putpalette([channel for color in colors for channel in color])
    return pillow_png(image)


def largest_instances(frame: FrameData, count: int) -> list[np.ndarray]:
    values, sizes = np.unique(frame.instance_ids[frame.instance_ids >= 1000], return_counts=True)
    return [frame.instance_ids == value for value in values[np.argsort(sizes)[::-1][:count]]]


def mask_crop_png(mask: np.ndarray) -> bytes:
    """As the ingestion writes a mask: 1-bit, only its bounding rows compressed."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(columns[0])
    return encode_mask_png(mask.shape, mask[top : rows[-1] + 1, left : columns[-1] + 1], top, left)


# kind: (reader, writer of one frame's files)
KINDS: dict[str, tuple[str, Callable[[FrameData], list[bytes]]]] = {
    "labelIds, png_write": ("single", lambda f: [encode_png(f.label_ids)]),
    "labelIds, Pillow L": ("single", lambda f: [pillow_png(Image.fromarray(f.label_ids))]),
    "labelIds, Pillow L optimize": ("single", lambda f: [pillow_png(Image.fromarray(f.label_ids), optimize=True)]),
    "labelIds, Pillow P": ("single", lambda f: [palette_png(f.label_ids)]),
    "labelIds, OpenCV": ("single", lambda f: [opencv_png(f.label_ids)]),
    "instanceIds, png_write": ("single", lambda f: [encode_png(f.instance_ids)]),
    "instanceIds, Pillow I;16": ("single", lambda f: [pillow_png(Image.fromarray(f.instance_ids))]),
    "instanceIds, OpenCV": ("single", lambda f: [opencv_png(f.instance_ids)]),
    "disparity, png_write": ("single", lambda f: [encode_png(f.disparity)]),
    "disparity, Pillow I;16": ("single", lambda f: [pillow_png(Image.fromarray(f.disparity))]),
    "disparity, OpenCV": ("single", lambda f: [opencv_png(f.disparity)]),
    "mask, png_write 1-bit": ("mask", lambda f: [mask_crop_png(m) for m in largest_instances(f, 5)]),
    "mask, Pillow 1-bit": ("mask", lambda f: [pillow_png(Image.fromarray(m)) for m in largest_instances(f, 5)]),
    "mask, Pillow L 0/255": (
        "mask",
        lambda f: [pillow_png(Image.fromarray(m.astype(np.uint8) * 255)) for m in largest_instances(f, 5)],
    ),
    "mask, OpenCV 0/255": ("mask", lambda f: [opencv_png(m.astype(np.uint8) * 255) for m in largest_instances(f, 5)]),
    "mask, OpenCV 0/1": ("mask", lambda f: [opencv_png(m.astype(np.uint8)) for m in largest_instances(f, 5)]),
    "photo, png_write Up": ("photo", lambda f: [encode_png(f.image, up_filter=True)]),
    "photo, png_write None": ("photo", lambda f: [encode_png(f.image, up_filter=False)]),
    "photo, Pillow": ("photo", lambda f: [pillow_png(Image.fromarray(f.image))]),
    "photo, OpenCV": ("photo", lambda f: [opencv_png(f.image)]),
}


def pillow_reader(kind: str) -> Reader:
    """The official reading: ``np.array(Image.open(f))``; masks nonzero after ``convert('L')``."""

    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            if kind == "mask":
                return np.flatnonzero(np.asarray(image.convert("L")) != 0)
            return np.asarray(image.convert("RGB") if kind == "photo" else image)

    return read


def png_io_reader(module: ModuleType, kind: str) -> Reader:
    return {
        "single": module.read_single_channel,
        "mask": getattr(module, "read_mask_runs", None) or module.read_mask_pixels,  # runs; before them, pixels
        "photo": module.read_rgb,
    }[kind]


def png_io_at(revision: str, scratch: Path) -> ModuleType:
    """png_io as it was at ``revision``, as a package of its own beside the current one: the revision's
    ``png/`` and ``core/`` subpackages (png_io imports the core's untrusted_files), copied whole."""
    package = scratch / "png_io_baseline"
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", revision, "cityscapes_competition/png", "cityscapes_competition/core"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    if not any(name.endswith("png/png_io.py") for name in listing):
        raise SystemExit(
            f"--baseline {revision}: no cityscapes_competition/png/png_io.py there (before the png/ subpackage)"
        )
    for name in listing:
        if not name.endswith(".py"):
            continue
        source = subprocess.run(["git", "show", f"{revision}:{name}"], cwd=REPO, check=True, capture_output=True)
        target = package / Path(name).relative_to("cityscapes_competition")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.stdout)
    for folder in (package, package / "png", package / "core"):
        (folder / "__init__.py").touch()
    sys.path.insert(0, str(scratch))
    return importlib.import_module("png_io_baseline.png.png_io")


def write_files(frames: int, scratch: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for index in range(frames):
        frame = render_frame("val", FrameId("frankfurt", "000000", f"{index:06d}"), seed=0, size=(2048, 1024))
        for number, (kind, (_, write)) in enumerate(KINDS.items()):
            for part, data in enumerate(write(frame)):
                path = scratch / f"{number:02d}_{index}_{part}.png"
                path.write_bytes(data)
                files[kind].append(path)
    return files


def check_identical(readers: dict[str, Reader], paths: list[Path]) -> None:
    for path in paths:
        expected = readers["Pillow"](path)
        for name, read in readers.items():
            got = read(path)
            got = got.pixels() if hasattr(got, "pixels") else got  # a mask read as runs of pixels
            if got.dtype != expected.dtype or got.shape != expected.shape or not np.array_equal(got, expected):
                raise SystemExit(f"{name} differs from Pillow on {path.name}")


def median_ms(readers: dict[str, Reader], paths: list[Path], rounds: int) -> dict[str, float]:
    """Readers take turns on each file, the first one rotating from round to round."""
    names = list(readers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for path in paths:
            for name in order:
                start = time.perf_counter()
                readers[name](path)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="synthetic 2048x1024 frames (5 masks each)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also time png_io as at this git revision")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as scratch:
        baseline = png_io_at(args.baseline, Path(scratch)) if args.baseline else None
        files = write_files(args.frames, Path(scratch))
        header = f"{'kind':30s} {'Pillow':>8s} {'png_io':>8s} {'Pillow/png_io':>14s}"
        print(header + (f" {'before':>8s} {'before/png_io':>14s}" if baseline else ""))
        for kind, paths in files.items():
            reader = KINDS[kind][0]
            readers = {"Pillow": pillow_reader(reader), "png_io": png_io_reader(png_io, reader)}
            if baseline:
                readers["before"] = png_io_reader(baseline, reader)
            check_identical(readers, paths)
            ms = median_ms(readers, paths, args.rounds)
            line = f"{kind:30s} {ms['Pillow']:8.2f} {ms['png_io']:8.2f} {ms['Pillow'] / ms['png_io']:13.1f}x"
            if baseline:
                line += f" {ms['before']:8.2f} {ms['before'] / ms['png_io']:13.1f}x"
            print(line, flush=True)
    print("median ms per file, read from disk; Pillow as the official scripts read it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
