"""The per-frame counting kernels on arrays small enough to count by hand: the confusion matrix, the pixel
task's instance hits, the instance task's overlaps, the regions' distances and the ground truth's
instance-class pixels. Each expected value is written out; the rules are at the top of metrics/pixel.py,
metrics/instance.py and distances.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import memory_growth_within, runs_of_pixels

from cityscapes_competition.core.arrays import PixelRuns
from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.scoring import groundtruth
from cityscapes_competition.scoring.distances import region_distances
from cityscapes_competition.scoring.groundtruth import Camera, InstanceClassPixels
from cityscapes_competition.scoring.metrics import instance as instance_metric
from cityscapes_competition.scoring.metrics import pixel as pixel_metric

VOID, EGO_VEHICLE, ROAD, PERSON, RIDER, CAR, CARAVAN, TRAILER = 0, 1, 7, 24, 25, 26, 29, 30
PERSON_INDEX, CAR_INDEX = 0, 2  # in INSTANCE_CLASS_IDS (person, rider, car, truck, bus, train, motorcycle, bicycle)


def as_int64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


# ---- confusion matrix ----

TRUTH = np.array([ROAD, ROAD, ROAD, CAR, CAR, VOID, VOID, PERSON, ROAD, CAR, PERSON, ROAD], np.uint8)
PREDICTED = np.array([ROAD, ROAD, CAR, CAR, ROAD, ROAD, VOID, RIDER, ROAD, CAR, PERSON, VOID], np.uint8)
# By hand, (truth, predicted): pixels. Every other cell is 0.
EXPECTED_CELLS = {
    (ROAD, ROAD): 3,  # pixels 0, 1, 8
    (ROAD, CAR): 1,  # 2
    (ROAD, VOID): 1,  # 11
    (CAR, CAR): 2,  # 3, 9
    (CAR, ROAD): 1,  # 4
    (VOID, ROAD): 1,  # 5
    (VOID, VOID): 1,  # 6
    (PERSON, RIDER): 1,  # 7
    (PERSON, PERSON): 1,  # 10
}


def expected_confusion() -> np.ndarray:
    matrix = np.zeros((34, 34), np.int64)
    for (truth, predicted), pixels in EXPECTED_CELLS.items():
        matrix[truth, predicted] = pixels
    return matrix


def test_confusion_matrix_counts_each_truth_prediction_pair() -> None:
    matrix = pixel_metric.confusion_matrix(TRUTH, PREDICTED, None)
    assert matrix.dtype == np.int64 and matrix.shape == (34, 34)
    np.testing.assert_array_equal(matrix, expected_confusion())


def test_label_counts_come_from_the_runs_of_equal_labels() -> None:
    # TRUTH's runs: ROAD x3, CAR x2, VOID x2, PERSON, ROAD, CAR, PERSON, ROAD: road 3+1+1, car 2+1, void 2, person 2
    counts = pixel_metric.label_counts(TRUTH)
    assert counts.dtype == np.int64 and counts.shape == (34,)
    assert counts[[ROAD, CAR, VOID, PERSON]].tolist() == [5, 3, 2, 2] and counts.sum() == len(TRUTH)
    rng = np.random.default_rng(0)
    for labels in (rng.integers(0, 34, 5000).astype(np.uint8), np.repeat(rng.integers(0, 34, 50), 97).astype(np.uint8)):
        np.testing.assert_array_equal(pixel_metric.label_counts(labels), np.bincount(labels, minlength=34))
    assert not pixel_metric.label_counts(np.zeros(0, np.uint8)).any()


def test_confusion_matrix_from_known_truth_counts_counts_only_the_wrong_pixels() -> None:
    truth_counts = np.zeros(34, np.int64)
    truth_counts[[ROAD, CAR, VOID, PERSON]] = 5, 3, 2, 2
    matrix = pixel_metric.confusion_matrix(TRUTH, PREDICTED, truth_counts)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, expected_confusion())


def test_confusion_matrix_of_an_empty_image_is_all_zero() -> None:
    empty = np.zeros(0, np.uint8)
    np.testing.assert_array_equal(pixel_metric.confusion_matrix(empty, empty, None), np.zeros((34, 34), np.int64))


# ---- pixel task: instance hits ----

# One value per pixel. Instances of the pixel task: above 1000 (strictly) and of a scored class:
# 24000 (person, k = 0: above 1000), 24001 (person), 26001 (car). Not: 1000 (not above 1000), 1001 (ego
# vehicle, no instances scored), 24 (a group of persons), 29001 (caravan: instances, but no score).
HIT_VALUES = as_int64(24001, 24001, 24001, 24000, 24000, 1000, 1001, PERSON, 29001, 29001, 26001, 26001)
HIT_PREDICTED = np.array([PERSON, RIDER, ROAD, PERSON, PERSON, 1, 1, PERSON, CAR, CARAVAN, CARAVAN, CAR], np.uint8)
# In ascending instanceIds order: 24000, 24001, 26001.
EXPECTED_CLASS = as_int64(PERSON_INDEX, PERSON_INDEX, CAR_INDEX)
EXPECTED_SIZE = as_int64(2, 3, 2)
EXPECTED_HITS = as_int64(2, 1, 1)  # 24001: one person of person, rider, road; 26001: caravan, car
EXPECTED_CATEGORY_HITS = as_int64(2, 2, 2)  # rider is human; caravan is a vehicle label (an iIoU category hit)


def assert_hits(hits: tuple[np.ndarray, ...], *expected: np.ndarray) -> None:
    assert len(hits) == len(expected) == 4
    for got, want in zip(hits, expected, strict=True):
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def test_instance_hits_count_class_and_category_hits_per_instance() -> None:
    prediction = HIT_PREDICTED.reshape(3, 4)
    hits = pixel_metric._instance_hits(np.arange(12), HIT_VALUES, prediction)
    assert_hits(hits, EXPECTED_CLASS, EXPECTED_SIZE, EXPECTED_HITS, EXPECTED_CATEGORY_HITS)


def test_instance_hits_with_the_value_counts_given_are_the_same() -> None:
    counts = np.bincount(HIT_VALUES)
    hits = pixel_metric._instance_hits(np.arange(12), HIT_VALUES, HIT_PREDICTED, counts)
    assert_hits(hits, EXPECTED_CLASS, EXPECTED_SIZE, EXPECTED_HITS, EXPECTED_CATEGORY_HITS)


def test_instance_hits_read_the_prediction_at_the_given_pixels_only() -> None:
    # The same pixels spread over a bigger image (every other pixel), the rest predicted car.
    prediction = np.full(24, CAR, np.uint8)
    prediction[::2] = HIT_PREDICTED
    hits = pixel_metric._instance_hits(np.arange(0, 24, 2), HIT_VALUES, prediction)
    assert_hits(hits, EXPECTED_CLASS, EXPECTED_SIZE, EXPECTED_HITS, EXPECTED_CATEGORY_HITS)


def test_instance_hits_of_a_frame_without_instances_are_empty() -> None:
    empty = np.zeros(0, np.int64)
    assert_hits(pixel_metric._instance_hits(empty, empty, HIT_PREDICTED), empty, empty, empty, empty)
    # Only values that are no instance of the pixel task: a group, exactly 1000, a caravan.
    values = as_int64(PERSON, 1000, 29001)
    assert_hits(pixel_metric._instance_hits(np.arange(3), values, HIT_PREDICTED[:3]), empty, empty, empty, empty)


def test_pixel_evaluate_frame_passes_the_value_counts_on() -> None:
    truth = np.array([PERSON] * 5 + [EGO_VEHICLE, EGO_VEHICLE, PERSON, CARAVAN, CARAVAN, CAR, CAR], np.uint8)
    record = pixel_metric.evaluate_frame(truth, HIT_PREDICTED, np.arange(12), HIT_VALUES, None, np.bincount(HIT_VALUES))
    np.testing.assert_array_equal(record.instance_hits, EXPECTED_HITS)
    np.testing.assert_array_equal(record.category_hits, EXPECTED_CATEGORY_HITS)
    assert record.confusion[PERSON, PERSON] == 4 and record.confusion[PERSON, RIDER] == 1  # pixels 0, 3, 4, 7; 1


# ---- instance task: overlaps of predictions with regions ----

# 4x5 instanceIds. Regions of instance classes, in ascending order: 0: 24 (a group of persons, 2 px),
# 1: 26 (a group of cars, 2 px), 2: 24000 (a person, k = 0, 2 px), 3: 26001 (a car, 4 px), 4: 26002 (2 px).
# Void: the ignored labels' bare ids: 0 (2 px), 29 (caravan group, 1 px), 30 (trailer group, 1 px). Neither
# region nor void: 1000 (ego vehicle "instance"), 29001 and 30001 (caravan, trailer instances), 7 (road).
INSTANCE_IDS = np.array(
    [
        [26001, 26001, 26001, CAR, CAR],  # pixels 0..4
        [26002, 26002, VOID, VOID, 1000],  # 5..9
        [24000, 24000, CARAVAN, 29001, ROAD],  # 10..14
        [PERSON, PERSON, TRAILER, 30001, 26001],  # 15..19
    ],
    np.uint16,
)
REGION_IDS = as_int64(PERSON, CAR, 24000, 26001, 26002)
REGION_SIZES = as_int64(2, 2, 2, 4, 2)


def prediction(pixels: list[int], label: int, confidence: float) -> instance_metric.Prediction:
    return instance_metric.Prediction(runs_of_pixels(np.unique(np.array(pixels, np.int64))), label, confidence)


FRAME_PREDICTIONS = [
    # A car over three pixels of 26001, one of the car group, one of 26002, void 0, 1000, 29001, void 30.
    prediction([0, 1, 2, 3, 5, 7, 9, 13, 17], CAR, 0.9),
    # A person over 26001 (another class: no pair), two pixels of 24000 and one of the person group.
    prediction([0, 10, 11, 15], PERSON, 0.5),
    prediction([], CAR, 0.3),  # no pixel: dropped
    prediction([14], ROAD, 0.8),  # not an instance class: dropped
    prediction([7, 8, 12, 17], CAR, 0.2),  # on void only: 0, 0, 29, 30
    prediction([13], CARAVAN, 0.7),  # caravan has instances but is outside the task: dropped
]


def assert_record(record: instance_metric.InstanceFrameRecord, **expected: np.ndarray) -> None:
    for name, want in expected.items():
        got = getattr(record, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_overlaps_with_regions_of_the_class_and_void_pixels() -> None:
    for regions in (None, (REGION_IDS, REGION_SIZES)):  # found in the image, or given
        record = instance_metric.evaluate_frame(INSTANCE_IDS, FRAME_PREDICTIONS, regions=regions)
        assert_record(
            record,
            region_id=REGION_IDS,
            region_class=as_int64(PERSON_INDEX, CAR_INDEX, PERSON_INDEX, CAR_INDEX, CAR_INDEX),
            region_size=REGION_SIZES,
            pred_class=as_int64(CAR_INDEX, PERSON_INDEX, CAR_INDEX),
            pred_confidence=np.array([0.9, 0.5, 0.2]),
            pred_size=as_int64(9, 4, 4),
            pred_void=as_int64(2, 0, 4),  # 1000, 29001 and 30001 are not void
            pair_pred=as_int64(0, 0, 0, 1, 1),
            pair_region=as_int64(1, 3, 4, 0, 2),
            pair_intersection=as_int64(1, 3, 1, 1, 2),
        )


def test_overlaps_are_the_same_from_signed_and_8_bit_images() -> None:
    wide = instance_metric.evaluate_frame(INSTANCE_IDS.astype(np.int32), FRAME_PREDICTIONS)
    assert_record(wide, pair_region=as_int64(1, 3, 4, 0, 2), pred_void=as_int64(2, 0, 4))
    # Groups only (every value below 256): a person group and void.
    small = np.array([PERSON, PERSON, VOID, ROAD], np.uint8)
    record = instance_metric.evaluate_frame(small, [prediction([1, 2, 3], PERSON, 0.5)])
    assert_record(record, region_id=as_int64(PERSON), pair_region=as_int64(0), pair_intersection=as_int64(1))
    assert_record(record, pred_void=as_int64(1), pred_size=as_int64(3))


def test_an_image_with_more_regions_than_a_byte_can_number() -> None:
    instance_ids = (26000 + np.arange(300)).astype(np.uint16)  # 300 cars of one pixel each
    everything = prediction(list(range(300)), CAR, 0.9)
    last_two = prediction([298, 299], CAR, 0.8)
    record = instance_metric.evaluate_frame(instance_ids, [everything, last_two])
    assert_record(
        record,
        pair_pred=np.repeat(as_int64(0, 1), (300, 2)),
        pair_region=np.concatenate([np.arange(300), as_int64(298, 299)]),
        pair_intersection=np.ones(302, np.int64),
        pred_void=as_int64(0, 0),
    )


def _blocky_instance_ids(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Rectangles of car and person instances, groups and void on road: runs of every length."""
    image = np.full((height, width), ROAD, np.uint16)
    values = [CAR, PERSON, VOID, 26001, 26002, 26003, 24001, 24002]
    for _ in range(12):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top : top + rng.integers(1, height + 1), left : left + rng.integers(1, width + 1)] = rng.choice(values)
    return image


