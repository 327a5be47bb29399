"""What several test modules share: the repository's paths, small hand-built data, the official evaluation
run as the reference, platform inputs as CodaLab writes them, and bounded child processes.

Plain functions and constants only; the fixtures built from them are in conftest.py.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import queue
import resource
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cityscapes_competition.core.arrays import PixelRuns
from cityscapes_competition.core.labels import EVAL_CLASS_IDS, INSTANCE_CLASS_NAMES, LABEL_NAMES
from cityscapes_competition.scoring.scores import InstanceScores, PixelScores, Scores
from cityscapes_competition.scoring.submission_rules import CSV_COLUMNS

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "baseline_submission"
BASELINE_MODEL = BASELINE / "model.keras"  # the trained baseline as participants save theirs
FRAMES = ("frankfurt_000000_000019", "frankfurt_000001_000019", "lindau_000000_000019")
WIDTH, HEIGHT = 96, 48


@dataclass(frozen=True)
class TinyCase:
    """A hand-built ground truth and a valid results folder for it (copy before changing)."""

    ref: Path
    res: Path
    frames: tuple[str, ...]


def _ground_truth(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((HEIGHT, WIDTH), 7, np.uint8)
    labels[:12] = 23
    labels[12:20] = 11
    labels[HEIGHT - 4 :] = 1  # ego vehicle: void
    instances = labels.astype(np.int32)
    boxes = [(26, 0, 20, 34, 10, 30), (26, 1, 22, 36, 50, 80), (24, 0, 14, 40, 40, 48), (26, None, 30, 40, 82, 95)]
    for label, k, y0, y1, x0, x1 in boxes:
        shift = int(rng.integers(0, 3))
        labels[y0 + shift : y1, x0:x1] = label
        instances[y0 + shift : y1, x0:x1] = label if k is None else label * 1000 + k
    return labels, instances


def write_tiny_case(root: Path) -> TinyCase:
    rng = np.random.default_rng(7)
    ref, res = root / "ref", root / "res"
    for stem in FRAMES:
        city = stem.split("_")[0]
        labels, instances = _ground_truth(rng)
        gt_dir = ref / "gtFine" / "val" / city
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instances.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        disparity = np.where(np.arange(WIDTH) % 7 == 0, 0, 2000 + np.arange(WIDTH) * 10)[None].repeat(HEIGHT, 0)
        for kind in ("disparity", "camera"):
            (ref / kind / "val" / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(disparity.astype(np.uint16)).save(ref / "disparity" / "val" / city / f"{stem}_disparity.png")
        camera = {"extrinsic": {"baseline": 0.209313}, "intrinsic": {"fx": 2262.52}}
        (ref / "camera" / "val" / city / f"{stem}_camera.json").write_text(json.dumps(camera))
        pixel_dir, instance_dir = res / "pixel" / city, res / "instance" / city
        pixel_dir.mkdir(parents=True, exist_ok=True)
        (instance_dir / "masks").mkdir(parents=True, exist_ok=True)
        prediction = labels.copy()
        prediction[30:34, 0:20] = 8
        Image.fromarray(prediction).save(pixel_dir / f"{stem}_leftImg8bit.png")
        lines = []
        for k, value in enumerate(v for v in np.unique(instances) if v >= 1000):
            mask = (instances == value).astype(np.uint8) * 255
            mask_name = f"masks/{stem}_{k}.png"
            Image.fromarray(mask).save(instance_dir / mask_name)
            lines.append(f"{mask_name} {value // 1000} {0.9 - 0.1 * k:.2f}")
        (instance_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return TinyCase(ref, res, FRAMES)


def rle_predictions(res: Path) -> list[dict]:
    """The instance results of a results folder as one COCO RLE document (each txt mask encoded by pycocotools)."""
    from pycocotools import mask as rle_codec

    predictions = []
    for txt in sorted((res / "instance").rglob("*.txt")):
        for line in txt.read_text().splitlines():
            mask_name, label, confidence = line.split()
            mask = np.asfortranarray((np.array(Image.open(txt.parent / mask_name)) != 0).astype(np.uint8))
            rle = rle_codec.encode(mask)
            rle["counts"] = rle["counts"].decode("ascii")
            stem = txt.name[: -len(".txt")]
            predictions.append(
                {"image_id": stem, "category_id": int(label), "segmentation": rle, "score": float(confidence)}
            )
    return predictions


# ---- the official evaluation, the reference ----


def run_official(root: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "run_official_evaluation.py"), "--gt", str(root / "ref"),
         "--results", str(root / "res"), "--out", str(out), "--distances"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def same(a: float | None, b: float | None) -> bool:
    a = float("nan") if a is None else float(a)
    b = float("nan") if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


def assert_equal_to_official(ours: Scores, official: dict) -> None:
    pixel, instance = official["pixel"], official["instance"]
    np.testing.assert_array_equal(ours.pixel.confusion_matrix, np.array(pixel["confMatrix"], np.uint64))
    checks = [
        ("iou_class", ours.pixel.iou_class, pixel["averageScoreClasses"]),
        ("iiou_class", ours.pixel.iiou_class, pixel["averageScoreInstClasses"]),
        ("iou_category", ours.pixel.iou_category, pixel["averageScoreCategories"]),
        ("iiou_category", ours.pixel.iiou_category, pixel["averageScoreInstCategories"]),
    ]
    for name in LABEL_NAMES:  # the official dicts hold every label; NaN where a score is undefined
        checks.append((f"{name} iou", ours.pixel.class_iou.get(name, math.nan), pixel["classScores"][name]))
        checks.append((f"{name} iiou", ours.pixel.class_iiou.get(name, math.nan), pixel["classInstScores"][name]))
    for name, value in pixel["categoryScores"].items():
        checks.append((f"{name} category iou", ours.pixel.category_iou.get(name, math.nan), value))
    for name, value in pixel["categoryInstScores"].items():
        checks.append((f"{name} category iiou", ours.pixel.category_iiou.get(name, math.nan), value))
    averages = instance["averages"]
    checks += [
        ("ap", ours.instance.ap, averages["allAp"]),
        ("ap50", ours.instance.ap50, averages["allAp50%"]),
        ("ap100m", ours.instance.ap100m, averages["allAp100m"]),
        ("ap50m", ours.instance.ap50m, averages["allAp50m"]),
    ]
    for name, values in averages["classes"].items():
        for key, official_key in (("ap", "ap"), ("ap50", "ap50%"), ("ap100m", "ap100m"), ("ap50m", "ap50m")):
            checks.append((f"{name} {key}", ours.instance.class_scores[name][key], values[official_key]))
    wrong = [f"{name}: ours {a} official {b}" for name, a, b in checks if not same(a, b)]
    assert not wrong, "\n".join(wrong)
    official_ap = np.array(instance["resultApMatrix"], float)
    assert ours.instance.ap_matrix.shape == official_ap.shape
    np.testing.assert_array_equal(np.isnan(ours.instance.ap_matrix), np.isnan(official_ap))
    np.testing.assert_allclose(ours.instance.ap_matrix, official_ap, rtol=0, atol=1e-9, equal_nan=True)


# ---- platform inputs, as CodaLab v1.5 writes them ----


def finished_row(number: int, started_at: str, user: str = "alice") -> dict:
    """A row as CodaLab's csv.DictWriter writes it (str(datetime) timestamps)."""
    return {
        "participant__user__username": user,
        "pk": 1000 + number,
        "when_made_public": "",
        "when_unmade_public": "",
        "started_at": started_at,
        "completed_at": started_at,
        "download_count": 0,
        "submission_number": number,
        "like_count": 0,
        "dislike_count": 0,
    }


