"""Post-processing of model outputs: bilinear upsampling before the argmax, instances, the contract."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.inference import (
    TRAIN_ID_TO_LABEL_ID,
    OutputContract,
)
from cityscapes_competition.ingestion.submission_metadata import InferenceSettings
from cityscapes_competition.ingestion.upsampling import SourcePositions, upsampled_argmax, upsampled_run_sums

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
        ((40, 60), (4, 7), 19, True),  # strong downsampling: source rows and columns no output mixes
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


@pytest.mark.parametrize(
    "low, size",
    [((20, 40), (160, 320)), ((13, 29), (100, 230)), ((40, 40), (30, 50)), ((40, 60), (5, 7)), ((5, 7), (5, 70))],
)
def test_run_sums_equal_sums_over_the_full_resize(low, size) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(2)
    values = rng.random((*low, 3)).astype(np.float32)
    full = tf.image.resize(values[None], size, method="bilinear").numpy()[0].astype(np.float64)
    row, ends = rng.integers(0, size[0], 300), np.sort(rng.integers(0, size[1], (300, 2)), axis=1)
    start, stop, channel = ends[:, 0], ends[:, 1] + 1, rng.integers(0, 3, 300)
    row[:3], start[:3], stop[:3] = [0, size[0] - 1, 0], [0, 0, size[1] - 1], [size[1], 1, size[1]]  # the borders
    rows, cols = SourcePositions.along(size[0], low[0]), SourcePositions.along(size[1], low[1])
    sums = upsampled_run_sums(values, rows, cols, (row, start, stop, channel))
    expected = [full[r, first:last, c].sum() for r, first, last, c in zip(row, start, stop, channel, strict=True)]
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-6)  # TensorFlow rounds every pixel to float32


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


def scipy_components(labels: np.ndarray, classes, min_area: int) -> list[tuple]:
    """(label, top, left, area, mask bytes) of every 8-connected component, by scipy's labelling of each class."""
    from scipy import ndimage

    found = []
    for label in classes:
        components, _ = ndimage.label(labels == label, structure=np.ones((3, 3), bool))
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            mask = components[box] == index
            if box is not None and mask.sum() >= min_area:
                found.append((label, box[0].start, box[1].start, int(mask.sum()), mask.shape, mask.tobytes()))
    return sorted(found)


def ours(labels: np.ndarray, classes, min_area: int) -> list[tuple]:
    from cityscapes_competition.ingestion.components import instance_components

    found = instance_components(labels, classes, min_area)
    for component in found:
        assert np.all(labels[component.box][component.mask] == component.label)
    firsts = [(c.top, int(np.flatnonzero(c.mask[0])[0]) + c.left) for c in found]
    assert firsts == sorted(firsts)  # in the order of their first pixel
    return sorted((c.label, c.top, c.left, c.area, c.mask.shape, c.mask.tobytes()) for c in found)


