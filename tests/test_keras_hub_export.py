"""starting_kit/export_keras_hub.py: keras-hub SegFormer and DeepLabV3 segmenters become plain Keras models that
the competition's safe loader accepts and that predict what keras-hub predicts.

The segmenters are built here from keras-hub's classes with tiny configurations (no preset, no download), with
their preprocessors, and saved as .keras files as a participant would save them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_loading import import_keras, load_model_safely
from cityscapes_competition.ingestion.model_safety import allowlists

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "starting_kit" / "export_keras_hub.py"
SIZE = 64  # square: keras-hub's MiT encoder only works on square inputs
CLASSES = 19
# The exported model does the same float32 arithmetic, partly in another order (MultiHeadAttention's einsums,
# GELU from its formula). Measured on these models: 0 to 5e-7, on outputs of magnitude up to 2.5 (SegFormer's
# logits) or 1 (DeepLabV3's probabilities); 3e-6 on a SegFormer-B0 at 1024x1024. A mistake (heads in the wrong
# order, no rescaling) differs by 0.1 or more. 1e-5 leaves a twentyfold margin and catches every mistake.
ATOL = 1e-5
# ImageNet's mean and standard deviation, as keras-hub's DeepLabV3 presets normalize: a per-channel Rescaling.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def export_keras_hub() -> ModuleType:
    """The starting kit's script, imported as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("export_keras_hub", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def keras_hub() -> ModuleType:
    import_keras()  # TensorFlow on CPU, quietly, as the rest of the suite has it
    import keras_hub

    return keras_hub


def build_segformer(keras_hub: ModuleType, size: int = SIZE) -> Any:
    """SegFormer with a two-stage MiT encoder: one block per stage, 1 and 2 heads, sequence reduction in stage 1."""
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.1,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        image_shape=(size, size, 3),
        hidden_dims=[8, 16],
    )
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=16)
    converter = keras_hub.layers.SegFormerImageConverter(image_size=(size, size), scale=1 / 255.0)
    preprocessor = keras_hub.models.SegFormerImageSegmenterPreprocessor(image_converter=converter)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=CLASSES, preprocessor=preprocessor)


def build_deeplab(keras_hub: ModuleType, size: tuple[int, int] = (SIZE, SIZE)) -> Any:
    """DeepLabV3 on a two-stage ResNet (keras-hub requires 64 filters in the first), pyramid pooling on P3,
    the decoder on P2; per-channel ImageNet normalization; softmax outputs."""
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(*size, 3),
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P3",
        upsampling_size=2,
        dilation_rates=[2, 4],
        low_level_feature_key="P2",
        projection_filters=8,
        image_shape=(*size, 3),
    )
    converter = keras_hub.layers.DeepLabV3ImageConverter(
        image_size=size,
        scale=[1 / (255 * s) for s in STD],
        offset=[-m / s for m, s in zip(MEAN, STD, strict=True)],
    )
    preprocessor = keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(image_converter=converter)
    return keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=backbone, num_classes=CLASSES, activation="softmax", preprocessor=preprocessor
    )


def images(size: tuple[int, int] = (SIZE, SIZE), seed: int = 1) -> np.ndarray:
    """RGB 0..255, as the ingestion feeds a model (another seed than the script's own check)."""
    return np.random.default_rng(seed).uniform(0, 255, (2, *size, 3)).astype("float32")


class Case:
    """A keras-hub segmenter saved as .keras, its predictions (keras-hub's own pipeline), and its export."""

    def __init__(self, name: str, segmenter: Any, folder: Path):
        self.name = name
        self.source = folder / f"{name}_segmenter.keras"
        segmenter.save(self.source)
        self.expected = segmenter.predict_on_batch(images())  # preprocessor included: keras-hub's pipeline
        self.exported = folder / f"{name}_model.keras"


@pytest.fixture(scope="module")
def cases(keras_hub, export_keras_hub, tmp_path_factory) -> dict[str, Case]:
    folder = tmp_path_factory.mktemp("keras_hub")
    built = {
        "segformer": Case("segformer", build_segformer(keras_hub), folder),
        "deeplab": Case("deeplab", build_deeplab(keras_hub), folder),
    }
    for case in built.values():
        export_keras_hub.export(str(case.source), case.exported)
    return built


def config_of(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read("config.json").decode()


def layer_configs(node: Any) -> Iterator[dict]:
    """Every serialized layer of a model config, nested models included."""
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node.get("config"), dict) and "layers" in node["config"]:
            yield from (layer for child in node["config"]["layers"] for layer in [child, *layer_configs(child)])
        else:
            for value in node.values():
                yield from layer_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from layer_configs(value)