def _overlaps_by_pixels(instance_ids: np.ndarray, masks: list[np.ndarray]) -> dict[tuple[int, int], int]:
    """(mask, instanceIds value) -> pixels, counted pixel by pixel."""
    counted: dict[tuple[int, int], int] = {}
    for index, mask in enumerate(masks):
        values, counts = np.unique(instance_ids[mask], return_counts=True)
        counted.update({(index, int(v)): int(c) for v, c in zip(values, counts, strict=True)})
    return counted


@pytest.mark.parametrize("limits", [None, (1, 1, 1), (3, 7, 1), (10**6, 10**6, 20)])
@pytest.mark.parametrize("seed", range(4))
def test_overlaps_counted_by_runs_are_the_pixels_in_both_orders(seed: int, limits, monkeypatch) -> None:
    """A mask's overlaps come from its runs against the ground truth's runs: equal to counting pixel by pixel,
    for masks given row-major (PNG) and column-major (RLE), in batches and chunks of any size."""
    if limits is not None:
        monkeypatch.setattr(instance_metric, "_RUNS_PER_BATCH", limits[0])
        monkeypatch.setattr(instance_metric, "_OVERLAPS_PER_CHUNK", limits[1])
        monkeypatch.setattr(instance_metric, "_COUNTS_PER_BATCH", limits[2])
    rng = np.random.default_rng(seed)
    height, width = [(13, 17), (1, 40), (40, 1), (32, 64)][seed]
    instance_ids = _blocky_instance_ids(rng, height, width)
    masks = [rng.random((height, width)) < share for share in (0.05, 0.5, 0.95, 1.0)]
    masks.append(_blocky_instance_ids(rng, height, width) == 26001)
    confidences = np.linspace(0.9, 0.5, len(masks))
    row_major = [
        instance_metric.Prediction(PixelRuns.of_flags(mask.reshape(-1)), CAR, c)
        for mask, c in zip(masks, confidences, strict=True)
    ]
    column_major = []
    for mask, c in zip(masks, confidences, strict=True):
        runs = PixelRuns.of_flags(mask.T.reshape(-1))
        column_major.append(instance_metric.Prediction(PixelRuns(runs.starts, runs.stops, True), CAR, c))
    expected = _overlaps_by_pixels(instance_ids, [m for m in masks if m.any()])
    for predictions in (row_major, column_major, row_major[:2] + column_major[2:]):  # and both in one frame
        record = instance_metric.evaluate_frame(instance_ids, predictions)
        kept = [m for m in masks if m.any()]
        np.testing.assert_array_equal(record.pred_size, [m.sum() for m in kept])
        np.testing.assert_array_equal(record.pred_void, [expected.get((i, VOID), 0) for i in range(len(kept))])
        got = {
            (int(p), int(record.region_id[r])): int(n)
            for p, r, n in zip(record.pair_pred, record.pair_region, record.pair_intersection, strict=True)
        }
        assert got == {key: n for key, n in expected.items() if CAR in (key[1], key[1] // 1000)}  # instances, groups


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (13, 17), (64, 32)])
def test_column_major_run_starts_are_those_of_the_transposed_image(shape) -> None:
    image = _blocky_instance_ids(np.random.default_rng(sum(shape)), *shape)
    expected = instance_metric._run_starts(np.ascontiguousarray(image.T).reshape(-1))
    np.testing.assert_array_equal(instance_metric._column_major_run_starts(image), expected)


