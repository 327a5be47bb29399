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
def keras():
    return import_keras()


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
