"""Evaluation of one frame: decode its files, check them, and produce the metric records.

This is the unit of work that runs in the worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.arrays import PixelRuns
from ..core.errors import SubmissionError
from ..core.labels import NUM_LABEL_IDS
from ..core.untrusted_files import SentFolder
from ..png.png_io import PngMissingError, PngReadError, read_masks_runs, read_single_channel
from .distances import region_distances
from .groundtruth import GroundTruthFrame, GroundTruthImage, add_disparity, decode_ground_truth, read_file
from .metrics import instance as instance_metric
from .metrics import pixel as pixel_metric
from .reference_index import FrameIndex, fingerprint
from .results_format import InstanceLine, MaskFile
from .rle_results import rle_runs_of_masks

_PIXEL_FIX = "A pixel prediction is a one-channel PNG of label ids 0..33 at the size of the test image."
_MASK_FIX = "A mask is a PNG at the size of the test image whose nonzero pixels are the instance."


@dataclass(frozen=True)
class FrameJob:
    ground_truth: GroundTruthFrame
    pixel_prediction: Path | None  # None: pixel task not entered
    instance_lines: tuple[InstanceLine, ...] | None  # None: instance task not entered
    with_distances: bool
    index: FrameIndex | None = None  # the reference index's entry, used only if the files still match it
    index_copies: tuple[Path, Path] | None = None  # where the index keeps the frame's labelIds/instanceIds copies
    results_root: SentFolder | None = None  # the results folder every prediction file must lie in


@dataclass
class FrameRecords:
    pixel: pixel_metric.PixelFrameRecord | None
    instance: instance_metric.InstanceFrameRecord | None
    index_stale: bool = False  # an index entry existed but no longer matched the files


def frame_records(job: FrameJob) -> FrameRecords:
    """One image's records for both metrics (their ``evaluate_frame``), from its files: run in a worker process."""
    frame = job.ground_truth
    label_bytes, instance_bytes = read_file(frame.label_ids), read_file(frame.instance_ids)
    entry = job.index
    if entry is not None and (fingerprint(label_bytes), fingerprint(instance_bytes)) != (
        entry.label_ids,
        entry.instance_ids,
    ):
        entry = None
    label_stale = instance_stale = False
    if entry is not None and job.index_copies is not None:  # decoded in place of the files: the same pixels
        label_copy, instance_copy = job.index_copies
        label_bytes, label_stale = _indexed_copy(label_copy, entry.label_copy, label_bytes)
        instance_bytes, instance_stale = _indexed_copy(instance_copy, entry.instance_copy, instance_bytes)
    gt = decode_ground_truth(frame, label_bytes, instance_bytes)
    pixel = None
    if job.pixel_prediction is not None:
        prediction = read_pixel_prediction(job.pixel_prediction, gt, job.results_root)
        pixel = pixel_metric.evaluate_frame(
            gt.label_ids,
            prediction,
            gt.instance_pixels.index,
            gt.instance_pixels.value,
            np.array(entry.label_counts) if entry is not None else None,
            gt.instance_pixels.counts,
        )
    instance, distances_indexed = None, True
    if job.instance_lines is not None:
        instance, distances_indexed = _evaluate_instances(job, gt, entry)
    stale = job.index is not None and (entry is None or not distances_indexed or label_stale or instance_stale)
    return FrameRecords(pixel, instance, stale)


def _indexed_copy(path: Path, expected: str | None, original: bytes) -> tuple[bytes, bool]:
    """The bytes to decode: the index's re-encoded copy of a ground-truth file if it has one and it is still as
    the index fingerprinted it, else the file's own; and whether a copy was expected but not found so."""
    if expected is None:
        return original, False
    try:
        copy = path.read_bytes()
    except OSError:
        return original, True
    return (copy, False) if fingerprint(copy) == expected else (original, True)