@pytest.mark.parametrize("seed, shape, cell", [(0, (40, 60), 1), (1, (64, 128), 3), (2, (33, 7), 2), (3, (1, 50), 1)])
@pytest.mark.parametrize("min_area", [1, 12])
def test_components_equal_scipy_labelling_of_each_class(seed, shape, cell, min_area) -> None:
    # Blocky random maps: components of every shape, touching diagonally, other classes and the borders.
    rng = np.random.default_rng(seed)
    coarse = rng.choice([7, 24, 24, 26, 26, 33], (shape[0] // cell + 1, shape[1] // cell + 1))
    labels = coarse.repeat(cell, 0).repeat(cell, 1)[: shape[0], : shape[1]].astype(np.uint8)
    assert ours(labels, [24, 26, 33], min_area) == scipy_components(labels, [24, 26, 33], min_area)


def test_components_touch_diagonally_but_not_across_classes_or_row_ends() -> None:
    from cityscapes_competition.ingestion.components import instance_components

    labels = np.full((6, 8), 7, np.uint8)
    labels[0, 0] = labels[1, 1] = labels[2, 0] = 26  # a diagonal zigzag: one component
    labels[0, 3:5] = 26
    labels[1, 5:7] = 24  # touches the car above diagonally, but is a person: two components
    labels[3, 7] = labels[4, 0] = 26  # the end of one row and the start of the next are not neighbours
    found = sorted((c.label, c.top, c.left, c.area) for c in instance_components(labels))
    assert found == [(24, 1, 5, 2), (26, 0, 0, 3), (26, 0, 3, 2), (26, 3, 7, 1), (26, 4, 0, 1)]
    assert instance_components(np.full((5, 5), 7, np.uint8)) == []


def test_components_are_kept_by_their_pixels_not_their_box() -> None:
    """A frame, a diagonal whose box could hold min_area pixels but whose pixels cannot, a speck, a blob."""
    from cityscapes_competition.ingestion.components import instance_components

    labels = np.zeros((50, 50), np.uint8)
    frame = np.zeros((40, 40), bool)
    frame[[0, 1, 38, 39], :] = frame[:, [0, 1, 38, 39]] = True  # 304 pixels
    labels[5:45, 7:47][frame] = 26
    labels[np.arange(13, 26), np.arange(15, 28)] = 26  # the diagonal: 13 pixels in a 13x13 box
    labels[35, 13] = 26  # a speck
    labels[30:36, 32:38] = 26  # a blob of 36 pixels
    found = [(c.top, c.left, c.mask.shape, c.area) for c in instance_components(labels, min_area=30)]
    assert found == [(5, 7, (40, 40), 304), (30, 32, (6, 6), 36)]


@pytest.mark.parametrize("seed, size", [(0, (192, 384)), (1, (192, 384)), (2, (150, 301))])
def test_instances_equal_a_brute_force_labelling_of_the_whole_image(seed: int, size, tmp_path) -> None:
    """Labelling by runs and confidences summed per cell change nothing: every component of every
    instance class over the whole image, with its mean upsampled class probability (TensorFlow's)."""
    import tensorflow as tf
    from scipy import ndimage

    from cityscapes_competition.core.labels import INSTANCE_CLASS_IDS
    from cityscapes_competition.ingestion.inference import ModelOutput, ResultWriter
    from cityscapes_competition.ingestion.submission_metadata import InstanceSettings

    rng = np.random.default_rng(seed)
    low, channels = (24, 48), 19
    classes = rng.choice([0, 11, 12, 13, 14, 17, 18], (low[0] // 3 + 1, low[1] // 3 + 1)).repeat(3, 0).repeat(3, 1)
    scores = np.eye(channels, dtype=np.float32)[classes[: low[0], : low[1]]] * 3 + rng.random((*low, channels))
    scores = scores.astype(np.float32)
    settings = InferenceSettings(instances=InstanceSettings(min_area=30))
    contract = OutputContract(settings)
    contract.check(scores[None], "model.h5")
    writer = ResultWriter(tmp_path, settings, contract)
    labels = upsampled_argmax(scores, size, TRAIN_ID_TO_LABEL_ID)
    found = writer._instances(labels, ModelOutput(None, size, scores))

    probabilities = tf.image.resize(contract.probabilities(scores)[None], size, method="bilinear").numpy()[0]
    expected = []
    for channel, label in enumerate(TRAIN_ID_TO_LABEL_ID.tolist()):
        if label not in INSTANCE_CLASS_IDS:
            continue
        components, count = ndimage.label(labels == label, structure=np.ones((3, 3), bool))
        for index in range(1, count + 1):
            mask = components == index
            if mask.sum() >= 30:
                rows, cols = np.nonzero(mask)
                confidence = float(probabilities[..., channel][mask].mean())
                expected.append((label, rows.min(), cols.min(), int(mask.sum()), confidence))
    assert expected, "the scene holds no instance"
    ours = [(i.label, i.top, i.left, int(i.crop.sum()), i.confidence) for i in found]
    assert sorted(o[:4] for o in ours) == sorted(e[:4] for e in expected)
    for mine, theirs in zip(sorted(ours), sorted(expected), strict=True):
        assert mine[4] == pytest.approx(theirs[4], abs=1e-5)
    assert [i.confidence for i in found] == sorted((i.confidence for i in found), reverse=True)


# ---- probabilities or logits: from the model's graph --------------------------------------------------------


def _graph_models() -> dict[str, tuple[object, str | None]]:
    import keras

    layers = keras.layers

    def head(x, **kwargs):
        return layers.Conv2D(19, 1, **kwargs)(x)

    image = keras.Input((16, 32, 3))
    nested_input = keras.Input((16, 32, 3))
    nested = keras.Model(nested_input, head(nested_input, activation="softmax"))
    upsampled = layers.UpSampling2D(2, interpolation="bilinear")(head(image, activation="softmax"))
    added = layers.Add()([head(image, activation="softmax"), head(image, activation="softmax")])
    return {
        "conv softmax": (keras.Model(image, head(image, activation="softmax")), "probabilities"),
        "Softmax layer": (keras.Model(image, layers.Softmax()(head(image))), "probabilities"),
        "Activation softmax": (keras.Model(image, layers.Activation("softmax")(head(image))), "probabilities"),
        "softmax then upsampled": (keras.Model(image, upsampled), "probabilities"),
        "keras.ops softmax": (keras.Model(image, keras.ops.softmax(head(image), axis=-1)), "probabilities"),
        "nested model": (keras.Model(image, nested(image)), "probabilities"),
        "linear conv": (keras.Model(image, head(image)), "logits"),
        "linear then resized": (keras.Model(image, layers.Resizing(32, 64)(head(image))), "logits"),
        "added softmaxes": (keras.Model(image, added), None),  # the graph does not say: the numbers decide
    }


def test_the_output_kind_is_read_from_the_graph() -> None:
    from cityscapes_competition.ingestion.output_kind import declared_output_kind

    for name, (model, expected) in _graph_models().items():
        assert declared_output_kind(model) == expected, name


def test_numbers_decide_at_the_outputs_precision() -> None:
    """A float16 softmax over 19 channels sums to 1 only within about 1e-3 (1.3e-3 measured in the issue)."""
    from cityscapes_competition.ingestion.output_kind import looks_like_probabilities

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 8, 8, 19)).astype(np.float32) * 4
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    off = (probabilities * (1 + 1.3e-3)).astype(np.float32)  # sums 1.0013: float16 rounding, not logits
    assert looks_like_probabilities(off, "float16")
    assert not looks_like_probabilities(off, "float32")
    assert not looks_like_probabilities(logits, "float16")


def test_a_float16_softmax_is_not_softmaxed_again(tmp_path) -> None:
    """The issue's model: mixed precision, softmax in float16, scores: auto. Its confidences must be those of
    'scores: probabilities', not of a second softmax (0.51 became 0.08)."""
    import keras

    from cityscapes_competition.core.naming import parse_frame_id
    from cityscapes_competition.ingestion.inference import ModelOutput, ResultWriter, TestImage
    from cityscapes_competition.ingestion.output_kind import declared_output_kind

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        image = keras.Input((16, 32, 3))
        model = keras.Model(image, keras.layers.Conv2D(19, 1, activation="softmax")(image))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    kernel, bias = np.zeros((1, 1, 3, 19), np.float32), np.zeros(19, np.float32)
    kernel[0, 0, 0, 13], bias[0] = 0.05, 2.0  # bright pixels: car (trainId 13), else road
    model.layers[-1].set_weights([kernel, bias])
    assert str(model.outputs[0].dtype) == "float16"
    pixels = np.zeros((1, 16, 32, 3), np.float32)
    pixels[0, 4:12, 8:24] = 255.0
    scores = np.asarray(model.predict_on_batch(pixels), np.float32)

    def confidences(kind: str | None, scores_setting: str) -> list[float]:
        settings = InferenceSettings(scores=scores_setting)
        contract = OutputContract(settings, kind, "float16")
        contract.check(scores, "model.keras")
        writer = ResultWriter(tmp_path / scores_setting, settings, contract)
        frame = parse_frame_id("frankfurt_000000_000019_leftImg8bit.png")
        labels = upsampled_argmax(scores[0], (64, 128), TRAIN_ID_TO_LABEL_ID)
        found = writer._instances(labels, ModelOutput(TestImage(frame, None, "frankfurt"), (64, 128), scores[0]))
        return [round(instance.confidence, 6) for instance in found]

    auto = confidences(declared_output_kind(model), "auto")
    assert auto == confidences("probabilities", "probabilities")
    assert auto != confidences("logits", "logits")