def platform_input(
    tmp_path: Path,
    submitted_at: str,
    number: int,
    rows: list[dict] = (),
    phase: int = 1,
    user: str = "alice",
    automatic: str = "False",
) -> Path:
    """INPUT/metadata and INPUT/coopetition/ as CodaLab v1.5 lays them out for the scoring run."""
    input_dir = tmp_path / "input"
    (input_dir / "coopetition").mkdir(parents=True)
    (input_dir / "metadata").write_text(
        "ref: https://example.org/ref.zip?sig=1\nres: https://example.org/res.zip?sig=2\n"
        f"submitted-by: {user}\nsubmitted-at: {submitted_at}\ncompetition-submission: {number}\n"
        f"competition-phase: {phase}\nautomatic-submission: {automatic}\n"
    )
    for phase_number in (1, 2):
        with (input_dir / "coopetition" / f"coopetition_phase_{phase_number}.txt").open("w", newline="") as file:
            writer = csv.DictWriter(file, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows if phase_number == phase else [])
    return input_dir


# ---- bounded child processes ----


def outcome_within(function: Callable[..., object], *args: object, seconds: float = 30) -> tuple[str, str]:
    """``function(*args)`` in a forked child with bounded time and memory: ("returned", "") or the exception's
    (type name, message). A hang fails the test instead of stopping the test run; so does a memory blow-up."""
    kind, message, _ = _bounded(function, args, seconds)
    return kind, message


