"""Post-processing of model outputs: bilinear upsampling before the argmax, instances, the contract."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cityscapes_competition.errors import SubmissionError
from cityscapes_competition.inference import (
    TRAIN_ID_TO_LABEL_ID,
    OutputContract,
)
from cityscapes_competition.submission_metadata import InferenceSettings
from cityscapes_competition.upsampling import bilinear_crop, upsampled_argmax

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def assert_same_as_tensorflow(scores: np.ndarray, size: tuple[int, int]) -> None:
    """Equal to TensorFlow's resize then argmax, except where TensorFlow's two best scores tie in float32."""
    import tensorflow as tf

    upsampled = tf.image.resize(scores[None], size, method="bilinear")[0].numpy()
    expected, ours = upsampled.argmax(axis=-1), upsampled_argmax(scores, size)
    assert ours.shape == expected.shape and ours.dtype == np.uint8
    rows, cols = np.nonzero(ours != expected)
    theirs, mine = upsampled[rows, cols, expected[rows, cols]], upsampled[rows, cols, ours[rows, cols]]
    np.testing.assert_allclose(mine, theirs, rtol=2e-6, atol=0)  # float rounding of an exact tie only
    assert len(rows) <= 2


@pytest.mark.parametrize(
    "low, size, channels, smooth",
    [
        ((16, 32), (128, 256), 19, True),
        ((13, 29), (100, 230), 19, True),
        ((9, 11), (64, 64), 34, False),
        ((64, 128), (1024, 2048), 19, True),
        ((64, 128), (1024, 2048), 19, False),
        ((40, 40), (30, 50), 19, False),  # downsampling along one axis
        ((5, 7), (5, 70), 19, True),  # one axis unchanged
    ],
)
def test_upsampled_argmax_equals_resize_then_argmax(low, size, channels, smooth) -> None:
    rng = np.random.default_rng(1)
    if smooth:  # model-like: regions of one class with soft borders (the sparse path)
        classes = rng.integers(0, channels, (low[0] // 4 + 1, low[1] // 4 + 1)).repeat(4, 0).repeat(4, 1)
        scores = np.eye(channels, dtype=np.float32)[classes[: low[0], : low[1]]] + rng.random((*low, channels)) * 0.4
    else:  # noise: nearly every pixel is a border (the dense path)
        scores = rng.random((*low, channels))
    scores = scores.astype(np.float32)
    assert_same_as_tensorflow(scores, size)


def test_a_third_class_can_win_between_two_neighbours() -> None:
    # Neither neighbour's winner: class 1 leads in the middle of the gap (decided pixel by pixel).
    scores = np.array([[[1.0, 0.9, 0.0], [0.0, 0.9, 1.0]]], np.float32)
    winners = upsampled_argmax(scores, (1, 16))
    assert set(winners[0].tolist()) == {0, 1, 2} and 1 in winners[0, 6:10]
    assert_same_as_tensorflow(scores, (1, 16))


def test_bilinear_crop_equals_the_crop_of_the_full_resize() -> None:
    import tensorflow as tf

    values = np.random.default_rng(2).random((20, 40)).astype(np.float32)
    full = tf.image.resize(values[None, ..., None], (160, 320), method="bilinear").numpy()[0, ..., 0]
    box = (slice(37, 101), slice(5, 300))
    np.testing.assert_allclose(bilinear_crop(values, (160, 320), box), full[box], atol=1e-6)


def test_train_ids_map_to_label_ids() -> None:
    assert TRAIN_ID_TO_LABEL_ID[0] == 7 and TRAIN_ID_TO_LABEL_ID[13] == 26 and TRAIN_ID_TO_LABEL_ID[18] == 33
    assert len(TRAIN_ID_TO_LABEL_ID) == 19


def test_scores_kind_is_detected() -> None:
    contract = OutputContract(InferenceSettings())
    logits = np.random.default_rng(3).normal(size=(1, 4, 4, 19)).astype(np.float32) * 5
    contract.check(logits, "model.h5")
    assert contract.kind == "logits"
    probabilities = contract.probabilities(logits[0])
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    softmax = OutputContract(InferenceSettings())
    softmax.check(probabilities[None], "model.h5")
    assert softmax.kind == "probabilities"


@pytest.mark.parametrize(
    "shape, value, fragment",
    [
        ((1, 4, 4, 20), 0.1, "outputs 20 channels"),
        ((1, 16, 19), 0.1, "shape"),
        ((1, 4, 4, 19), np.inf, "NaN or infinite"),
    ],
)
def test_bad_outputs_are_refused(shape, value, fragment) -> None:
    with pytest.raises(SubmissionError, match=fragment):
        OutputContract(InferenceSettings()).check(np.full(shape, value, np.float32), "model.h5")


def test_class_boxes_split_at_empty_columns_and_cover_every_pixel() -> None:
    from cityscapes_competition.inference import instance_class_boxes

    labels = np.full((40, 100), 7, np.uint8)
    labels[30:35, 2:10] = 26  # a car on the left
    labels[5:9, 80:95] = 26  # and one on the right, higher up
    labels[20, 40] = labels[21, 41] = 24  # a person touching only diagonally: one run of columns
    boxes = instance_class_boxes(labels)
    assert sorted((label, box[0].start, box[0].stop, box[1].start, box[1].stop) for label, box in boxes) == [
        (24, 20, 22, 40, 42),
        (26, 5, 9, 80, 95),
        (26, 30, 35, 2, 10),
    ]
    covered = np.zeros(labels.shape, bool)
    for label, box in boxes:
        covered[box] |= labels[box] == label
    assert np.array_equal(covered, np.isin(labels, [24, 26]))
