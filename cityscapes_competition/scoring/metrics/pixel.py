"""Pixel-level semantic labeling: IoU and iIoU, for classes and for categories.

Reproduces cityscapesScripts 2.3.0, evaluation/evalPixelLevelSemanticLabeling.py: ``evaluatePair``
(one image's confusion matrix and instance hits), ``getIouScoreForLabel``,
``getInstanceIouScoreForLabel``, ``getIouScoreForCategory``, ``getInstanceIouScoreForCategory`` and
``getScoreAverage``. Three steps: ``evaluate_frame`` per image, ``combine`` (or ``add_frame``, so the
totals stream: a frame adds into fixed-size sums and is forgotten), ``summarize`` into scores.

Rules (the official arguments in brackets):
- **Confusion matrix** over label ids 0..33, rows ground truth, columns prediction.
- **Scored classes** [evalLabels]: the 19 labels with ``ignoreInEval`` false (labels.py). Ground-truth
  pixels of other labels (void) never count; a scored pixel predicted as a void label is a miss.
- **IoU** of class c: TP / (TP + FP + FN), with TP = M[c, c], FN = the rest of row c (whatever it was
  predicted as, void included), FP = pixels predicted c whose ground truth is another scored class.
  Undefined (NaN) when TP + FP + FN = 0, and then left out of every mean.
- **iIoU** of an instance class c (person, rider, car, truck, bus, train, motorcycle, bicycle): each
  ground-truth instance i of c (instanceIds value > 1000, strictly) weighs w_i = avg_c / size_i, avg_c
  the class's average instance size in the training set [avgClassSize, labels.AVERAGE_INSTANCE_SIZE];
  iIoU = sum_i w_i * hits_i / (sum_i w_i * hits_i + FP + sum_i w_i * (size_i - hits_i)), hits_i the
  instance's pixels predicted c, and FP unweighted, as for IoU. Caravan and trailer instances have
  instances but no score.
- **Categories** (flat, construction, object, nature, sky, human, vehicle): the same with sets of labels:
  a pixel of the category predicted as any scored label of the category is a hit. Category iIoU exists for
  human and vehicle only.
- **Means** [getScoreAverage]: the mean of the defined (non-NaN) class or category scores; NaN if none is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...core.labels import (
    AVERAGE_INSTANCE_SIZE,
    CATEGORIES,
    EVAL_CLASS_IDS,
    INSTANCE_CLASS_IDS,
    NUM_LABEL_IDS,
    Category,
    label_lookup,
    name_of,
)
from ..scores import PixelScores

# Instances of the pixel task: ids above 1000 (the official test is a strict ">") of scored classes.
_INSTANCE_CLASS_INDEX = label_lookup({label: i for i, label in enumerate(INSTANCE_CLASS_IDS)}, -1, np.int64)
_AVERAGE_SIZE = np.array([AVERAGE_INSTANCE_SIZE[name_of(label)] for label in INSTANCE_CLASS_IDS])
_IIOU_CATEGORIES = tuple(category for category in CATEGORIES if category.has_iiou)
# For each instance class, the iIoU category it belongs to (-1 if none), and per category the
# label ids a prediction may carry to count as a category hit.
_CATEGORY_OF_CLASS = np.array(
    [next((i for i, c in enumerate(_IIOU_CATEGORIES) if label in c.iiou_label_ids), -1) for label in INSTANCE_CLASS_IDS]
)
# The iIoU category of each label id (-1 if none): a prediction hits an instance's category when equal.
_CATEGORY_OF_LABEL = label_lookup(
    {label: i for i, category in enumerate(_IIOU_CATEGORIES) for label in category.iiou_label_ids}, -1, np.int64
)
# [instance's label id, predicted label id]: whether the prediction is a hit for the instance's category.
_SAME_IIOU_CATEGORY = (_CATEGORY_OF_LABEL[:, None] == _CATEGORY_OF_LABEL[None, :]) & (_CATEGORY_OF_LABEL[:, None] >= 0)


@dataclass
class PixelFrameRecord:
    """What one image contributes: a confusion matrix and per-instance hit counts."""

    confusion: np.ndarray  # (34, 34) int64, rows ground truth
    instance_class: np.ndarray  # index into INSTANCE_CLASS_IDS, one entry per instance
    instance_size: np.ndarray
    instance_hits: np.ndarray  # pixels predicted as the instance's class
    category_hits: np.ndarray  # pixels predicted as any label of the instance's category


@dataclass
class PixelTotals:
    confusion: np.ndarray  # (34, 34) int64
    class_tp_weighted: np.ndarray  # per instance class
    class_fn_weighted: np.ndarray
    category_tp_weighted: np.ndarray  # per iIoU category
    category_fn_weighted: np.ndarray


def evaluate_frame(
    gt_label_ids: np.ndarray,
    prediction: np.ndarray,
    instance_index: np.ndarray,
    instance_value: np.ndarray,
    gt_label_counts: np.ndarray | None = None,
    instance_value_counts: np.ndarray | None = None,
) -> PixelFrameRecord:
    """Label ids 0..33 in both images (checked by the caller); ``instance_index``/``instance_value``:
    flat indices and instanceIds values of (at least) every pixel whose instanceIds value is above 1000.
    ``gt_label_counts`` (pixels per label id, if known) spares counting the correctly predicted pixels;
    ``instance_value_counts`` (``np.bincount(instance_value)``, if known) spares counting the instances' sizes."""
    return PixelFrameRecord(
        confusion_matrix(gt_label_ids.ravel(), prediction.ravel(), gt_label_counts),
        *_instance_hits(instance_index, instance_value, prediction, instance_value_counts),
    )


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, truth_counts: np.ndarray | None) -> np.ndarray:
    """(34, 34) int64 pixel counts, rows ``truth``, columns ``predicted`` (flat uint8 label ids); ``truth_counts``:
    pixels per label id of ``truth``, if known."""
    if truth_counts is None:
        truth_counts = label_counts(truth)
    # Most pixels are right: count the wrong ones, and the diagonal is what remains of each row.
    wrong = np.flatnonzero(truth != predicted)
    keys = truth[wrong] * np.uint16(NUM_LABEL_IDS) + predicted[wrong]
    matrix = np.bincount(keys, minlength=NUM_LABEL_IDS * NUM_LABEL_IDS).reshape(NUM_LABEL_IDS, NUM_LABEL_IDS)
    matrix = matrix.astype(np.int64)
    matrix[np.diag_indices(NUM_LABEL_IDS)] = truth_counts - matrix.sum(axis=1)
    return matrix