def memory_growth_within(function: Callable[..., object], *args: object, seconds: float = 60) -> int:
    """How many bytes the peak resident memory grew while ``function(*args)`` ran (in a child, as above)."""
    kind, message, growth = _bounded(function, args, seconds)
    assert kind == "returned", (kind, message[:300])
    return growth


def _bounded(function: Callable[..., object], args: tuple, seconds: float) -> tuple[str, str, int]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_run_bounded, args=(results, function, args))
    child.start()
    try:
        return results.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"{function.__name__} was still running after {seconds} s: a hang")
    finally:
        child.kill()
        child.join()


def _run_bounded(results: multiprocessing.Queue, function: Callable[..., object], args: tuple) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = _address_space() + 2**30  # a gigabyte more than forked
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        function(*args)
        outcome = ("returned", "")
    except BaseException as error:  # the outcome is the test's to judge
        outcome = (type(error).__name__, str(error)[:5000])
    results.put((*outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) * 1024))


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 2**34


# ---- example scores, for the report's tests ----

NAN = float("nan")
EVAL_NAMES = [LABEL_NAMES[i] for i in EVAL_CLASS_IDS]
EVIL_NOTE = "no camera data for <img src=x onerror=alert(1)>"


def _confusion(rng: np.random.Generator) -> np.ndarray:
    conf = np.zeros((34, 34), dtype=np.uint64)
    ids = list(EVAL_CLASS_IDS)
    for i in ids:
        conf[i, ids] = rng.integers(0, 1000, size=len(ids))
        conf[i, i] = 100_000
        conf[i, 0] = 500  # some pixels predicted as an ignored label
    conf[LABEL_NAMES.index("train")] = 0  # a class without ground truth
    return conf


def make_pixel() -> PixelScores:
    class_iou = {name: 0.5 + 0.02 * k for k, name in enumerate(EVAL_NAMES)}
    class_iou["train"] = NAN
    class_iiou = {name: 0.4 + 0.03 * k for k, name in enumerate(INSTANCE_CLASS_NAMES)}
    class_iiou["train"] = NAN
    category_iou = {
        "flat": 0.981,
        "construction": 0.9,
        "object": 0.6,
        "nature": 0.91,
        "sky": 0.93,
        "human": 0.8,
        "vehicle": 0.92,
    }
    return PixelScores(
        iou_class=0.73216,
        iiou_class=0.51234,
        iou_category=0.8821,
        iiou_category=NAN,
        class_iou=class_iou,
        class_iiou=class_iiou,
        category_iou=category_iou,
        category_iiou={"human": NAN, "vehicle": 0.7777},
        confusion_matrix=_confusion(np.random.default_rng(0)),
    )