def read_pixel_prediction(path: Path, gt: GroundTruthImage, results_root: SentFolder | None) -> np.ndarray:
    try:
        prediction = read_single_channel(path, gt.size, results_root)
    except PngReadError as exc:
        raise SubmissionError(str(exc), path, _PIXEL_FIX) from None
    if prediction.dtype != np.uint8:
        low, high = int(prediction.min()), int(prediction.max())
        if low < 0 or high >= NUM_LABEL_IDS:
            raise SubmissionError(f"holds values {low}..{high}, outside the label ids 0..33", path, _PIXEL_FIX)
        prediction = prediction.astype(np.uint8)
    elif int(prediction.max()) >= NUM_LABEL_IDS:
        high = int(prediction.max())
        hint = " (255 looks like a trainId 'ignore': map trainIds to labelIds)" if high == 255 else ""
        raise SubmissionError(f"holds value {high}, outside the label ids 0..33{hint}", path, _PIXEL_FIX)
    return prediction


def _evaluate_instances(
    job: FrameJob, gt: GroundTruthImage, entry: FrameIndex | None
) -> tuple[instance_metric.InstanceFrameRecord, bool]:
    """The frame's instance record, and whether its distances came from the index (if wanted)."""
    region_ids, region_sizes = instance_metric.ground_truth_regions_from_counts(gt.instance_pixels.counts)
    distances, indexed = None, True
    if job.with_distances:
        distances = _indexed_distances(job.ground_truth, entry, region_ids)
        if distances is None:
            indexed = False
            add_disparity(gt, job.ground_truth)
            if gt.disparity is not None and gt.camera is not None:
                distances = region_distances(gt.instance_pixels, region_ids, gt.disparity, gt.camera)
    lines = [line for line in job.instance_lines if _in_task(line)]
    predictions = (
        instance_metric.Prediction(runs, line.label_id, line.confidence)
        for line, runs in zip(lines, _runs_of(lines, gt, job.results_root), strict=True)
    )
    record = instance_metric.evaluate_frame(gt.instance_ids, predictions, distances, (region_ids, region_sizes))
    return record, indexed


def _indexed_distances(
    frame: GroundTruthFrame, entry: FrameIndex | None, region_ids: np.ndarray
) -> instance_metric.RegionDistances | None:
    """The index's distances, if its entry still matches the disparity and camera files."""
    if entry is None or entry.disparity is None or frame.disparity is None or frame.camera is None:
        return None
    if tuple(region_ids.tolist()) != entry.region_ids:
        return None
    if (
        fingerprint(read_file(frame.disparity)) != entry.disparity
        or fingerprint(read_file(frame.camera)) != entry.camera
    ):
        return None
    return entry.distances()


def _in_task(line: InstanceLine) -> bool:
    """Predictions of classes outside the task are skipped unread, as the official code does."""
    return instance_metric.is_instance_class(line.label_id)


def _runs_of(lines: list[InstanceLine], gt: GroundTruthImage, results_root: SentFolder | None) -> Iterator[PixelRuns]:
    """Each line's mask as runs of pixels, in order, one at a time: mask files read together
    (``read_masks_runs``, a bounded batch at a time), RLE masks straight from their counts."""
    if not lines or not isinstance(lines[0].mask, MaskFile):  # one RLE JSON holds all of an image's masks
        width, height = gt.size
        yield from rle_runs_of_masks([line.mask for line in lines], height, width, [line.source for line in lines])
        return
    by_path = {line.mask.path: line for line in lines}  # to name the line of a mask that fails
    try:
        yield from read_masks_runs([line.mask.path for line in lines], gt.size, results_root)
    except PngMissingError as exc:
        line = by_path[exc.path]
        raise SubmissionError(
            f"{line.source}: the mask {os.path.basename(exc.path)} does not exist", os.path.dirname(exc.path), _MASK_FIX
        ) from None
    except PngReadError as exc:
        raise SubmissionError(f"{exc} (mask of {by_path[exc.path].source})", exc.path, _MASK_FIX) from None