# --- (a) built-in Keras only -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["segformer", "deeplab"])
def test_exported_model_holds_only_built_in_keras_classes(cases, name):
    original, exported = config_of(cases[name].source), config_of(cases[name].exported)
    assert "keras_hub" in original  # the control: what the export removes
    assert "keras_hub" not in exported
    layers = list(layer_configs(json.loads(exported)))
    assert layers
    built_in = allowlists().layers
    for layer in layers:
        assert layer["module"] == "keras.layers" and layer["class_name"] in built_in, layer["class_name"]
        assert layer.get("registered_name") in (None, layer["class_name"]), layer["registered_name"]
    classes = {layer["class_name"] for layer in layers}
    # The translations were used: attention and GELU (SegFormer), the pooling branch's resizing (DeepLabV3).
    expected = {"MultiHeadAttention", "DepthwiseConv2D", "Multiply", "Rescaling"} if name == "segformer" else set()
    expected |= {"Rescaling", "Resizing", "Concatenate"}
    assert expected <= classes, expected - classes


# --- (b) same predictions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["segformer", "deeplab"])
def test_exported_model_predicts_as_the_keras_hub_segmenter(cases, name):
    keras = import_keras()
    model = keras.saving.load_model(cases[name].exported, compile=False, safe_mode=True)
    assert tuple(model.input.shape) == (None, SIZE, SIZE, 3)
    got = model.predict_on_batch(images())
    np.testing.assert_allclose(got, cases[name].expected, rtol=0, atol=ATOL)
    assert (got.argmax(-1) == cases[name].expected.argmax(-1)).all()


def test_gelu_from_built_in_layers_is_the_tanh_approximation_keras_hub_uses(export_keras_hub):
    """Inside the models the two GELUs differ too little to show (their inputs are small); here they do: the
    exact (erf) GELU, the built-in 'gelu' activation, is up to 5e-4 away from the tanh approximation."""
    keras = import_keras()
    x = np.linspace(-6, 6, 1201, dtype="float32")[None, :, None]
    inputs = keras.Input((x.shape[1], 1))
    got = keras.Model(inputs, export_keras_hub.gelu_tanh(inputs, "gelu")).predict_on_batch(x)
    tanh_gelu = np.asarray(keras.ops.gelu(x, approximate=True))  # what keras-hub's MixFFN calls
    exact_gelu = np.asarray(keras.ops.gelu(x, approximate=False))
    np.testing.assert_allclose(got, tanh_gelu, rtol=0, atol=2e-6)
    assert np.abs(got - exact_gelu).max() > 1e-4


# --- (c) the competition's loader, in a fresh process without keras-hub ------------------------------------

