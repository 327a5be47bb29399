"""The metrics on images small enough to score by hand: each expected value is written out as arithmetic
(as TrackEval's tests are), from the rules at the top of metrics/pixel.py and metrics/instance.py. The
equivalence with the official scripts on real-sized data is proven in test_official_equivalence.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import runs_of_pixels

from cityscapes_competition.core.labels import AVERAGE_INSTANCE_SIZE
from cityscapes_competition.scoring.metrics import instance as instance_metric
from cityscapes_competition.scoring.metrics import pixel as pixel_metric

VOID, ROAD, CAR = 0, 7, 26
# 3x4 pixels. Road: 8 pixels, 6 right, one predicted car, one predicted void. Car (one instance, 26001):
# 2 pixels, one right, one predicted road. Two void pixels predicted road: they never count.
GROUND_TRUTH = np.array([[ROAD] * 4, [ROAD, ROAD, CAR, CAR], [VOID, VOID, ROAD, ROAD]], np.uint8)
PREDICTION = np.array([[ROAD, ROAD, ROAD, CAR], [ROAD, ROAD, CAR, ROAD], [ROAD, ROAD, VOID, ROAD]], np.uint8)
INSTANCE_IDS = np.where(GROUND_TRUTH == CAR, CAR * 1000 + 1, GROUND_TRUTH.astype(np.int32))


def pixel_scores(frames: int = 1):
    record = pixel_metric.evaluate_frame(
        GROUND_TRUTH, PREDICTION, np.arange(INSTANCE_IDS.size), INSTANCE_IDS.ravel().astype(np.int64)
    )
    return pixel_metric.summarize(pixel_metric.combine([record] * frames))


def test_class_iou_counts_misses_into_void_but_not_void_predicted_as_a_class() -> None:
    scores = pixel_scores()
    road_tp, road_fp, road_fn = 6, 1, 2  # fp: the car pixel predicted road; fn: one predicted car, one void
    car_tp, car_fp, car_fn = 1, 1, 1
    assert scores.class_iou["road"] == pytest.approx(road_tp / (road_tp + road_fp + road_fn), abs=1e-12)
    assert scores.class_iou["car"] == pytest.approx(car_tp / (car_tp + car_fp + car_fn), abs=1e-12)
    assert math.isnan(scores.class_iou["sidewalk"])  # no pixel of it anywhere: undefined, left out of the mean
    assert scores.iou_class == pytest.approx((6 / 9 + 1 / 3) / 2, abs=1e-12)


def test_category_iou_counts_any_label_of_the_category() -> None:
    scores = pixel_scores()
    assert scores.category_iou["flat"] == pytest.approx(6 / (6 + 1 + 2), abs=1e-12)
    assert scores.category_iou["vehicle"] == pytest.approx(1 / (1 + 1 + 1), abs=1e-12)
    assert scores.iou_category == pytest.approx((6 / 9 + 1 / 3) / 2, abs=1e-12)


def test_iiou_weighs_true_positives_and_misses_by_average_size_over_instance_size() -> None:
    weight = AVERAGE_INSTANCE_SIZE["car"] / 2  # the instance has 2 pixels
    tp_weighted, fn_weighted, fp = 1 * weight, 1 * weight, 1  # false positives are not weighted
    expected = tp_weighted / (tp_weighted + fp + fn_weighted)
    scores = pixel_scores()
    assert scores.class_iiou["car"] == pytest.approx(expected, abs=1e-12)
    assert scores.category_iiou["vehicle"] == pytest.approx(expected, abs=1e-12)
    assert math.isnan(scores.class_iiou["person"])
    assert scores.iiou_class == pytest.approx(expected, abs=1e-12)  # the only defined one


def test_frames_add_up_into_the_same_ratios() -> None:
    one, three = pixel_scores(1), pixel_scores(3)
    assert three.class_iou["road"] == pytest.approx(18 / (18 + 3 + 6), abs=1e-12) == one.class_iou["road"]
    np.testing.assert_array_equal(three.confusion_matrix, one.confusion_matrix * 3)


# ---- instances: one car of 200 pixels in a 20x20 image ----

CAR_ROWS = slice(0, 10)  # rows 0..9, all 20 columns: 200 pixels


def instance_scores(*predictions: tuple[int, float]) -> instance_metric.InstanceScores:
    """Predictions given as (pixels inside the car, taken from its first rows; confidence)."""
    gt = np.zeros((20, 20), np.int32)
    gt[CAR_ROWS] = CAR * 1000
    found = [
        instance_metric.Prediction(runs_of_pixels(np.arange(inside)), CAR, confidence)
        for inside, confidence in predictions
    ]
    record = instance_metric.evaluate_frame(gt, found)
    return instance_metric.summarize(instance_metric.combine([record], with_distances=False))


def test_one_prediction_is_a_hit_at_each_overlap_below_its_iou() -> None:
    scores = instance_scores((150, 0.9))  # IoU 150 / 200 = 0.75: matched at 0.50 ... 0.70, not at 0.75 ... 0.95
    hits_at = 5  # of the ten overlaps
    assert scores.class_scores["car"]["ap"] == pytest.approx(hits_at * 1.0 / 10, abs=1e-12)
    assert scores.ap50 == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(scores.class_scores["person"]["ap"])  # no person in the ground truth
    assert scores.ap == pytest.approx(0.5, abs=1e-12)  # the classes without ground truth are left out


def test_a_more_confident_duplicate_costs_precision_where_only_it_fails_to_match() -> None:
    # The car (200 px) predicted twice: 150 px at 0.9 (IoU 0.75) and 120 px at 0.95 (IoU 0.6).
    # At 0.50, 0.55 both match: the 0.95 one is the hit, the 0.9 one a false positive ranked below it:
    #   by confidence: 0.95 hit -> precision 1, recall 1; the curve's AP is 1.
    # At 0.60, 0.65, 0.70 only the 0.9 one matches: the 0.95 one is a false positive ranked above the hit:
    #   at confidence >= 0.95: precision 0, recall 0; at >= 0.9: precision 1/2, recall 1;
    #   closed at recall 0 with precision 1: AP = 1/2 * (1 - 0) ... integrated in half steps:
    #   recalls (1, 0, 0) padded as (1, 1, 0, 0, 0): widths (1/2, 1/2, 0), so AP = 1/2 * 1/2 + 0 * 1/2 + 1 * 0.
    # At 0.75 and above nothing matches: AP 0.
    expected = (2 * 1.0 + 3 * (0.5 * 0.5) + 5 * 0.0) / 10
    scores = instance_scores((150, 0.9), (120, 0.95))
    assert scores.class_scores["car"]["ap"] == pytest.approx(expected, abs=1e-12)
    assert scores.class_scores["car"]["ap50"] == pytest.approx(1.0, abs=1e-12)


def test_a_less_confident_duplicate_costs_nothing() -> None:
    # Ranked below the hit, a false positive adds a point of precision 1/2 at recall 1, which the half-step
    # integration weighs 0: AP stays as with the hit alone.
    assert instance_scores((150, 0.9), (120, 0.4)).class_scores["car"]["ap"] == pytest.approx(0.5, abs=1e-12)


def test_a_prediction_mostly_on_a_group_region_is_ignored() -> None:
    gt = np.zeros((20, 20), np.int32)
    gt[CAR_ROWS] = CAR * 1000
    gt[15:20] = CAR  # a group of cars: 100 pixels, a bare label id
    on_group = np.flatnonzero(gt.ravel() == CAR)  # all on the group: ignored share 1 > every overlap
    record = instance_metric.evaluate_frame(
        gt,
        [
            instance_metric.Prediction(runs_of_pixels(np.arange(150)), CAR, 0.9),
            instance_metric.Prediction(runs_of_pixels(on_group), CAR, 0.99),
        ],
    )
    scores = instance_metric.summarize(instance_metric.combine([record], with_distances=False))
    assert scores.class_scores["car"]["ap"] == pytest.approx(0.5, abs=1e-12)  # as with the hit alone
