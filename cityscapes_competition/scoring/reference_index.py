"""A precomputed index of the reference data: what every submission's scoring would otherwise
recompute from the ground truth alone.

Per frame: the pixel count of each label id, and the table of instance-class regions with their
sizes, median depths and stereo densities (which needs the disparity image decoded). It is built
once per reference data set (``python -m cityscapes_competition index REF``; the bundle builder
does it), like the official evaluation's ``gtInstances.json`` cache, but fingerprinted: each entry
holds hashes of the files it was computed from, and the scorer uses an entry only when the files
still hash the same. A missing or stale index costs time, never correctness.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import write_text_atomic
from ..core.errors import ReferenceDataError
from ..core.labels import NUM_LABEL_IDS
from ..core.naming import FrameId
from ..core.processes import worker_pool
from .distances import region_distances
from .groundtruth import GroundTruthFrame, discover_ground_truth, load_ground_truth, read_file
from .metrics.instance import RegionDistances, ground_truth_regions_from_counts

INDEX_NAME = "cityscapes_reference_index.json"
INDEX_VERSION = 2  # 2: SHA-256 fingerprints (version 1's BLAKE2b took twice as long: 1 ms per disparity file)


def fingerprint(data: bytes) -> str:
    """SHA-256, which the CPU computes (SHA extensions): every scoring hashes every frame's files."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FrameIndex:
    label_ids: str  # fingerprints of the files the entry was computed from
    instance_ids: str
    disparity: str | None
    camera: str | None
    label_counts: tuple[int, ...]  # pixels per label id 0..33
    region_ids: tuple[int, ...]  # instance-class regions, as ground_truth_regions_from_counts gives them
    median_depth: tuple[float, ...] | None  # None without disparity and camera
    density: tuple[float, ...] | None

    def distances(self) -> RegionDistances | None:
        if self.median_depth is None or self.density is None:
            return None
        return RegionDistances(np.array(self.median_depth), np.array(self.density))


def index_frame(frame: GroundTruthFrame) -> FrameIndex:
    """Compute one frame's entry from its files, the same way the scorer does live."""
    image = load_ground_truth(frame, with_distances=True)
    region_ids, _ = ground_truth_regions_from_counts(image.instance_pixels.counts)
    distances = None
    if image.disparity is not None and image.camera is not None:
        distances = region_distances(image.instance_pixels, region_ids, image.disparity, image.camera)
    return FrameIndex(
        label_ids=fingerprint(read_file(frame.label_ids)),
        instance_ids=fingerprint(read_file(frame.instance_ids)),
        disparity=fingerprint(read_file(frame.disparity)) if distances is not None else None,
        camera=fingerprint(read_file(frame.camera)) if distances is not None else None,
        label_counts=tuple(int(c) for c in np.bincount(image.label_ids.ravel(), minlength=NUM_LABEL_IDS)),
        region_ids=tuple(int(r) for r in region_ids),
        median_depth=tuple(float(d) for d in distances.median_depth) if distances is not None else None,
        density=tuple(float(d) for d in distances.density) if distances is not None else None,
    )


def build_reference_index(ref_root: Path, workers: int | None = None) -> Path:
    frames = discover_ground_truth(ref_root)
    entries = dict(zip((f.frame.stem for f in frames), _index_frames(frames, workers), strict=True))
    document = {"version": INDEX_VERSION, "frames": {stem: entry.__dict__ for stem, entry in entries.items()}}
    path = ref_root / INDEX_NAME
    write_text_atomic(path, json.dumps(document, separators=(",", ":")))
    return path


def _index_frames(frames: list[GroundTruthFrame], workers: int | None) -> Iterator[FrameIndex]:
    if workers == 1 or len(frames) < 8:
        yield from map(index_frame, frames)
        return
    with worker_pool(workers) as pool:
        yield from pool.map(index_frame, frames, chunksize=4)


def load_reference_index(ref_root: Path) -> dict[FrameId, FrameIndex]:
    """The index entries by frame; empty if there is no index. A malformed index is an organiser error."""
    path = ref_root / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != INDEX_VERSION:
            return {}
        return {_frame(stem): _entry(raw) for stem, raw in document["frames"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReferenceDataError(
            f"is not a valid reference index ({exc})",
            path,
            "Rebuild it with 'python -m cityscapes_competition index <reference folder>', or delete it.",
        ) from None


def _frame(stem: str) -> FrameId:
    city, sequence, frame = stem.split("_")
    return FrameId(city, sequence, frame)


def _entry(raw: dict) -> FrameIndex:
    def floats(key: str) -> tuple[float, ...] | None:
        return None if raw[key] is None else tuple(float(v) for v in raw[key])

    return FrameIndex(
        label_ids=str(raw["label_ids"]),
        instance_ids=str(raw["instance_ids"]),
        disparity=raw["disparity"],
        camera=raw["camera"],
        label_counts=tuple(int(v) for v in raw["label_counts"]),
        region_ids=tuple(int(v) for v in raw["region_ids"]),
        median_depth=floats("median_depth"),
        density=floats("density"),
    )
