"""Post-processing of model outputs: bilinear upsampling before the argmax, instances, the contract."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cityscapes_competition.errors import SubmissionError
from cityscapes_competition.inference import (
    TRAIN_ID_TO_LABEL_ID,
    OutputContract,
    bilinear_crop,
    upsampled_argmax,
)
from cityscapes_competition.submission_metadata import InferenceSettings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tensorflow_reference(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    return tf.argmax(tf.image.resize(scores[None], size, method="bilinear")[0], axis=-1).numpy()


@pytest.mark.parametrize(
    "low, size, channels, smooth",
    [((16, 32), (128, 256), 19, True), ((13, 29), (100, 230), 19, True), ((9, 11), (64, 64), 34, False)],
)
def test_upsampled_argmax_equals_resize_then_argmax(low, size, channels, smooth) -> None:
    rng = np.random.default_rng(1)
    if smooth:  # model-like: regions of one class with soft borders (the sparse path)
        classes = rng.integers(0, channels, (low[0] // 4 + 1, low[1] // 4 + 1)).repeat(4, 0).repeat(4, 1)
        scores = np.eye(channels, dtype=np.float32)[classes[: low[0], : low[1]]] + rng.random((*low, channels)) * 0.4
    else:  # noise: nearly every pixel is a border (the dense path)
        scores = rng.random((*low, channels))
    scores = scores.astype(np.float32)
    np.testing.assert_array_equal(upsampled_argmax(scores, size), tensorflow_reference(scores, size))


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
