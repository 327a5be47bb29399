"""The graph a model config describes is checked before Keras rebuilds it (an attacker's three ways to make
the rebuild itself harmful: calls on constants, layers listed out of order, nesting that multiplies)."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_graph import MAX_CALLS_PER_IMAGE, MAX_REBUILD_ROUNDS, check_graph
from cityscapes_competition.ingestion.model_loading import import_keras, load_model_safely

PATH = Path("model.keras")


def _config(model) -> dict:
    """The config.json a .keras file holds for ``model``."""
    keras = import_keras()
    return json.loads(json.dumps(keras.saving.serialize_keras_object(model)))


@pytest.fixture(scope="module")
def chain(keras) -> dict:
    image = keras.Input((8, 8, 3), name="image")
    x = image
    for index in range(MAX_REBUILD_ROUNDS + 4):
        x = keras.layers.Activation("relu", name=f"a{index}")(x)
    return _config(keras.Model(image, keras.layers.Conv2D(19, 1, name="head")(x)))


def test_models_as_keras_saves_them_pass(keras, chain) -> None:
    image = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(3, 1, name="shared")  # called twice: a node refers to a later layer
    y = shared(keras.layers.Activation("relu")(shared(image)))
    inner_input = keras.Input((8, 8, 3))
    inner = keras.Model(inner_input, keras.layers.Conv2D(3, 1)(inner_input), name="inner")
    outputs = keras.layers.Add()([inner(y), inner(image)])  # a nested model called twice
    check_graph(chain, PATH)
    check_graph(_config(keras.Model(image, outputs)), PATH)


def test_a_call_on_constants_only_is_refused(chain) -> None:
    """Keras would compute it while loading: Full of 40000x32000 took 5.8 GB from a 7.9 KB file."""
    config = copy.deepcopy(chain)
    config["config"]["layers"].append(
        {
            "module": "keras.src.ops.numpy",
            "class_name": "Full",
            "config": {"name": "bomb", "shape": [40000, 32000], "dtype": "float32"},
            "registered_name": None,
            "name": "bomb",
            "inbound_nodes": [{"args": [1.0], "kwargs": {}}],
        }
    )
    with pytest.raises(SubmissionError, match="layer 'bomb' is called on no tensor of the model"):
        check_graph(config, PATH)


def test_layers_listed_backwards_are_refused(chain) -> None:
    """Keras retries every waiting call once per round: listed backwards, 600 layers took minutes."""
    config = copy.deepcopy(chain)
    layers = config["config"]["layers"]
    config["config"]["layers"] = [layers[0], *reversed(layers[1:])]
    with pytest.raises(SubmissionError, match=f"could not rebuild it in {MAX_REBUILD_ROUNDS} rounds"):
        check_graph(config, PATH)


def test_a_call_on_a_layer_that_is_not_there_is_refused(chain) -> None:
    config = copy.deepcopy(chain)
    node = config["config"]["layers"][2]["inbound_nodes"][0]
    node["args"][0]["config"]["keras_history"][0] = "nowhere"
    with pytest.raises(SubmissionError, match="or for ones that never come"):
        check_graph(config, PATH)


def test_nesting_that_multiplies_is_refused(keras) -> None:
    """Each level calls the one below twice: 2**levels calls per image from a small file."""
    model = None
    for level in range(16):  # 2**16 calls per image, more than the cap
        image = keras.Input((4, 4, 3))
        below = model(image) if model is not None else keras.layers.Activation("relu")(image)
        again = model(below) if model is not None else keras.layers.Activation("relu")(below)
        model = keras.Model(image, again, name=f"level{level}")
    with pytest.raises(SubmissionError, match=f"more than {MAX_CALLS_PER_IMAGE} layer calls per image"):
        check_graph(_config(model), PATH)


def test_the_attackers_file_is_refused_before_keras_sees_it(keras, tmp_path) -> None:
    image = keras.Input((8, 8, 3), name="image")
    model = keras.Model(image, keras.layers.Conv2D(19, 1, name="head")(image))
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"].append(
        {
            "module": "keras.src.ops.numpy",
            "class_name": "Arange",
            "config": {"name": "bomb", "dtype": "float32"},
            "registered_name": None,
            "name": "bomb",
            "inbound_nodes": [{"args": [0, 1_500_000_000], "kwargs": {}}],
        }
    )
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "hostile.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(SubmissionError, match="called on no tensor of the model"):
        load_model_safely(tmp_path / "hostile.keras")


# ---- a fourth attacker's holes ----


def _functional(name: str, layers: list, output: str, output_node: int = 0) -> dict:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": name,
            "layers": layers,
            "input_layers": [f"in_{name}", 0, 0],
            "output_layers": [output, output_node, 0],
        },
        "registered_name": "Functional",
        "name": name,
    }


def _tensor(layer: str, node: int = 0) -> dict:
    history = [layer, node, 0]
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 8, 8, 3], "keras_history": history}}


def _input(name: str) -> dict:
    return {
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, 8, 8, 3], "name": name},
        "name": name,
        "inbound_nodes": [],
    }


def test_a_shared_object_stub_counts_as_the_model_it_stands_for() -> None:
    """Keras returns the object already built under a shared_object_id, whatever the rest of the dict says: a
    stub called after its model at each of 20 levels is 2**20 calls, which a stub counted as 1 hid."""
    act = {
        "class_name": "Activation",
        "config": {"name": "act"},
        "name": "act",
        "inbound_nodes": [{"args": [_tensor("in_m0")], "kwargs": {}}],
    }
    model = _functional("m0", [_input("in_m0"), act], "act")
    for level in range(1, 21):
        inner = dict(model, shared_object_id=level, inbound_nodes=[{"args": [_tensor(f"in_m{level}")], "kwargs": {}}])
        stub = {
            "class_name": "Functional",
            "config": {},
            "shared_object_id": level,
            "name": f"{model['name']}_again",
            "inbound_nodes": [{"args": [_tensor(model["name"])], "kwargs": {}}],
        }
        model = _functional(f"m{level}", [_input(f"in_m{level}"), inner, stub], f"{model['name']}_again")
    assert 2**20 > MAX_CALLS_PER_IMAGE
    with pytest.raises(SubmissionError, match="layer calls per image"):
        check_graph(model, PATH)


def test_where_with_one_argument_and_unrolled_recurrences_are_refused(keras) -> None:
    image = keras.Input((8, 8, 3))
    check_graph(_config(keras.Model(image, keras.ops.where(image > 0.5, image, 0.0))), PATH)  # shaped as its inputs
    indices = keras.ops.where(image > 0.5)[0]  # as long as the true values: no check sees what follows
    with pytest.raises(SubmissionError, match="where\\(condition\\) with one argument"):
        check_graph(_config(keras.Model(image, indices)), PATH)
    sequence = keras.Input((64, 3))
    check_graph(_config(keras.Model(sequence, keras.layers.SimpleRNN(4)(sequence))), PATH)
    unrolled = keras.layers.Bidirectional(keras.layers.SimpleRNN(4, unroll=True))(sequence)  # nested config too
    with pytest.raises(SubmissionError, match="unroll=True"):
        check_graph(_config(keras.Model(sequence, unrolled)), PATH)


def test_normalization_constants_broadcast_over_a_whole_image_are_refused_before_loading(keras, tmp_path) -> None:
    """Mean and variance given as numbers are broadcast to the kept axes at build: over 8192x8192x3, 768 MB
    each, per layer (3 layers took 4.8 GB while loading a 24 KB file)."""
    image = keras.Input((2048, 2048, 3))
    per_channel = keras.layers.Normalization(mean=[0.4, 0.5, 0.6], variance=[1.0, 1.0, 1.0], axis=-1)(image)
    keras.Model(image, per_channel).save(tmp_path / "channels.keras")
    load_model_safely(tmp_path / "channels.keras")
    per_pixel = image
    for _ in range(3):  # 3 x 2 x 2048 x 2048 x 3 x 4 bytes = 288 MB
        per_pixel = keras.layers.Normalization(mean=0.5, variance=2.0, axis=(1, 2, 3))(per_pixel)
    keras.Model(image, per_pixel).save(tmp_path / "pixels.keras")
    with pytest.raises(SubmissionError, match="Normalization constants"):
        load_model_safely(tmp_path / "pixels.keras")


def test_operations_whose_output_length_is_computed_are_refused(keras, tmp_path) -> None:
    from cityscapes_competition.ingestion.model_safety import REFUSED_OPERATIONS

    assert {"Nonzero", "Unique", "Bincount"} <= set(REFUSED_OPERATIONS)
    image = keras.Input((8, 8, 3))
    keras.Model(image, keras.ops.nonzero(image > 0.5)[0]).save(tmp_path / "nonzero.keras")
    with pytest.raises(SubmissionError, match="the size of its output is a value the model computes"):
        load_model_safely(tmp_path / "nonzero.keras")