def _count_hostile_frame() -> None:
    """A ground truth of one-pixel runs (2M, cars alternating with void) against 24 checkerboard masks (1M runs
    each) and one mask of the whole image (one run meeting every ground-truth run)."""
    height, width = 1024, 2048
    instance_ids = np.where((np.arange(height * width) % 2) == 0, 26001, VOID).astype(np.uint16).reshape(height, -1)
    checkerboard = PixelRuns(np.arange(0, height * width, 2), np.arange(1, height * width + 1, 2))
    whole = PixelRuns(np.array([0]), np.array([height * width]))
    predictions = [instance_metric.Prediction(checkerboard, CAR, 0.5) for _ in range(24)]
    record = instance_metric.evaluate_frame(instance_ids, [*predictions, instance_metric.Prediction(whole, CAR, 0.9)])
    assert record.pair_intersection.tolist() == [height * width // 2] * 25
    assert record.pred_void.tolist() == [0] * 24 + [height * width // 2]


def test_counting_a_hostile_frame_stays_in_bounded_memory() -> None:
    """Runs are counted in batches and chunks: 26 million overlaps in a few tens of MB (all at once: ~1.5 GB)."""
    assert memory_growth_within(_count_hostile_frame) < 300 * 1024 * 1024


def test_an_empty_frame_gives_an_empty_record() -> None:
    empty = np.zeros(0, np.int64)
    for predictions in ([], [prediction([0, 1], CAR, 0.9)]):  # no region; a prediction on void only
        record = instance_metric.evaluate_frame(np.zeros((2, 2), np.uint16), predictions)
        assert_record(record, region_id=empty, region_class=empty, region_size=empty)
        assert_record(record, pair_pred=empty, pair_region=empty, pair_intersection=empty)
        assert record.region_distance.shape == record.region_density.shape == (0,)
    assert_record(record, pred_size=as_int64(2), pred_void=as_int64(2))
    no_prediction = instance_metric.evaluate_frame(INSTANCE_IDS, [])
    assert_record(no_prediction, pred_class=empty, pred_confidence=np.zeros(0), pred_void=empty, pair_pred=empty)


# ---- distances ----

# baseline * fx = 1, so a raw disparity p is depth 256 / (p - 1) metres: 257 -> 1 m, 129 -> 2 m, 65 -> 4 m,
# 513 -> 0.5 m; p = 1 is disparity 0 (infinitely far); p = 0 has no disparity.
CAMERA = Camera(baseline=0.5, fx=2.0)
# Pixel by pixel: instanceIds value and raw disparity, the regions interleaved.
DISTANCE_PIXELS = [
    (24000, 257),
    (26001, 0),  # no disparity: lowers 26001's density
    (26001, 513),
    (CAR, 0),
    (24000, 65),
    (29001, 257),  # caravan: not a region
    (26001, 65),
    (26002, 1),
    (24000, 129),
    (26001, 129),
    (CAR, 0),
    (26002, 257),
    (26001, 257),
]


def distance_inputs() -> tuple[InstanceClassPixels, np.ndarray]:
    values = as_int64(*(value for value, _ in DISTANCE_PIXELS))
    disparity = np.array([raw for _, raw in DISTANCE_PIXELS], np.uint16)
    index = np.arange(len(values)) * 2  # every other pixel of a bigger image; the rest has no region
    image = np.zeros(2 * len(values), np.uint16)
    image[index] = disparity
    return InstanceClassPixels(index, values, np.bincount(values)), image.reshape(2, -1)


def test_region_distances_are_median_depths_and_stereo_densities() -> None:
    pixels, disparity = distance_inputs()
    distances = region_distances(pixels, as_int64(CAR, 24000, 26001, 26002), disparity, CAMERA)
    # 26: no valid pixel: +inf, density 0. 24000: depths 1, 4, 2: median 2. 26001: depths 0.5, 4, 2, 1 (and
    # one pixel without disparity): median (1 + 2) / 2, density 4 / 5. 26002: depths inf, 1: median inf.
    np.testing.assert_array_equal(distances.median_depth, [math.inf, 2.0, 1.5, math.inf])
    np.testing.assert_array_equal(distances.density, [0.0, 1.0, 0.8, 1.0])


def test_region_distances_of_a_subset_of_the_regions() -> None:
    pixels, disparity = distance_inputs()
    distances = region_distances(pixels, as_int64(26001), disparity, CAMERA)
    np.testing.assert_array_equal(distances.median_depth, [1.5])
    np.testing.assert_array_equal(distances.density, [0.8])


def test_region_distances_without_regions_are_empty() -> None:
    pixels, disparity = distance_inputs()
    distances = region_distances(pixels, np.zeros(0, np.int64), disparity, CAMERA)
    assert distances.median_depth.shape == distances.density.shape == (0,)


def test_region_distances_of_more_regions_than_a_byte_can_number() -> None:
    values = 26000 + np.arange(600) // 2  # 300 cars of two pixels: 257 and 129, depths 1 and 2 m
    disparity = np.tile(np.array([257, 129], np.uint16), 300)
    pixels = InstanceClassPixels(np.arange(600), values, np.bincount(values))
    distances = region_distances(pixels, 26000 + np.arange(300), disparity, CAMERA)
    np.testing.assert_array_equal(distances.median_depth, np.full(300, 1.5))
    np.testing.assert_array_equal(distances.density, np.ones(300))


# ---- ground truth: the instance-class pixels ----


def test_instance_class_pixels_are_the_values_from_the_first_instance_class_on() -> None:
    image = np.array([[ROAD, PERSON, 1000], [26001, VOID, 33999]], np.uint16)
    pixels = groundtruth._instance_class_pixels(image, Path("x_instanceIds.png"))
    np.testing.assert_array_equal(pixels.index, [1, 2, 3, 5])
    np.testing.assert_array_equal(pixels.value, [PERSON, 1000, 26001, 33999])
    assert pixels.value.dtype == np.int64
    assert len(pixels.counts) == 34000 and pixels.counts[[PERSON, 1000, 26001, 33999]].tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("bad_value", "dtype"), [(34, np.uint16), (999, np.uint16), (34000, np.uint16), (70000, np.int32), (-1, np.int32)]
)
def test_instance_class_pixels_refuse_values_that_name_no_label(bad_value: int, dtype: type) -> None:
    image = np.array([[ROAD, bad_value], [26001, VOID]], dtype)
    with pytest.raises(ReferenceDataError, match=f"holds value {bad_value},"):
        groundtruth._instance_class_pixels(image, Path("x_instanceIds.png"))


def _official_loop_average_precision(scores: np.ndarray, is_true: np.ndarray, hard_false_negatives: int) -> float:
    """cityscapesScripts' evaluateMatches curve, its loop over the distinct scores as written there."""
    order = np.argsort(scores)
    sorted_scores, true_cumsum = scores[order], np.cumsum(is_true[order])
    _, first_of_score = np.unique(sorted_scores, return_index=True)
    n_examples, n_true = len(sorted_scores), true_cumsum[-1]
    precision, recall = np.zeros(len(first_of_score) + 1), np.zeros(len(first_of_score) + 1)
    true_cumsum = np.append(true_cumsum, 0)
    for i, start in enumerate(first_of_score):
        below = true_cumsum[start - 1]
        tp = n_true - below
        fp = n_examples - start - tp
        fn = below + hard_false_negatives
        precision[i] = float(tp) / (tp + fp)
        recall[i] = float(tp) / (tp + fn)
    precision[-1], recall[-1] = 1.0, 0.0
    padded = np.append(np.append(recall[0], recall), 0.0)
    return float(np.dot(precision, np.convolve(padded, [-0.5, 0, 0.5], "valid")))


@pytest.mark.parametrize("seed", range(40))
def test_average_precision_is_the_official_loop_bit_for_bit(seed: int) -> None:
    """The curve is computed for all distinct scores at once: the same float operations as the loop, so
    the same bits, ties, no true example and no hard false negative included."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    scores = rng.integers(0, [3, 20, 1000][seed % 3], n) / 7.0
    is_true = (rng.random(n) < [0.0, 0.3, 1.0, 0.6][seed % 4]).astype(float)
    hard = int(rng.integers(0, 3)) * (seed % 5 != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = _official_loop_average_precision(scores, is_true, hard)
    got = instance_metric.official_average_precision(scores, is_true, hard)
    assert got == expected or (np.isnan(got) and np.isnan(expected))
