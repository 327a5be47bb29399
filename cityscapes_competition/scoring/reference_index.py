"""A precomputed index of the reference data: what every submission's scoring would otherwise
recompute from the ground truth alone.

Per frame: the pixel count of each label id, the table of instance-class regions with their
sizes, median depths and stereo densities (which needs the disparity image decoded), and, for a
labelIds or instanceIds file whose rows pywuffs decodes slowly (the Paeth rows of a download's), a
copy of it re-encoded Up-filtered, pixel for pixel, in ``cityscapes_reference_index/`` beside the
index: the scorer decodes the copies (a download's labelIds 3.9 -> 0.9 ms, instanceIds 7.0 -> 1.5),
and the organiser's files stay as they are. It is built once per reference data set
(``python -m cityscapes_competition index REF``; the bundle builder does it), like the official
evaluation's ``gtInstances.json`` cache, but fingerprinted: each entry holds hashes of the files
it was computed from (and of its copy), and the scorer uses an entry only when the files still
hash the same. A missing or stale index costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import write_bytes_atomic, write_text_atomic
from ..core.errors import ReferenceDataError
from ..core.labels import NUM_LABEL_IDS
from ..core.naming import FrameId
from ..core.processes import worker_pool
from ..png.png_io import PngReadError, up_filtered_copy
from .distances import region_distances
from .groundtruth import (
    GROUND_TRUTH_FIX,
    GroundTruthFrame,
    add_disparity,
    decode_ground_truth,
    discover_ground_truth,
    read_file,
)
from .metrics.instance import RegionDistances, ground_truth_regions_from_counts

INDEX_NAME = "cityscapes_reference_index.json"
COPIES_DIR = "cityscapes_reference_index"  # the re-encoded copies, beside the index
# 2: SHA-256 fingerprints (version 1's BLAKE2b took twice as long: 1 ms per disparity file); 3: the copies.
INDEX_VERSION = 3
# The copies' names: not the ground truth's own suffixes, which the scorer's search of the folder looks for.
_COPY_ENDING = "_copy.png"
LABEL_COPY_SUFFIX = "_labelIds" + _COPY_ENDING
INSTANCE_COPY_SUFFIX = "_instanceIds" + _COPY_ENDING


_WRITE_FIX = "Build the index where the reference folder is writable."


def fingerprint(data: bytes) -> str:
    """SHA-256, which the CPU computes (SHA extensions): every scoring hashes every frame's files."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FrameIndex:
    label_ids: str  # fingerprints of the files the entry was computed from
    instance_ids: str
    disparity: str | None
    camera: str | None
    label_copy: str | None  # fingerprints of the labelIds and instanceIds copies in COPIES_DIR, if made
    instance_copy: str | None
    label_counts: tuple[int, ...]  # pixels per label id 0..33
    region_ids: tuple[int, ...]  # instance-class regions, as ground_truth_regions_from_counts gives them
    median_depth: tuple[float, ...] | None  # None without disparity and camera
    density: tuple[float, ...] | None

    def distances(self) -> RegionDistances | None:
        if self.median_depth is None or self.density is None:
            return None
        return RegionDistances(np.array(self.median_depth), np.array(self.density))


@dataclass(frozen=True)
class ReferenceIndex:
    entries: dict[FrameId, FrameIndex]
    note: str | None = None  # for the organiser: an index this scorer does not read


def copy_paths(ref_root: Path, stem: str) -> tuple[Path, Path]:
    """Where the index keeps the re-encoded labelIds and instanceIds of frame ``stem``."""
    return ref_root / COPIES_DIR / f"{stem}{LABEL_COPY_SUFFIX}", ref_root / COPIES_DIR / f"{stem}{INSTANCE_COPY_SUFFIX}"


def index_frame(frame: GroundTruthFrame, ref_root: Path) -> FrameIndex:
    """Compute one frame's entry from its files, the same way the scorer does live, and write its copies."""
    label_bytes, instance_bytes = read_file(frame.label_ids), read_file(frame.instance_ids)
    image = decode_ground_truth(frame, label_bytes, instance_bytes)
    if frame.has_distances:
        add_disparity(image, frame)
    region_ids, _ = ground_truth_regions_from_counts(image.instance_pixels.counts)
    distances = None
    if image.disparity is not None and image.camera is not None:
        distances = region_distances(image.instance_pixels, region_ids, image.disparity, image.camera)
    label_copy, instance_copy = copy_paths(ref_root, frame.frame.stem)
    return FrameIndex(
        label_ids=fingerprint(label_bytes),
        instance_ids=fingerprint(instance_bytes),
        disparity=fingerprint(read_file(frame.disparity)) if distances is not None else None,
        camera=fingerprint(read_file(frame.camera)) if distances is not None else None,
        label_copy=_write_copy(label_bytes, frame.label_ids, label_copy),
        instance_copy=_write_copy(instance_bytes, frame.instance_ids, instance_copy),
        label_counts=tuple(int(c) for c in np.bincount(image.label_ids.ravel(), minlength=NUM_LABEL_IDS)),
        region_ids=tuple(int(r) for r in region_ids),
        median_depth=tuple(float(d) for d in distances.median_depth) if distances is not None else None,
        density=tuple(float(d) for d in distances.density) if distances is not None else None,
    )


