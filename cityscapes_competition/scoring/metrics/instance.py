"""Instance-level semantic labeling: AP, AP50%, AP100m, AP50m.

Reproduces cityscapesScripts 2.3.0, evaluation/evalInstanceLevelSemanticLabeling.py: ``assignGt2Preds``
(one image's predictions against its ground-truth regions), ``evaluateMatches`` (the AP matrix) and
``computeAverages``. Three steps: ``evaluate_frame`` per image, ``combine``, ``summarize``. Unlike the
pixel totals, the records are concatenated, not summed: AP ranks every prediction of a class across all
images by confidence, so nothing can be reduced before the last frame.

Rules (the official arguments in brackets):
- **Classes**: the 8 instance classes; a prediction of another label id, or with no pixel, is dropped.
- **Ground truth**: the instanceIds regions of those classes. Values of 1000 and above are instances
  (label * 1000 + k); a bare label id is a group region (a crowd of cars...), never matched, and a
  prediction's overlap with it is ignored.
- **Settings** [minRegionSizes, distanceThs, distanceConfs]: all distances: instances of at least 100
  pixels; 100 m and 50 m: at least 1000 pixels, a median distance (from disparity and the camera file) at
  most 100 or 50 m, and at least half of the instance's pixels with a valid disparity. Instances outside
  a setting are ignored like group regions.
- **Overlaps** [overlaps]: 0.50, 0.55, ..., 0.95. A prediction matches a region of its class when their
  IoU is strictly above the overlap.
- **Counting**, per class, setting and overlap: of the predictions matching one instance, the most
  confident is a true positive and the others false positives; an instance nobody matches is a false
  negative; a prediction matching nothing is a false positive, unless more than the overlap's share of its
  pixels lie on void ground truth, group regions or instances outside the setting (then it is ignored).
- **AP**: the official precision-recall curve over the distinct confidences, closed with precision 1 at
  recall 0, integrated with steps halfway between neighbouring recalls (``official_average_precision``).
  NaN when the class has no instance in the setting; 0 when it has instances but no prediction.
- **Averages** [computeAverages]: AP is the mean over classes and the ten overlaps (NaN entries left out),
  AP50% the mean over classes at 0.50, AP100m and AP50m as AP within 100 m and 50 m.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ...core.arrays import PixelRuns, concatenated_ranges
from ...core.labels import INSTANCE_CLASS_IDS, INSTANCE_CLASS_NAMES, NUM_LABEL_IDS, VOID_LABEL_IDS, label_lookup
from ..scores import InstanceScores

OVERLAPS = np.arange(0.5, 1.0, 0.05)  # the official thresholds, compared with a strict ">"
MIN_REGION_SIZES = np.array([100, 1000, 1000])
DISTANCE_THRESHOLDS = np.array([float("inf"), 100, 50])
MIN_STEREO_DENSITIES = np.array([-float("inf"), 0.5, 0.5])
ALL_DISTANCES, WITHIN_100M, WITHIN_50M = 0, 1, 2
FIRST_INSTANCE_ID = 1000  # regions below are group regions: ignored, never matched

_CLASS_INDEX = label_lookup({label: i for i, label in enumerate(INSTANCE_CLASS_IDS)}, -1, np.int64)
# instanceIds values that are void ground truth: the ignored labels' ids, as bare values (never ids >= 1000).
_VOID_VALUES = np.array([label for label in VOID_LABEL_IDS if label >= 0])


def label_of_region(region_ids: np.ndarray) -> np.ndarray:
    """The label id of instanceIds values: the value itself below 1000, else value // 1000."""
    return np.where(region_ids < FIRST_INSTANCE_ID, region_ids, region_ids // 1000)


@dataclass
class Prediction:
    """One predicted instance: its pixels as runs of flat indices, its label id and confidence."""

    runs: PixelRuns
    label_id: int
    confidence: float


@dataclass
class InstanceFrameRecord:
    """One image's regions, predictions and their overlaps; indices are local to the frame."""

    region_id: np.ndarray  # instanceIds value of each ground-truth region of an instance class
    region_class: np.ndarray  # index into INSTANCE_CLASS_IDS
    region_size: np.ndarray
    region_distance: np.ndarray  # median depth in metres (+inf without valid disparity)
    region_density: np.ndarray  # share of the region's pixels with a valid disparity
    pred_class: np.ndarray
    pred_confidence: np.ndarray
    pred_size: np.ndarray
    pred_void: np.ndarray  # pixels on void ground truth
    pair_pred: np.ndarray  # (prediction, region) pairs that intersect, with the intersection
    pair_region: np.ndarray
    pair_intersection: np.ndarray


@dataclass
class RegionDistances:
    """Per-region median depth and stereo density, aligned with the regions passed in."""

    median_depth: np.ndarray
    density: np.ndarray


def is_instance_class(label_id: int) -> bool:
    return 0 <= label_id < NUM_LABEL_IDS and _CLASS_INDEX[label_id] >= 0


def ground_truth_regions(gt_instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The regions of instance classes (instances and groups) and their sizes."""
    return ground_truth_regions_from_counts(np.bincount(gt_instance_ids.ravel()))


def ground_truth_regions_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same, from the pixel count of every instanceIds value."""
    region_ids = np.flatnonzero(counts)
    labels = label_of_region(region_ids)
    keep = (labels < NUM_LABEL_IDS) & (_CLASS_INDEX[np.minimum(labels, NUM_LABEL_IDS - 1)] >= 0)
    return region_ids[keep], counts[region_ids[keep]]


def evaluate_frame(
    gt_instance_ids: np.ndarray,
    predictions: Iterable[Prediction],
    distances: RegionDistances | None = None,
    regions: tuple[np.ndarray, np.ndarray] | None = None,
) -> InstanceFrameRecord:
    """Match one image's predictions against its ground-truth regions.

    Predictions of classes outside the task and empty ones are dropped, as the official code does.
    """
    region_id, region_size = regions if regions is not None else ground_truth_regions(gt_instance_ids)
    region_class = _CLASS_INDEX[label_of_region(region_id)]
    gt_image = _as_unsigned(gt_instance_ids)
    bins = _RegionBins(region_id, region_class, gt_image.dtype)
    preds: list[tuple[int, float, int, int]] = []
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for prediction, class_index, counts in _counted(predictions, _GroundTruthRuns(gt_image, bins)):
        regions_hit, intersection = bins.regions_of_class(counts, class_index)
        pairs.append((np.full(len(regions_hit), len(preds)), regions_hit, intersection))
        preds.append((class_index, float(prediction.confidence), int(counts.sum()), int(counts[bins.void])))
    if distances is None:
        distances = RegionDistances(np.full(len(region_id), -1.0), np.zeros(len(region_id)))
    pred_columns = np.array(preds, dtype=float).reshape(-1, 4)
    return InstanceFrameRecord(
        region_id=region_id.astype(np.int64),
        region_class=region_class,
        region_size=region_size.astype(np.int64),
        region_distance=distances.median_depth,
        region_density=distances.density,
        pred_class=pred_columns[:, 0].astype(np.int64),
        pred_confidence=pred_columns[:, 1],
        pred_size=pred_columns[:, 2].astype(np.int64),
        pred_void=pred_columns[:, 3].astype(np.int64),
        pair_pred=_concat([p[0] for p in pairs]),
        pair_region=_concat([p[1] for p in pairs]),
        pair_intersection=_concat([p[2] for p in pairs]),
    )


def _as_unsigned(values: np.ndarray) -> np.ndarray:
    """instanceIds values as uint8/uint16 (their PNG types), so a table can cover every possible value."""
    if values.dtype in (np.uint8, np.uint16):
        return values
    if values.size and (int(values.min()) < 0 or int(values.max()) > np.iinfo(np.uint16).max):
        raise ValueError("instanceIds values must lie in 0..65535")
    return values.astype(np.uint16)


# A frame's predictions are counted together, in batches of at most _RUNS_PER_BATCH runs (a street scene's 40
# masks hold ~6,000) and _COUNTS_PER_BATCH counts (masks x bins), their overlaps with the ground truth's runs
# _OVERLAPS_PER_CHUNK at a time: at most about 200 MB whatever masks a participant sends (measured by an attack:
# a ground truth of 2 million one-pixel runs against masks of a million runs each, both orders in one image).
_RUNS_PER_BATCH = 1 << 20
_COUNTS_PER_BATCH = 1 << 20
_OVERLAPS_PER_CHUNK = 1 << 20


def _counted(
    predictions: Iterable[Prediction], gt_runs: _GroundTruthRuns
) -> Iterator[tuple[Prediction, int, np.ndarray]]:
    """Each prediction of a class of the task with pixels, its class index and its pixels per bin: counted in
    batches of one flat order, within the bounds above."""
    batch: list[tuple[Prediction, int]] = []
    batch_runs = 0
    for prediction in predictions:
        label = prediction.label_id
        class_index = int(_CLASS_INDEX[label]) if 0 <= label < NUM_LABEL_IDS else -1
        runs = len(prediction.runs.starts)
        if class_index < 0 or runs == 0:
            continue
        if batch and (
            batch_runs + runs > _RUNS_PER_BATCH
            or (len(batch) + 1) * gt_runs.bin_count > _COUNTS_PER_BATCH
            or prediction.runs.column_major != batch[0][0].runs.column_major
        ):
            yield from _with_counts(batch, gt_runs)
            batch, batch_runs = [], 0
        batch.append((prediction, class_index))
        batch_runs += runs
    yield from _with_counts(batch, gt_runs)


def _with_counts(
    batch: list[tuple[Prediction, int]], gt_runs: _GroundTruthRuns
) -> Iterator[tuple[Prediction, int, np.ndarray]]:
    counts = gt_runs.counts([prediction.runs for prediction, _ in batch])
    for (prediction, class_index), prediction_counts in zip(batch, counts, strict=True):
        yield prediction, class_index, prediction_counts


class _GroundTruthRuns:
    """The ground truth as runs of equal instanceIds values, in the flat order of the masks counted (row-major
    for PNG masks, column-major for RLE ones), each run with its bin. A mask's pixels per bin are then its
    runs' overlaps with these runs: work in proportion to runs, not pixels."""

    def __init__(self, gt_image: np.ndarray, bins: _RegionBins) -> None:
        self.image, self.bins = gt_image, bins
        self.bin_count = bins.other + 1
        self.orders: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def runs(self, column_major: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, stops, bins) of the runs."""
        if column_major not in self.orders:
            image = self.image if self.image.ndim == 2 else self.image.reshape(1, -1)
            starts = _column_major_run_starts(image) if column_major else _run_starts(image.reshape(-1))
            stops = np.append(starts[1:], image.size)
            if column_major:
                values = image[starts % image.shape[0], starts // image.shape[0]]
            else:
                values = image.reshape(-1)[starts]
            self.orders[column_major] = (starts, stops, self.bins.table[values])
        return self.orders[column_major]

    def counts(self, masks: list[PixelRuns]) -> np.ndarray:
        """Each mask's pixels per bin, (masks, bins): masks of one order, their runs inside the image."""
        bin_count = self.bin_count
        totals = np.zeros(len(masks) * bin_count, np.int64)
        if not masks:
            return totals.reshape(0, bin_count)
        gt_starts, gt_stops, gt_bins = self.runs(masks[0].column_major)
        starts = np.concatenate([mask.starts for mask in masks])
        stops = np.concatenate([mask.stops for mask in masks])
        owner = np.repeat(np.arange(len(masks)), [len(mask.starts) for mask in masks])
        first = np.searchsorted(gt_starts, starts, side="right") - 1  # the ground-truth runs each run meets
        last = np.searchsorted(gt_starts, stops, side="left")
        spans = np.cumsum(last - first)
        chunk_ends = np.searchsorted(spans, np.arange(_OVERLAPS_PER_CHUNK, int(spans[-1]), _OVERLAPS_PER_CHUNK))
        for chunk in np.split(np.arange(len(starts)), np.unique(chunk_ends)):
            meets = concatenated_ranges(first[chunk], last[chunk])
            run = np.repeat(chunk, last[chunk] - first[chunk])
            overlap = np.minimum(stops[run], gt_stops[meets]) - np.maximum(starts[run], gt_starts[meets])
            keys = owner[run] * bin_count + gt_bins[meets]
            totals += np.bincount(keys, weights=overlap, minlength=len(totals)).astype(np.int64)
        return totals.reshape(len(masks), bin_count)


class _RegionBins:
    """A table from every instanceIds value to a bin: one per region (in ``region_id`` order), one for void
    labels and one for everything else. A prediction's overlap with each region and with void is read off its
    pixels per bin (``_GroundTruthRuns.counts``)."""

    def __init__(self, region_id: np.ndarray, region_class: np.ndarray, value_type: np.dtype):
        self.void, self.other = len(region_id), len(region_id) + 1
        table_type = np.uint8 if self.other <= np.iinfo(np.uint8).max else np.intp
        size = max(np.iinfo(value_type).max, int(region_id.max(initial=0))) + 1
        self.table = np.full(size, self.other, table_type)
        self.table[_VOID_VALUES] = self.void
        self.table[region_id] = np.arange(len(region_id))
        self.class_regions = [np.flatnonzero(region_class == c) for c in range(len(INSTANCE_CLASS_IDS))]

    def regions_of_class(self, counts: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
        """The regions of the class the prediction overlaps (ascending), and the overlaps."""
        candidates = self.class_regions[class_index]
        overlap = counts[candidates]
        hit = overlap > 0
        return candidates[hit], overlap[hit]


def _run_starts(flat: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins."""
    return np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))


def _column_major_run_starts(image: np.ndarray) -> np.ndarray:
    """``_run_starts`` of the image read column by column, without transposing it (numpy's strided copy of a
    2048x1024 image takes 7 ms, its nonzero of the transposed changes 4): the changes down each column, found
    row against row in memory order and put in column order by a radix sort of their columns (1 ms), and the
    columns whose first value differs from the previous column's last."""
    height, width = image.shape
    changes = np.flatnonzero(image[1:] != image[:-1])  # (row, column) of each change, row-major
    columns = changes % width
    order = np.argsort(columns.astype(np.uint16) if width <= 1 << 16 else columns, kind="stable")  # rows stay sorted
    inside = columns[order] * height + changes[order] // width + 1
    between = (np.flatnonzero(image[0, 1:] != image[-1, :-1]) + 1) * height
    return np.concatenate(([0], np.insert(inside, np.searchsorted(inside, between), between)))


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


@dataclass
class InstanceTotals:
    """All frames' records, concatenated with global indices."""

    region_id: np.ndarray
    region_class: np.ndarray
    region_size: np.ndarray
    region_distance: np.ndarray
    region_density: np.ndarray
    pred_class: np.ndarray
    pred_confidence: np.ndarray
    pred_size: np.ndarray
    pred_void: np.ndarray
    pair_pred: np.ndarray
    pair_region: np.ndarray
    pair_intersection: np.ndarray
    with_distances: bool = field(default=False)


def combine(records: list[InstanceFrameRecord], with_distances: bool) -> InstanceTotals:
    region_offsets = np.cumsum([0] + [len(r.region_id) for r in records])
    pred_offsets = np.cumsum([0] + [len(r.pred_class) for r in records])

    def cat(name: str, offsets: np.ndarray | None = None, dtype=None) -> np.ndarray:
        parts = [getattr(r, name) + (offsets[i] if offsets is not None else 0) for i, r in enumerate(records)]
        if not parts:
            return np.zeros(0, dtype or np.int64)
        return np.concatenate(parts)

    return InstanceTotals(
        region_id=cat("region_id"),
        region_class=cat("region_class"),
        region_size=cat("region_size"),
        region_distance=cat("region_distance", dtype=float),
        region_density=cat("region_density", dtype=float),
        pred_class=cat("pred_class"),
        pred_confidence=cat("pred_confidence", dtype=float),
        pred_size=cat("pred_size"),
        pred_void=cat("pred_void"),
        pair_pred=cat("pair_pred", pred_offsets),
        pair_region=cat("pair_region", region_offsets),
        pair_intersection=cat("pair_intersection"),
        with_distances=with_distances,
    )


def average_precision_matrix(totals: InstanceTotals) -> np.ndarray:
    """The official resultApMatrix: (distance settings, classes, overlaps)."""
    settings = 3 if totals.with_distances else 1
    ap = np.zeros((settings, len(INSTANCE_CLASS_IDS), len(OVERLAPS)))
    pair_class = totals.pred_class[totals.pair_pred]
    for class_index in range(len(INSTANCE_CLASS_IDS)):
        in_class = pair_class == class_index
        view = _ClassView(totals, class_index, in_class)
        for setting in range(settings):
            for overlap_index, overlap in enumerate(OVERLAPS):
                ap[setting, class_index, overlap_index] = view.average_precision(setting, overlap)
    return ap


class _ClassView:
    """One class's regions, predictions and pairs, re-indexed locally."""

    def __init__(self, totals: InstanceTotals, class_index: int, pair_mask: np.ndarray):
        regions = np.flatnonzero(totals.region_class == class_index)
        preds = np.flatnonzero(totals.pred_class == class_index)
        region_local = np.full(len(totals.region_class), -1)
        region_local[regions] = np.arange(len(regions))
        pred_local = np.full(len(totals.pred_class), -1)
        pred_local[preds] = np.arange(len(preds))
        self.region_is_instance = totals.region_id[regions] >= FIRST_INSTANCE_ID
        self.region_size = totals.region_size[regions]
        self.region_distance = totals.region_distance[regions]
        self.region_density = totals.region_density[regions]
        self.confidence = totals.pred_confidence[preds]
        self.pred_size = totals.pred_size[preds]
        self.pred_void = totals.pred_void[preds]
        self.pair_pred = pred_local[totals.pair_pred[pair_mask]]
        self.pair_region = region_local[totals.pair_region[pair_mask]]
        self.intersection = totals.pair_intersection[pair_mask]
        union = self.region_size[self.pair_region] + self.pred_size[self.pair_pred] - self.intersection
        self.iou = self.intersection.astype(float) / union

    def average_precision(self, setting: int, overlap: float) -> float:
        eligible = self._eligible(setting)
        have_gt, have_pred = bool(eligible.any()), len(self.confidence) > 0
        if not have_gt:
            return float("nan")
        if not have_pred:
            return 0.0
        scores, is_true, hard_false_negatives = self._examples(setting, overlap, eligible)
        if len(scores) == 0:
            # The official code crashes here (cityscapesScripts issue #89); the competition rule is 0.
            return 0.0
        return official_average_precision(scores, is_true, hard_false_negatives)

    def _eligible(self, setting: int) -> np.ndarray:
        """Regions that count as ground truth: instances big, near and dense enough."""
        return self.region_is_instance & ~self._outside_setting(setting)

    def _outside_setting(self, setting: int) -> np.ndarray:
        return (
            (self.region_size < MIN_REGION_SIZES[setting])
            | (self.region_distance > DISTANCE_THRESHOLDS[setting])
            | (self.region_density < MIN_STEREO_DENSITIES[setting])
        )

    def _examples(self, setting: int, overlap: float, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        matched = self.iou > overlap
        # Ground-truth side: the best match of each region is a true positive, other matches false positives.
        gt_pairs = np.flatnonzero(matched & eligible[self.pair_region])
        order = np.lexsort((-self.confidence[self.pair_pred[gt_pairs]], self.pair_region[gt_pairs]))
        gt_pairs = gt_pairs[order]
        regions_of_pairs = self.pair_region[gt_pairs]
        first = np.ones(len(gt_pairs), bool)
        first[1:] = regions_of_pairs[1:] != regions_of_pairs[:-1]
        hard_false_negatives = int(eligible.sum()) - int(first.sum())
        # Prediction side: a prediction matching no region is a false positive unless mostly on ignored pixels.
        found = np.zeros(len(self.confidence), bool)
        found[self.pair_pred[matched]] = True
        ignored_share = self._ignored_pixels(setting) / self.pred_size
        unmatched = ~found & (ignored_share <= overlap)
        scores = np.concatenate([self.confidence[self.pair_pred[gt_pairs]], self.confidence[unmatched]])
        is_true = np.concatenate([first.astype(float), np.zeros(int(unmatched.sum()))])
        return scores, is_true, hard_false_negatives

    def _ignored_pixels(self, setting: int) -> np.ndarray:
        """Void pixels, plus overlap with group regions and with regions outside the setting.

        As in the official code, overlap with a group region outside the setting counts twice.
        """
        weight = (~self.region_is_instance).astype(np.int64) + self._outside_setting(setting)
        per_pair = self.intersection * weight[self.pair_region]
        return self.pred_void + np.bincount(self.pair_pred, per_pair, len(self.confidence)).astype(np.int64)


def official_average_precision(scores: np.ndarray, is_true: np.ndarray, hard_false_negatives: int) -> float:
    """The official precision/recall curve and its integration, step for step."""
    order = np.argsort(scores)
    sorted_scores = scores[order]
    true_cumsum = np.cumsum(is_true[order])
    _, first_of_score = np.unique(sorted_scores, return_index=True)
    n_examples = len(sorted_scores)
    n_true = true_cumsum[-1]
    # At each distinct score, from the lowest: the examples scored at least that are the predictions kept.
    below = np.append(true_cumsum, 0)[first_of_score - 1]  # true examples scored lower (index -1 reads 0)
    tp = n_true - below
    fp = n_examples - first_of_score - tp
    fn = below + hard_false_negatives
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 is NaN, as in the official loop
        precision = np.append(tp / (tp + fp), 1.0)
        recall = np.append(tp / (tp + fn), 0.0)
    padded = np.append(np.append(recall[0], recall), 0.0)
    step_widths = np.convolve(padded, [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, step_widths))


def summarize(totals: InstanceTotals, distance_note: str | None = None) -> InstanceScores:
    ap = average_precision_matrix(totals)
    first_overlap = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN is NaN, as intended
        class_scores: dict[str, dict[str, float]] = {}
        for i, name in enumerate(INSTANCE_CLASS_NAMES):
            class_scores[name] = {"ap": float(np.average(ap[0, i, :])), "ap50": float(ap[0, i, first_overlap])}
            if totals.with_distances:
                class_scores[name]["ap100m"] = float(np.average(ap[WITHIN_100M, i, :]))
                class_scores[name]["ap50m"] = float(np.average(ap[WITHIN_50M, i, :]))
        return InstanceScores(
            ap=float(np.nanmean(ap[ALL_DISTANCES])),
            ap50=float(np.nanmean(ap[ALL_DISTANCES, :, first_overlap])),
            ap100m=float(np.nanmean(ap[WITHIN_100M])) if totals.with_distances else None,
            ap50m=float(np.nanmean(ap[WITHIN_50M])) if totals.with_distances else None,
            class_scores=class_scores,
            ap_matrix=ap,
            distance_note=distance_note,
        )