def label_counts(labels: np.ndarray) -> np.ndarray:
    """Pixels per label id 0..33 of flat uint8 label ids, from their runs: a label map has ~16,000 in 2 million
    pixels (0.6 ms, where bincount takes 2.5 converting every pixel to an 8-byte index)."""
    starts = np.concatenate(([0], np.flatnonzero(labels[1:] != labels[:-1]) + 1)) if labels.size else np.zeros(0, int)
    lengths = np.diff(starts, append=labels.size)
    return np.bincount(labels[starts], weights=lengths, minlength=NUM_LABEL_IDS).astype(np.int64)


def _instance_hits(
    index: np.ndarray, value: np.ndarray, prediction: np.ndarray, value_counts: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Per instance (id > 1000, scored class): class index, size, pixels predicted as its class, and as its
    category. One bincount of instance number * 34 + predicted label gives each instance's row of predictions."""
    counts = np.bincount(value) if value_counts is None else value_counts
    ids = _scored_instance_ids(counts)
    labels = ids // 1000
    predictions_per_instance = _predicted_labels_per_instance(index, value, prediction, ids, len(counts))
    hits = predictions_per_instance[np.arange(len(ids)), labels]
    category_hits = (predictions_per_instance * _SAME_IIOU_CATEGORY[labels]).sum(axis=1)
    return _INSTANCE_CLASS_INDEX[labels], counts[ids], hits, category_hits


def _scored_instance_ids(value_counts: np.ndarray) -> np.ndarray:
    """The instanceIds values that are instances of the pixel task: present, above 1000 (the official test
    is a strict ">"), of a scored instance class (not caravan or trailer), in ascending order."""
    present = np.flatnonzero(value_counts[1001 : NUM_LABEL_IDS * 1000]) + 1001
    return present[_INSTANCE_CLASS_INDEX[present // 1000] >= 0]


def _predicted_labels_per_instance(
    index: np.ndarray, value: np.ndarray, prediction: np.ndarray, ids: np.ndarray, value_range: int
) -> np.ndarray:
    """(instances, 34): the pixels of instance ``ids[i]`` predicted as each label id."""
    # Each instanceIds value's first key: instance number * 34; any other value shares the last row.
    row_key = np.full(value_range, len(ids) * NUM_LABEL_IDS, np.intp)
    row_key[ids] = np.arange(len(ids)) * NUM_LABEL_IDS
    keys = np.take(row_key, value)
    keys += np.take(prediction.ravel(), index)
    counts = np.bincount(keys, minlength=(len(ids) + 1) * NUM_LABEL_IDS)
    return counts[: len(ids) * NUM_LABEL_IDS].reshape(len(ids), NUM_LABEL_IDS)


def combine(records: list[PixelFrameRecord]) -> PixelTotals:
    totals = PixelTotals(
        confusion=np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), np.int64),
        class_tp_weighted=np.zeros(len(INSTANCE_CLASS_IDS)),
        class_fn_weighted=np.zeros(len(INSTANCE_CLASS_IDS)),
        category_tp_weighted=np.zeros(len(_IIOU_CATEGORIES)),
        category_fn_weighted=np.zeros(len(_IIOU_CATEGORIES)),
    )
    for record in records:
        add_frame(totals, record)
    return totals


def add_frame(totals: PixelTotals, record: PixelFrameRecord) -> None:
    totals.confusion += record.confusion
    weight = _AVERAGE_SIZE[record.instance_class] / record.instance_size
    tp_weighted = record.instance_hits * weight
    fn_weighted = (record.instance_size - record.instance_hits) * weight
    n_classes = len(INSTANCE_CLASS_IDS)
    totals.class_tp_weighted += np.bincount(record.instance_class, tp_weighted, n_classes)
    totals.class_fn_weighted += np.bincount(record.instance_class, fn_weighted, n_classes)
    category = _CATEGORY_OF_CLASS[record.instance_class]
    counted = category >= 0
    cat_tp = record.category_hits[counted] * weight[counted]
    cat_fn = (record.instance_size[counted] - record.category_hits[counted]) * weight[counted]
    totals.category_tp_weighted += np.bincount(category[counted], cat_tp, len(_IIOU_CATEGORIES))
    totals.category_fn_weighted += np.bincount(category[counted], cat_fn, len(_IIOU_CATEGORIES))


def summarize(totals: PixelTotals) -> PixelScores:
    matrix = totals.confusion
    class_iou = {name_of(label): _class_iou(matrix, label) for label in EVAL_CLASS_IDS}
    class_iiou = {
        name_of(label): _ratio(
            totals.class_tp_weighted[i], _false_positives(matrix, [label], _others(label)), totals.class_fn_weighted[i]
        )
        for i, label in enumerate(INSTANCE_CLASS_IDS)
    }
    category_iou = {c.name: _category_iou(matrix, c) for c in CATEGORIES if c.iou_label_ids}
    category_iiou = {
        c.name: _ratio(
            totals.category_tp_weighted[i],
            _false_positives(matrix, list(c.iiou_label_ids), _outside_category(c)),
            totals.category_fn_weighted[i],
        )
        for i, c in enumerate(_IIOU_CATEGORIES)
    }
    return PixelScores(
        iou_class=nan_mean(class_iou.values()),
        iiou_class=nan_mean(class_iiou.values()),
        iou_category=nan_mean(category_iou.values()),
        iiou_category=nan_mean(category_iiou.values()),
        class_iou=class_iou,
        class_iiou=class_iiou,
        category_iou=category_iou,
        category_iiou=category_iiou,
        confusion_matrix=matrix.astype(np.uint64),
    )


def _class_iou(matrix: np.ndarray, label: int) -> float:
    tp = int(matrix[label, label])
    fn = int(matrix[label, :].sum()) - tp
    return _ratio(tp, _false_positives(matrix, [label], _others(label)), fn)


def _category_iou(matrix: np.ndarray, category: Category) -> float:
    ids = list(category.iou_label_ids)
    tp = int(matrix[np.ix_(ids, ids)].sum())
    fn = int(matrix[ids, :].sum()) - tp
    return _ratio(tp, _false_positives(matrix, ids, _outside_category(category)), fn)


def _false_positives(matrix: np.ndarray, predicted: list[int], true_rows: list[int]) -> int:
    """Pixels predicted as ``predicted`` whose ground truth is a scored label in ``true_rows``."""
    return int(matrix[np.ix_(true_rows, predicted)].sum())


def _others(label: int) -> list[int]:
    return [other for other in EVAL_CLASS_IDS if other != label]


def _outside_category(category: Category) -> list[int]:
    return [label for label in EVAL_CLASS_IDS if label not in category.iou_label_ids]


def _ratio(tp: float, fp: float, fn: float) -> float:
    denominator = tp + fp + fn
    return float("nan") if denominator == 0 else float(float(tp) / denominator)


def nan_mean(values) -> float:
    """The official getScoreAverage: the mean of the defined scores, NaN if there is none."""
    defined = [value for value in values if not math.isnan(value)]
    return float(sum(defined) / len(defined)) if defined else float("nan")