def _write_copy(data: bytes, source: Path, path: Path) -> str | None:
    """``data`` (the file at ``source``) re-encoded Up-filtered at ``path``, and its fingerprint; None if it
    needs no copy (its rows are already None or Up)."""
    try:
        copy = up_filtered_copy(data)
    except PngReadError as exc:
        raise ReferenceDataError(str(exc), source, GROUND_TRUTH_FIX) from None
    if copy is None:
        return None
    try:
        write_bytes_atomic(path, copy, durable=False)
    except OSError as exc:
        raise ReferenceDataError(f"cannot be written ({exc.strerror})", path, _WRITE_FIX) from None
    return fingerprint(copy)


def build_reference_index(ref_root: Path, workers: int | None = None) -> Path:
    frames = discover_ground_truth(ref_root)
    _remove_copies(ref_root)  # an earlier build's: a frame gone, or its file now fast
    entries = dict(zip((f.frame.stem for f in frames), _index_frames(frames, ref_root, workers), strict=True))
    with contextlib.suppress(OSError):  # no copy needed (the builder's files): no folder of them
        (ref_root / COPIES_DIR).rmdir()
    document = {"version": INDEX_VERSION, "frames": {stem: entry.__dict__ for stem, entry in entries.items()}}
    path = ref_root / INDEX_NAME
    write_text_atomic(path, json.dumps(document, separators=(",", ":")))
    return path


def index_copies(ref_root: Path) -> list[Path]:
    """The copies an index build left in ``ref_root``."""
    return sorted((ref_root / COPIES_DIR).glob(f"*{_COPY_ENDING}"))


def _remove_copies(ref_root: Path) -> None:
    try:
        for path in index_copies(ref_root):
            path.unlink()
    except OSError as exc:
        raise ReferenceDataError(f"cannot be emptied ({exc.strerror})", ref_root / COPIES_DIR, _WRITE_FIX) from None


def _index_frames(frames: list[GroundTruthFrame], ref_root: Path, workers: int | None) -> Iterator[FrameIndex]:
    index = functools.partial(index_frame, ref_root=ref_root)
    if workers == 1 or len(frames) < 8:
        yield from map(index, frames)
        return
    with worker_pool(workers) as pool:
        yield from pool.map(index, frames, chunksize=4)


def load_reference_index(ref_root: Path) -> ReferenceIndex:
    """The index entries by frame; none if there is no index. A malformed index is an organiser error."""
    path = ref_root / INDEX_NAME
    if not path.is_file():
        return ReferenceIndex({})
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != INDEX_VERSION:
            return ReferenceIndex(
                {},
                f"The reference index is of another version of this scorer ({document.get('version')!r}, not "
                f"{INDEX_VERSION}), so it was not used (scored correctly, but slower); organisers: rebuild it with "
                f"'{_INDEX_COMMAND}'.",
            )
        return ReferenceIndex({_frame(stem): _entry(raw) for stem, raw in document["frames"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        fix = f"Rebuild it with '{_INDEX_COMMAND}', or delete it."
        raise ReferenceDataError(f"is not a valid reference index ({exc})", path, fix) from None


_INDEX_COMMAND = "python -m cityscapes_competition index <reference folder>"


def _frame(stem: str) -> FrameId:
    city, sequence, frame = stem.split("_")
    return FrameId(city, sequence, frame)


def _entry(raw: dict) -> FrameIndex:
    def floats(key: str) -> tuple[float, ...] | None:
        return None if raw[key] is None else tuple(float(v) for v in raw[key])

    return FrameIndex(
        label_ids=str(raw["label_ids"]),
        instance_ids=str(raw["instance_ids"]),
        disparity=_optional_text(raw["disparity"]),
        camera=_optional_text(raw["camera"]),
        label_copy=_optional_text(raw["label_copy"]),
        instance_copy=_optional_text(raw["instance_copy"]),
        label_counts=tuple(int(v) for v in raw["label_counts"]),
        region_ids=tuple(int(v) for v in raw["region_ids"]),
        median_depth=floats("median_depth"),
        density=floats("density"),
    )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)