def make_instance(distances: bool = False) -> InstanceScores:
    aps = [0.31, 0.22, 0.55, 0.3, 0.45, NAN, 0.2, 0.19]
    class_scores: dict[str, dict[str, float]] = {}
    for name, ap in zip(INSTANCE_CLASS_NAMES, aps, strict=True):
        class_scores[name] = {"ap": ap, "ap50": ap * 1.8}
        if distances:
            class_scores[name] |= {"ap100m": ap * 1.2, "ap50m": ap * 1.3}
    overlaps = np.linspace(0.5, 0.95, 10)
    per_class = np.array([[ap * (1.5 - o) for o in overlaps] for ap in aps])
    return InstanceScores(
        ap=0.3123,
        ap50=0.5789,
        ap100m=0.4012 if distances else None,
        ap50m=0.4321 if distances else None,
        class_scores=class_scores,
        ap_matrix=np.stack([per_class] * 3),
        distance_note=None if distances else EVIL_NOTE,
    )


# ---- PNG files, as the official scripts read them ----


def pillow_reading(path: Path, reader: str) -> np.ndarray | None:
    """What the official scripts read (masks: nonzero after ``convert('L')``); None where Pillow fails."""
    try:
        with Image.open(path) as image:
            if reader == "mask":
                return np.flatnonzero(np.asarray(image.convert("L")) != 0)
            return np.asarray(image.convert("RGB") if reader == "photo" else image)
    except Exception:  # whatever a damaged file makes Pillow raise
        return None


# ---- PNGs with chosen row filters (an encoder independent of the decoders under test) ----


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def filter_row(row: np.ndarray, above: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """One row filtered as the PNG specification says (``bpp`` bytes per pixel: the step to "left")."""
    row, above = row.astype(np.int64), above.astype(np.int64)
    left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
    upper_left = np.concatenate([np.zeros(bpp, np.int64), above[:-bpp]])
    if kind == 0:
        prediction = np.zeros_like(row)
    elif kind == 1:
        prediction = left
    elif kind == 2:
        prediction = above
    elif kind == 3:
        prediction = (left + above) // 2
    else:
        estimate = left + above - upper_left
        pa, pb, pc = np.abs(estimate - left), np.abs(estimate - above), np.abs(estimate - upper_left)
        prediction = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left))
    return ((row - prediction) % 256).astype(np.uint8)


def filtered_png(pixels: np.ndarray, depth: int, filters: np.ndarray, idat_pieces: int = 1) -> bytes:
    """A grayscale (h, w) or 8-bit RGB (h, w, 3) PNG with the given row filters (an encoder
    independent of the decoder under test)."""
    height, width = pixels.shape[:2]
    color_type = 2 if pixels.ndim == 3 else 0
    if color_type == 2:
        rows = pixels.astype(np.uint8).reshape(height, width * 3)
    elif depth == 1:
        rows = np.packbits(pixels.astype(bool), axis=1)
    elif depth == 16:
        rows = pixels.astype(">u2").view(np.uint8).reshape(height, width * 2)
    else:
        rows = pixels.astype(np.uint8)
    bpp = 3 if color_type == 2 else max(1, depth // 8)
    above = np.zeros(rows.shape[1], np.uint8)
    stream = bytearray()
    for row, kind in zip(rows, filters, strict=True):
        stream.append(int(kind))
        stream += filter_row(row, above, bpp, int(kind)).tobytes()
        above = row
    compressed = zlib.compress(bytes(stream), 6)
    pieces = np.array_split(np.frombuffer(compressed, np.uint8), idat_pieces)
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    body = b"".join(png_chunk(b"IDAT", piece.tobytes()) for piece in pieces)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + body + png_chunk(b"IEND", b"")


def runs_of_pixels(pixels: np.ndarray) -> PixelRuns:
    """A mask given by its ascending distinct flat pixel indices, as runs (what the decoders give)."""
    pixels = np.asarray(pixels, np.int64)
    if len(pixels) == 0:
        return PixelRuns(pixels, pixels)
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    return PixelRuns(pixels[np.concatenate([[0], breaks])], np.append(pixels[breaks - 1], pixels[-1]) + 1)