_FRESH_LOAD = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import numpy as np

    attempts = []

    class NoKerasHub(importlib.abc.MetaPathFinder):  # any import of keras-hub would fail, and be recorded
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("keras_hub", "keras_nlp", "keras_cv"):
                attempts.append(name)
                raise ImportError(name)
            return None

    sys.meta_path.insert(0, NoKerasHub())
    sys.path.insert(0, sys.argv[1])
    from cityscapes_competition.ingestion.model_loading import check_io, load_model_safely

    images = np.load(sys.argv[2])
    shapes = {}
    for model_path, out in json.loads(sys.argv[3]).items():
        model = load_model_safely(__import__("pathlib").Path(model_path))
        shapes[model_path] = [list(s) for s in check_io(model)[1]]
        np.save(out, model.predict_on_batch(images))
    print(json.dumps({"attempts": attempts, "keras_hub_imported": "keras_hub" in sys.modules, "shapes": shapes}))
    """
)


def test_exported_models_load_safely_in_a_fresh_process_without_keras_hub(cases, tmp_path):
    np.save(tmp_path / "images.npy", images())
    outputs = {str(case.exported): str(tmp_path / f"{case.name}.npy") for case in cases.values()}
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_LOAD, str(REPO), str(tmp_path / "images.npy"), json.dumps(outputs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == [] and report["keras_hub_imported"] is False
    for case in cases.values():
        assert report["shapes"][str(case.exported)] == [[None, SIZE, SIZE, CLASSES]]
        got = np.load(outputs[str(case.exported)])
        np.testing.assert_allclose(got, case.expected, rtol=0, atol=ATOL)


# --- (d) the keras-hub file itself is refused ------------------------------------------------------------


@pytest.mark.parametrize("name", ["segformer", "deeplab"])
def test_the_keras_hub_segmenter_is_refused_with_the_way_out(cases, name):
    with pytest.raises(SubmissionError) as refused:
        load_model_safely(cases[name].source)
    message = str(refused.value)
    assert "keras-hub model" in message and "export_keras_hub.py" in message, message


# --- the command line ------------------------------------------------------------------------------------


def test_command_line_exports_at_another_size_and_says_what_next(cases, tmp_path):
    """The script as a participant runs it: SegFormer built at 64x64, exported at 96x96 (keras-hub rebuilds it
    there with the same weights, which the script compares with)."""
    out = tmp_path / "model.keras"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(cases["segformer"].source), str(out), "--input-size", "96", "96"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "largest |difference|" in done.stdout and "same class at 100.00% of pixels" in done.stdout
    assert "load_model_safely" in done.stdout and "check_submission.py" in done.stdout
    model = load_model_safely(out)
    assert tuple(model.input.shape) == (None, 96, 96, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no partial file left behind


def test_help_shows_usage_and_defaults():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines to the terminal's width
    assert "usage: export_keras_hub.py" in text and "--input-size H W" in text
    assert "default: the segmenter's own input size" in text


# --- sizes, precision, presets ---------------------------------------------------------------------------


def test_deeplab_exported_at_another_non_square_size_matches_keras_hub_built_there(
    keras_hub, export_keras_hub, cases, tmp_path
):
    """DeepLabV3 works at any size: exported at 64x96, it predicts what keras-hub's own DeepLabV3 built at 64x96
    with the same weights predicts."""
    out = tmp_path / "model.keras"
    export_keras_hub.export(str(cases["deeplab"].source), out, (64, 96))
    twin = build_deeplab(keras_hub, (64, 96))
    twin.set_weights(import_keras().saving.load_model(cases["deeplab"].source, compile=False).get_weights())
    model = load_model_safely(out)
    assert tuple(model.input.shape) == (None, 64, 96, 3)
    expected = twin.predict_on_batch(images((64, 96)))
    np.testing.assert_allclose(model.predict_on_batch(images((64, 96))), expected, rtol=0, atol=ATOL)


def test_segformer_at_a_non_square_size_is_refused_and_nothing_is_written(export_keras_hub, cases, tmp_path):
    out = tmp_path / "model.keras"
    with pytest.raises(export_keras_hub.ExportError, match=r"only works on square inputs.*--input-size 128 128"):
        export_keras_hub.export(str(cases["segformer"].source), out, (64, 128))
    assert not any(tmp_path.iterdir())


def test_a_mixed_precision_segmenter_is_exported_in_float32(keras_hub, export_keras_hub, cases, tmp_path):
    keras = import_keras()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = build_segformer(keras_hub)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    mixed.set_weights(keras.saving.load_model(cases["segformer"].source, compile=False).get_weights())
    mixed.save(tmp_path / "mixed.keras")
    out = tmp_path / "model.keras"
    export_keras_hub.export(str(tmp_path / "mixed.keras"), out)
    model = load_model_safely(out)
    assert {layer.compute_dtype for layer in model._flatten_layers()} == {"float32"}
    # Same weights, so the float32 export predicts what the float32 segmenter does.
    np.testing.assert_allclose(model.predict_on_batch(images()), cases["segformer"].expected, rtol=0, atol=ATOL)


def test_a_keras_hub_preset_folder_is_exported(keras_hub, export_keras_hub, cases, tmp_path):
    segmenter = import_keras().saving.load_model(cases["deeplab"].source, compile=False)
    segmenter.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "model.keras"
    export_keras_hub.export(str(tmp_path / "preset"), out)
    got = load_model_safely(out).predict_on_batch(images())
    np.testing.assert_allclose(got, cases["deeplab"].expected, rtol=0, atol=ATOL)


# --- refusals ------------------------------------------------------------------------------------------------


def test_an_unknown_keras_hub_layer_is_named_with_the_supported_segmenters(keras_hub, export_keras_hub):
    """DeepLabV3 on keras-hub's EfficientNet, whose FusedMBConvBlock has no built-in translation here."""
    encoder = keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0, 0],
        stackwise_strides=[2, 2],
        stackwise_block_types=["fused", "fused"],
        stackwise_force_input_filters=[0, 0],
        stackwise_nores_option=[False, False],
        input_shape=(SIZE, SIZE, 3),
        num_features=16,
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P3",
        upsampling_size=2,
        dilation_rates=[2],
        low_level_feature_key="P2",
        image_shape=(SIZE, SIZE, 3),
    )
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=CLASSES)
    with pytest.raises(export_keras_hub.ExportError) as refused:
        export_keras_hub.to_functional(segmenter)
    message = str(refused.value)
    assert "FusedMBConvBlock" in message and "SegFormer" in message and "DeepLabV3" in message, message


def test_a_model_that_predicts_differently_is_not_saved(export_keras_hub, cases, tmp_path, monkeypatch):
    """The script's own check fails an export that is wrong (here: the image converter's rescaling left out)."""
    monkeypatch.setattr(export_keras_hub, "image_rescaling", lambda task: None)
    out = tmp_path / "model.keras"
    with pytest.raises(export_keras_hub.ExportError, match="does not predict what the keras-hub segmenter predicts"):
        export_keras_hub.export(str(cases["deeplab"].source), out)
    assert not any(tmp_path.iterdir())


def test_a_plain_keras_model_and_a_wrong_output_name_are_refused(export_keras_hub, cases, tmp_path):
    with pytest.raises(export_keras_hub.ExportError, match="not a keras-hub image segmenter"):
        export_keras_hub.export(str(cases["deeplab"].exported), tmp_path / "again.keras")
    with pytest.raises(export_keras_hub.ExportError, match=r"must be a \.keras file"):
        export_keras_hub.export(str(cases["deeplab"].source), tmp_path / "model.h5")
