"""The models participants really save load safely; hostile ``.keras`` archives run and allocate nothing.

Real models are built here at small input sizes and saved the way their authors save them: a U-Net, the
keras.io "Multiclass semantic segmentation using DeepLabV3+" model as written (Keras ops included),
keras.applications backbones (weights=None), preprocessing layers, mixed precision, tf.keras 2.x files.
Each must load through ``load_model_safely`` with the weights and predictions of plain
``keras.models.load_model``. Files Keras 3 itself cannot load from ``.h5`` get a message that says to
save as ``.keras``.

The hostile archives are edited copies of real ones: code that writes a marker file if it ever runs
(Lambda bytecode, a registered custom layer, a module on the path), names outside Keras, zip bombs, path
traversal, extra, duplicate and symlinked members, weights read from other files, and declarations of
gigabytes. They are loaded in a fresh interpreter whose peak memory (VmHWM) is measured; controls show that
unguarded Keras does run the code.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import resource
import shutil
import stat
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_files import check_model_file, find_model_file
from cityscapes_competition.ingestion.model_loading import load_model_safely
from cityscapes_competition.ingestion.model_safety import REFUSED_OPERATIONS, allowlists

REPO = Path(__file__).resolve().parents[1]
SIZE = (32, 64)  # (height, width) of the small models
SQUARE = (64, 64)  # keras.applications backbones and DeepLabV3+ (a square image_size in the example)
PEAK_RSS_LIMIT = 1536 * 1024**2  # TensorFlow's import takes about 530 MB; any allocated gigabyte passes this
ADDRESS_SPACE_LIMIT = 8 * 1024**3  # a regression must fail the test, not exhaust the machine
EVIL_PACKAGE = "keras_hub"  # Keras' .keras loader imports modules of this package named in a config
ARCHIVE_FIX = 'Upload the file model.save("model.keras") wrote'


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("formats")


# --- the models ---------------------------------------------------------------------------------------


def unet(keras, layers=None):
    """A small U-Net: two poolings down, a transposed convolution and an upsampling back, skip concatenations."""
    layers = layers or keras.layers
    image = keras.Input((*SIZE, 3))
    x = layers.Rescaling(1 / 255.0)(image)
    d1 = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    d1 = layers.BatchNormalization()(d1)
    d2 = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.MaxPooling2D()(d1))
    bottom = layers.Conv2D(32, 3, padding="same", activation="relu")(layers.MaxPooling2D()(d2))
    u2 = layers.Conv2DTranspose(16, 3, strides=2, padding="same")(bottom)
    u2 = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.Concatenate()([u2, d2]))
    u1 = layers.UpSampling2D(2, interpolation="bilinear")(u2)
    u1 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Concatenate()([u1, d1]))
    return keras.Model(image, layers.Conv2D(19, 1, activation="softmax")(layers.Dropout(0.1)(u1)))


def deeplab_v3_plus(keras, image_size: int = SQUARE[0], num_classes: int = 19):
    """keras.io examples/vision/deeplabv3_plus.py (last modified 2023/07/19) as written, with weights=None
    for the ResNet50 backbone (no download)."""
    from keras import layers, ops

    def convolution_block(block_input, num_filters=256, kernel_size=3, dilation_rate=1, use_bias=False):
        x = layers.Conv2D(
            num_filters,
            kernel_size=kernel_size,
            dilation_rate=dilation_rate,
            padding="same",
            use_bias=use_bias,
            kernel_initializer=keras.initializers.HeNormal(),
        )(block_input)
        x = layers.BatchNormalization()(x)
        return ops.nn.relu(x)

    def dilated_spatial_pyramid_pooling(dspp_input):
        dims = dspp_input.shape
        x = layers.AveragePooling2D(pool_size=(dims[-3], dims[-2]))(dspp_input)
        x = convolution_block(x, kernel_size=1, use_bias=True)
        out_pool = layers.UpSampling2D(
            size=(dims[-3] // x.shape[1], dims[-2] // x.shape[2]),
            interpolation="bilinear",
        )(x)
        out_1 = convolution_block(dspp_input, kernel_size=1, dilation_rate=1)
        out_6 = convolution_block(dspp_input, kernel_size=3, dilation_rate=6)
        out_12 = convolution_block(dspp_input, kernel_size=3, dilation_rate=12)
        out_18 = convolution_block(dspp_input, kernel_size=3, dilation_rate=18)
        x = layers.Concatenate(axis=-1)([out_pool, out_1, out_6, out_12, out_18])
        return convolution_block(x, kernel_size=1)

    model_input = keras.Input(shape=(image_size, image_size, 3))
    preprocessed = keras.applications.resnet50.preprocess_input(model_input)
    resnet50 = keras.applications.ResNet50(weights=None, include_top=False, input_tensor=preprocessed)
    x = resnet50.get_layer("conv4_block6_2_relu").output
    x = dilated_spatial_pyramid_pooling(x)
    input_a = layers.UpSampling2D(
        size=(image_size // 4 // x.shape[1], image_size // 4 // x.shape[2]),
        interpolation="bilinear",
    )(x)
    input_b = resnet50.get_layer("conv2_block3_2_relu").output
    input_b = convolution_block(input_b, num_filters=48, kernel_size=1)
    x = layers.Concatenate(axis=-1)([input_a, input_b])
    x = convolution_block(x)
    x = convolution_block(x)
    x = layers.UpSampling2D(
        size=(image_size // x.shape[1], image_size // x.shape[2]),
        interpolation="bilinear",
    )(x)
    model_output = layers.Conv2D(num_classes, kernel_size=(1, 1), padding="same")(x)
    return keras.Model(inputs=model_input, outputs=model_output)


def backbone(keras, name: str, nested: bool = False):
    """A keras.applications backbone (weights=None) with a per-pixel head, flat or as a nested model."""
    layers = keras.layers
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(*SQUARE, 3))
    if nested:
        image = keras.Input((*SQUARE, 3))
        features = base(image)
    else:
        image, features = base.input, base.output
    x = layers.UpSampling2D(SQUARE[0] // features.shape[1], interpolation="bilinear")(features)
    return keras.Model(image, layers.Conv2D(19, 1, activation="softmax")(x))


def preprocessing_layers(keras):
    """Resizing, Rescaling and Normalization inside the model, as the starting kit recommends."""
    layers = keras.layers
    image = keras.Input((48, 96, 3))
    x = layers.Resizing(*SIZE)(image)
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    x = layers.Normalization(mean=[0.1, -0.2, 0.3], variance=[1.0, 2.0, 0.5])(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(image, layers.Conv2D(19, 1, activation="softmax")(x))


def keras_ops(keras):
    """What Keras 3 records as operation layers: x / 255.0 (TrueDivide), x[..., :3] (GetItem), keras.ops.*."""
    ops = keras.ops
    image = keras.Input((*SIZE, 3))
    x = image / 255.0
    x = x[..., :3]
    x = ops.nn.relu(keras.layers.Conv2D(8, 3, padding="same")(x))
    x = ops.image.resize(x, (SIZE[0] // 2, SIZE[1] // 2))
    x = keras.layers.Conv2D(19, 1)(ops.concatenate([x, x * 0.5], axis=-1))
    return keras.Model(image, ops.nn.softmax(x, axis=-1))


def mixed_precision(keras, softmax: str):
    """Built under the mixed_float16 policy; the softmax in float32 (the guide's advice) or left in float16."""
    layers = keras.layers
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        image = keras.Input((*SIZE, 3))
        x = layers.Rescaling(1 / 255.0)(image)
        x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        if softmax == "float32":
            scores = layers.Activation("softmax", dtype="float32")(layers.Conv2D(19, 1)(x))
        else:
            scores = layers.Conv2D(19, 1, activation="softmax")(x)
        return keras.Model(image, scores)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# name: (builder, formats)
VALID = {
    "unet": (unet, (".h5", ".keras")),
    "deeplab_v3_plus": (deeplab_v3_plus, (".keras",)),
    "mobilenet_v2_nested": (lambda k: backbone(k, "MobileNetV2", nested=True), (".keras",)),
    "mobilenet_v3_small": (lambda k: backbone(k, "MobileNetV3Small"), (".keras",)),
    "mobilenet_v3_large": (lambda k: backbone(k, "MobileNetV3Large"), (".keras",)),
    "convnext_tiny": (lambda k: backbone(k, "ConvNeXtTiny"), (".keras",)),
    "efficientnet_b0": (lambda k: backbone(k, "EfficientNetB0"), (".h5", ".keras")),
    "preprocessing_layers": (preprocessing_layers, (".h5", ".keras")),
    "keras_ops": (keras_ops, (".keras",)),
    "mixed_float32_softmax": (lambda k: mixed_precision(k, "float32"), (".h5", ".keras")),
    "mixed_float16_softmax": (lambda k: mixed_precision(k, "float16"), (".h5", ".keras")),
}
# Saved as .h5 too, where Keras 3.15 itself cannot rebuild them (operations, LayerScale, positional constants).
H5_KERAS_CANNOT_LOAD = ("deeplab_v3_plus", "mobilenet_v3_small", "convnext_tiny", "keras_ops")


@pytest.fixture(scope="module")
def saved(keras, store) -> Callable[[str, str], Path]:
    """``saved(name, suffix)``: the model ``name`` built once and saved in that format."""
    models: dict[str, object] = {}

    def save(name: str, suffix: str) -> Path:
        path = store / f"{name}{suffix}"
        if not path.exists():
            if name not in models:
                models[name] = VALID[name][0](keras)
            models[name].save(path)
        return path

    return save


def _batch(model, seed: int = 0) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(0, 255, (2, *shape)).astype("float32")


def _assert_same_model(mine, theirs) -> None:
    for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    batch = _batch(mine)
    ours = np.asarray(mine.predict_on_batch(batch), dtype="float32")
    reference = np.asarray(theirs.predict_on_batch(batch), dtype="float32")
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


CASES = [(name, suffix) for name, (_, suffixes) in VALID.items() for suffix in suffixes]


@pytest.mark.parametrize(("name", "suffix"), CASES, ids=[f"{n}{s}" for n, s in CASES])
def test_real_model_loads_safely_with_the_predictions_of_plain_keras(keras, saved, name, suffix):
    path = saved(name, suffix)
    check_model_file(path)
    _assert_same_model(load_model_safely(path), keras.models.load_model(path, compile=False))


def test_tf_keras_2_h5_loads_with_the_predictions_of_plain_keras(keras, tf_keras, store):
    path = store / "tf_keras_preprocessing.h5"
    legacy = preprocessing_layers(tf_keras)
    legacy.save(path)
    model = load_model_safely(path)
    _assert_same_model(model, keras.models.load_model(path, compile=False))
    batch = _batch(model)
    np.testing.assert_allclose(model.predict_on_batch(batch), legacy.predict_on_batch(batch), atol=1e-5)


def test_tf_keras_2_unet_h5_loads_where_plain_keras_3_cannot(keras, tf_keras, store):
    """tf.keras writes `groups: 1` into Conv2DTranspose, which Keras 3 refuses; the safe loader drops it."""
    path = store / "tf_keras_unet.h5"
    legacy = unet(tf_keras, tf_keras.layers)
    legacy.save(path)
    with pytest.raises(TypeError, match="groups"):
        keras.models.load_model(path, compile=False)
    model = load_model_safely(path)
    for mine, theirs in zip(model.get_weights(), legacy.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    batch = _batch(model)
    np.testing.assert_allclose(model.predict_on_batch(batch), legacy.predict_on_batch(batch), atol=1e-5)


def test_mixed_precision_keeps_its_output_dtype(saved):
    assert load_model_safely(saved("mixed_float32_softmax", ".keras")).outputs[0].dtype == "float32"
    assert load_model_safely(saved("mixed_float16_softmax", ".keras")).outputs[0].dtype == "float16"


def test_functional_ops_and_application_layers_are_what_the_configs_hold(saved):
    """The point of the op allowlist: these models really name keras.src.ops classes and LayerScale."""
    found = set()
    for name in ("deeplab_v3_plus", "mobilenet_v3_small", "convnext_tiny", "keras_ops"):
        with zipfile.ZipFile(saved(name, ".keras")) as archive:
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
        found |= {(layer.get("module"), layer["class_name"]) for layer in layers}
    assert {("keras.src.ops.numpy", "TrueDivide"), ("keras.src.ops.numpy", "GetItem")} <= found
    assert {("keras.src.ops.nn", "Relu"), ("keras.src.ops.numpy", "Add")} <= found
    assert ("keras.src.applications.convnext", "LayerScale") in found


@pytest.mark.parametrize("name", H5_KERAS_CANNOT_LOAD)
def test_h5_that_keras_3_cannot_rebuild_says_to_save_as_keras(keras, saved, name):
    path = saved(name, ".h5")
    with pytest.raises(Exception):  # noqa: B017 - the control: plain Keras 3.15 fails on it too
        keras.models.load_model(path, compile=False)
    with pytest.raises(SubmissionError) as refused:
        load_model_safely(path)
    message = str(refused.value)
    assert 'model.save("model.keras")' in message and "\n" not in message and "Traceback" not in message


def test_keras_ops_in_h5_are_named_as_operations(saved):
    with pytest.raises(SubmissionError, match=r"'TrueDivide' is a Keras operation .* only from the \.keras format"):
        load_model_safely(saved("keras_ops", ".h5"))


def test_tf_keras_keras_archive_says_to_save_as_h5(tf_keras, store):
    image = tf_keras.Input((*SIZE, 3))
    tf_keras.Model(image, tf_keras.layers.Conv2D(19, 1)(image)).save(store / "tf_keras.keras")
    with pytest.raises(SubmissionError, match=r"tf\.keras 2\.x .* model\.save\(\"model\.h5\"\)"):
        load_model_safely(store / "tf_keras.keras")


def test_compile_config_with_a_custom_loss_is_ignored(saved, tmp_path):
    """Training configs name the participant's own loss; with compile=False Keras never needs them."""
    custom = {"module": "builtins", "class_name": "function", "config": "dice", "registered_name": "MyLib>dice"}

    def compiled(config: dict) -> None:
        config["compile_config"] = {"optimizer": "adam", "loss": custom, "metrics": None}
        nested = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Functional")
        nested["compile_config"] = {"loss": custom}

    path = _edited_config(saved("mobilenet_v2_nested", ".keras"), tmp_path / "compiled.keras", compiled)
    load_model_safely(path)


def test_huge_operation_output_is_refused_as_declared(keras, tmp_path):
    """Operations are not in model.layers: their declared outputs are checked too, before predict."""
    image = keras.Input((*SIZE, 3))
    tiled = keras.ops.tile(image, (1, 300, 300, 1))  # (1, 9600, 19200, 3): 2.1 GB, within the cap
    scores = keras.layers.Conv2D(19, 1)(keras.ops.concatenate([tiled, tiled, tiled], axis=-1))  # 6.2 GB
    keras.Model(image, scores).save(tmp_path / "tiled.keras")
    with pytest.raises(
        SubmissionError,
        match=r"layer 'concatenate\w*' \(class Concatenate\) gives a tensor of shape \(1, 9600, 19200, 9\)",
    ):
        load_model_safely(tmp_path / "tiled.keras")


# --- finding the file ---------------------------------------------------------------------------------


def test_a_lone_keras_archive_is_the_model(saved, tmp_path):
    submission = tmp_path / "submission" / "repo-main"
    submission.mkdir(parents=True)
    (submission / "metadata").write_text("")
    shutil.copy(saved("unet", ".keras"), submission / "Model.KERAS")
    found = find_model_file(tmp_path / "submission")
    assert found.name == "Model.KERAS"
    assert load_model_safely(found).outputs[0].shape == (None, *SIZE, 19)


def test_h5_and_keras_together_are_refused_naming_both(saved, tmp_path):
    shutil.copy(saved("unet", ".h5"), tmp_path / "model.h5")
    shutil.copy(saved("unet", ".keras"), tmp_path / "model.keras")
    with pytest.raises(SubmissionError, match=r"holds 2 model files: model\.h5, model\.keras\. Put exactly one"):
        find_model_file(tmp_path)


@pytest.mark.parametrize(
    ("name", "source", "says"),
    [
        ("model.keras", ".h5", r'an HDF5 file named "\.keras" .* Rename it to "model\.h5"'),
        ("model.h5", ".keras", r'not an HDF5 file \(it is a zip archive.* Rename it to "model\.keras"'),
        ("model.keras", b"PK\x05\x06" + bytes(18), r"not a Keras 3 model archive \(it is an empty zip archive\)"),
        ("model.keras", b"{}", r"not a Keras 3 model archive \(it looks like JSON text"),
        ("model.keras", "truncated", r"damaged or incomplete Keras archive"),
    ],
)
def test_mistyped_or_damaged_files_say_what_they_are(saved, tmp_path, name, source, says):
    target = tmp_path / name
    if isinstance(source, bytes):
        target.write_bytes(source)
    elif source == "truncated":
        data = saved("unet", ".keras").read_bytes()
        target.write_bytes(data[: len(data) // 2])
    else:
        shutil.copy(saved("unet", source), target)
    with pytest.raises(SubmissionError, match=says):
        find_model_file(tmp_path)


# --- archive members ----------------------------------------------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(target: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_STORED):
    with zipfile.ZipFile(target, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return target


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _folder(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
    return info


# name: (what replaces or joins the members, a phrase of the refusal)
ARCHIVE_CASES: dict[str, tuple[Callable[[dict[str, bytes]], list], str]] = {
    "traversal": (lambda m: [*m.items(), ("../../evil.py", b"print(1)")], "which leads out of the archive ('..')"),
    "traversal_backslash": (lambda m: [*m.items(), ("..\\evil.py", b"x")], "which leads out of the archive"),
    "absolute": (lambda m: [*m.items(), ("/tmp/evil.py", b"x")], "which has an absolute path"),
    "python_file": (lambda m: [*m.items(), ("evil.py", b"import os")], "holds 'evil.py': a Keras model archive"),
    "second_weights": (
        lambda m: [*m.items(), ("model.weights.npz", b"PK")],
        "holds 'model.weights.npz': a Keras model archive holds only",
    ),
    "nested_weights": (
        lambda m: [*m.items(), ("variables/model.weights.h5", m["model.weights.h5"])],
        "holds 'variables/model.weights.h5'",
    ),
    "assets": (lambda m: [*m.items(), ("assets/vocabulary.txt", b"a\nb")], "holds 'assets/vocabulary.txt'"),
    "folder": (lambda m: [*m.items(), (_folder("assets/"), b"")], "which is a folder"),
    "symlink_weights": (
        lambda m: [(n, d) for n, d in m.items() if n != "model.weights.h5"] + [(_symlink("model.weights.h5"), b"/etc")],
        "holds the member 'model.weights.h5', which is a symbolic link",
    ),
    "symlink_extra": (lambda m: [*m.items(), (_symlink("evil"), b"/etc/passwd")], "which is a symbolic link"),
    "duplicate_config": (
        lambda m: [*m.items(), ("config.json", b'{"class_name": "Functional"}')],
        "holds the member 'config.json' 2 times",
    ),
    "nul_name": (lambda m: [*m.items(), ("config.jsonX.py", b"x")], "has a NUL character in its name"),
    "no_weights": (lambda m: [(n, d) for n, d in m.items() if n != "model.weights.h5"], "holds no weights"),
    "no_config": (lambda m: [(n, d) for n, d in m.items() if n != "config.json"], "holds no model configuration"),
    "encrypted": (lambda m: list(m.items()), "has an encrypted member 'config.json'"),
    "many_members": (
        lambda m: [*m.items()] + [(f"f{i}", b"") for i in range(150)],
        "is an archive of 153 members",
    ),
    "weights_not_hdf5": (
        lambda m: [(n, d if n != "model.weights.h5" else b"\x80\x04pickle") for n, d in m.items()],
        "has a model.weights.h5 that is not an HDF5 file (it looks like a pickle",
    ),
    "weights_truncated": (
        lambda m: [(n, d if n != "model.weights.h5" else d[: len(d) // 2]) for n, d in m.items()],
        "has a damaged or incomplete model.weights.h5",
    ),
}


@pytest.fixture(scope="module")
def archive_cases(saved, store) -> dict[str, Path]:
    members = _members(saved("unet", ".keras"))
    folder = store / "archives"
    folder.mkdir()
    cases = {name: _zip(folder / f"{name}.keras", build(members)) for name, (build, _) in ARCHIVE_CASES.items()}
    named = cases["nul_name"].read_bytes().replace(b"config.jsonX.py", b"config.json\x00.py")  # zipfile cuts at NUL
    cases["nul_name"].write_bytes(named)
    _patch_headers(cases["encrypted"], "config.json", "flags", 0x1)  # zipfile writes no encryption
    return cases


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_hostile_archive_is_refused_with_one_message(archive_cases, case):
    with pytest.raises(SubmissionError) as refused:
        load_model_safely(archive_cases[case])
    message = str(refused.value)
    assert message.startswith(str(archive_cases[case])) and ARCHIVE_CASES[case][1] in message, message
    assert "\n" not in message and "Traceback" not in message


def test_archive_members_are_checked_when_the_model_is_found(archive_cases, tmp_path):
    """The central directory is checked by find_model_file, before Keras is imported."""
    for case in ("traversal", "symlink_weights", "duplicate_config", "no_weights"):
        shutil.copy(archive_cases[case], tmp_path / "model.keras")
        with pytest.raises(SubmissionError, match=re.escape(ARCHIVE_FIX)):
            find_model_file(tmp_path)


def test_bzip2_member_is_refused(saved, tmp_path):
    path = _zip(tmp_path / "bz.keras", list(_members(saved("unet", ".keras")).items()), zipfile.ZIP_BZIP2)
    with pytest.raises(SubmissionError, match="compression method 12; only stored or deflated"):
        check_model_file(path)


def test_deflated_archive_loads(keras, saved, tmp_path):
    """Re-zipped with compression by some tool: still the same model."""
    path = _zip(tmp_path / "deflated.keras", list(_members(saved("unet", ".keras")).items()), zipfile.ZIP_DEFLATED)
    _assert_same_model(load_model_safely(path), keras.models.load_model(saved("unet", ".keras"), compile=False))


# --- hostile configs and weights, and bombs, in a fresh process ----------------------------------------


def _edited_config(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    members = _members(source)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    return _zip(target, list(members.items()))


def _edited_weights(source: Path, target: Path, edit: Callable[[h5py.File], None]) -> Path:
    members = _members(source)
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    members["model.weights.h5"] = buffer.getvalue()
    return _zip(target, list(members.items()))


def _layer(config: dict, class_name: str, index: int = 0) -> dict:
    return [layer for layer in config["config"]["layers"] if layer["class_name"] == class_name][index]


def _patch_headers(path: Path, name: str, field: str, value: int) -> Path:
    """Set a field of ``name``'s local header and central directory entry, which zipfile would not write:
    ``size`` (uncompressed) or ``flags`` (general purpose bits)."""
    local_offset, central_offset, layout = {"size": (22, 24, "<I"), "flags": (6, 8, "<H")}[field]
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    struct.pack_into(layout, data, info.header_offset + local_offset, value)
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + length] == name.encode():
            struct.pack_into(layout, data, start + central_offset, value)
        start += 4
    path.write_bytes(bytes(data))
    return path


@dataclass(frozen=True)
class Hostile:
    path: Path
    says: str  # a phrase of the refusal
    marker: Path | None = None  # written if the file's code ever runs


def _marker_lambda(marker: Path):
    return eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")


@pytest.fixture(scope="module")
def hostile(keras, store, saved) -> dict[str, Hostile]:
    folder = store / "hostile"
    markers = folder / "markers"
    markers.mkdir(parents=True)
    layers = keras.layers
    cases: dict[str, Hostile] = {}

    # Code: a Keras 3 Lambda (marshalled bytecode in config.json), a registered custom layer.
    marker = markers / "lambda"
    image = keras.Input((*SIZE, 3))
    x = layers.Lambda(_marker_lambda(marker), name="evil_lambda")(image)
    keras.Model(image, layers.Conv2D(19, 1)(x)).save(folder / "lambda.keras")
    cases["lambda"] = Hostile(folder / "lambda.keras", "layer 'evil_lambda' (class Lambda)", marker)

    class MarkerLayer(keras.layers.Layer):
        def __init__(self, marker: str, **kwargs):
            super().__init__(**kwargs)
            self.marker = marker
            Path(marker).touch()

        def call(self, x):
            return x

        def get_config(self):
            return {**super().get_config(), "marker": self.marker}

    keras.saving.register_keras_serializable(package="CityscapesFormats", name="MarkerLayer")(MarkerLayer)
    marker = markers / "custom"
    image = keras.Input((*SIZE, 3))
    x = MarkerLayer(str(marker), name="evil_custom")(image)
    keras.Model(image, layers.Conv2D(19, 1)(x)).save(folder / "custom.keras")
    cases["custom"] = Hostile(folder / "custom.keras", "not a built-in Keras layer", marker)

    ops = saved("keras_ops", ".keras")
    unet_keras = saved("unet", ".keras")

    def edit(name: str, source: Path, change: Callable[[dict], None], says: str, mark: Path | None = None) -> None:
        cases[name] = Hostile(_edited_config(source, folder / f"{name}.keras", change), says, mark)

    def conv(config: dict) -> dict:
        return _layer(config, "Conv2D")["config"]

    edit("os_system", unet_keras, lambda c: conv(c).update(activation="os.system"), "activation 'os.system'")
    edit(
        "os_system_function",
        unet_keras,
        lambda c: conv(c).update(
            activation={"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}
        ),
        "the function 'os.system'",
    )
    marker = markers / "package_imported"
    edit(
        "package_module",
        unet_keras,
        lambda c: _layer(c, "Conv2D").update(module=f"{EVIL_PACKAGE}.layers"),
        f"module '{EVIL_PACKAGE}.layers', which is not part of Keras",
        marker,
    )
    edit(
        "tf_op_lambda",
        ops,
        lambda c: _layer(c, "TrueDivide").update(module="keras.layers", class_name="TFOpLambda", registered_name=None),
        "tf.keras stores a TensorFlow operation",
    )
    edit(
        "refused_operation",
        ops,
        lambda c: _layer(c, "TrueDivide").update(module="keras.src.ops.core", class_name="Map", registered_name="Map"),
        "'keras.src.ops.core.Map' is not an accepted Keras operation: it calls a function",
    )
    edit(
        "operation_from_elsewhere",
        ops,
        lambda c: _layer(c, "TrueDivide").update(module="keras.src.ops.numpy", class_name="Dense"),
        "'keras.src.ops.numpy.Dense' is not an accepted Keras operation",
    )
    edit(
        "object_as_argument",
        ops,
        lambda c: _layer(c, "TrueDivide")["inbound_nodes"][0]["args"].__setitem__(
            1, {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}, "registered_name": None}
        ),
        "a call argument is a 'Dense' object; call arguments must be data",
    )
    edit(
        "lambda_in_argument",
        ops,
        lambda c: _layer(c, "TrueDivide")["inbound_nodes"][0]["args"].__setitem__(
            1, {"class_name": "__lambda__", "config": {"code": "AAAA"}}
        ),
        "a call argument is a '__lambda__' object",
    )
    edit(
        "custom_registered_name",
        unet_keras,
        lambda c: _layer(c, "Conv2D").update(registered_name="MyLib>Conv2D"),
        "registered name 'MyLib>Conv2D' marks a custom object",
    )

    # Weights that would read other files (the hidden ground truth), or that Keras refuses to follow.
    secret = folder / "secret.bin"
    secret.write_bytes(b"hidden ground truth" * 4)

    def external_link(h5: h5py.File) -> None:
        del h5["layers/conv2d/vars/0"]
        h5["layers/conv2d/vars/0"] = h5py.ExternalLink(str(secret), "/x")

    def external_storage(h5: h5py.File) -> None:
        h5["layers/conv2d"].create_group("leak").create_dataset(
            "kernel", shape=(16,), dtype="u1", external=[(str(secret), 0, 16)]
        )

    with h5py.File(folder / "secret.h5", "w") as secret_h5:
        secret_h5["data"] = np.arange(4, dtype="float32")

    def virtual(h5: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(folder / "secret.h5"), "data", shape=(4,))
        h5["layers/conv2d"].create_virtual_dataset("leak", layout)

    def soft_link(h5: h5py.File) -> None:
        del h5["layers/conv2d/vars/0"]
        h5["layers/conv2d/vars/0"] = h5py.SoftLink("/layers/conv2d_1/vars/0")

    for name, change, says in (
        (
            "external_link",
            external_link,
            "is not self-contained: in its model.weights.h5, 'layers/conv2d/vars/0' is a link",
        ),
        ("external_storage", external_storage, "keeps its data in an external file"),
        ("virtual", virtual, "the dataset 'layers/conv2d/leak' is a virtual dataset reading other files"),
        ("soft_link", soft_link, "'/layers/conv2d/vars/0' in its model.weights.h5 is a link"),
    ):
        cases[name] = Hostile(_edited_weights(unet_keras, folder / f"{name}.keras", change), says)

    # Memory: declarations of gigabytes, compressed weights, zip bombs.
    def head(config: dict) -> dict:
        return _layer(config, "Conv2D", -1)["config"]

    edit(
        "declared_2gb",
        unet_keras,
        lambda c: head(c).update(filters=2**26),
        "of shape (1, 1, 8, 67108864) (2.0 GB), but the file stores it with shape (1, 1, 8, 19)",
    )
    edit(
        "declared_7gb",
        unet_keras,
        lambda c: head(c).update(filters=7 * 2**25),
        "(1, 1, 8, 234881024) (7.0 GB)",
    )
    edit(
        "huge_input",
        unet_keras,
        lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 100_000, 100_000, 3]),
        "(1, 100000, 100000, 3)",
    )
    edit(
        "numpy_dtype",
        unet_keras,
        lambda c: _layer(c, "Rescaling")["config"].update(
            scale={"class_name": "__numpy__", "config": {"value": [0.5, 0.5], "dtype": "(20000,20000)f4"}}
        ),
        "an array of dtype '(20000,20000)f4'",
    )

    def compressed(h5: h5py.File) -> None:
        group = h5["layers/conv2d_5/vars"]  # the sixth Conv2D: saving_lib names groups by class, not layer
        for key, shape, chunks in (("0", (1, 1, 8, 2**26), (1, 1, 8, 2**16)), ("1", (2**26,), (2**18,))):
            del group[key]
            group.create_dataset(key, shape=shape, dtype="float32", chunks=chunks, compression="gzip")

    source = _edited_config(unet_keras, folder / "compressed_source.keras", lambda c: head(c).update(filters=2**26))
    cases["compressed"] = Hostile(
        _edited_weights(source, folder / "compressed.keras", compressed), "2.3 GB once read (uncompressed)"
    )

    members = _members(unet_keras)
    declared = _zip(folder / "declared_member.keras", list(members.items()))
    cases["declared_member"] = Hostile(
        _patch_headers(declared, "model.weights.h5", "size", 3 * 1024**3),
        "declares its member 'model.weights.h5' as 3221225472 bytes uncompressed, more than the limit",
    )
    padded = dict(members, **{"config.json": members["config.json"] + b" " * (40 * 1024**2)})
    cases["ratio_config"] = Hostile(
        _zip(folder / "ratio_config.keras", list(padded.items()), zipfile.ZIP_DEFLATED),
        "a compression ratio above 100: a zip bomb",
    )
    zeros = dict(members, **{"model.weights.h5": members["model.weights.h5"] + bytes(64 * 1024**2)})
    cases["ratio_weights"] = Hostile(
        _zip(folder / "ratio_weights.keras", list(zeros.items()), zipfile.ZIP_DEFLATED),
        "declares its member 'model.weights.h5' as",
    )
    for case in cases.values():  # building ran some of the code: start clean
        if case.marker is not None:
            case.marker.unlink(missing_ok=True)
    return cases


_FRESH_SCRIPT = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path
    cases, evil_package = json.loads(sys.argv[1]), sys.argv[2]

    def peak():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count pytest's size
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    from cityscapes_competition.core.errors import SubmissionError
    from cityscapes_competition.ingestion.model_loading import import_keras, load_model_safely
    keras = import_keras()
    report = {"after_import": peak(), "cases": {}}
    for name, (path, marker) in cases.items():
        try:
            load_model_safely(Path(path))
            message = None
        except SubmissionError as exc:
            message = str(exc)
        except Exception as exc:  # a regression
            message = f"UNEXPECTED {type(exc).__name__}: {str(exc)[:300]}"
        report["cases"][name] = {"message": message, "peak": peak()}
    with keras.StatelessScope():  # leaving a scope initializes variables still pending: none may be left
        pass
    report["final_peak"] = peak()
    report["markers"] = sorted(m for _, m in cases.values() if m and Path(m).exists())
    report["package_imported"] = evil_package in sys.modules
    controls = {}  # loaders that trust the file
    for name, safe_mode in (("lambda", False), ("package_module", True)):
        try:
            keras.models.load_model(cases[name][0], compile=False, safe_mode=safe_mode)
        except Exception:
            pass
        controls[name] = Path(cases[name][1]).exists()
    report["controls_wrote_marker"] = controls
    print(json.dumps(report))
    """
)


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.fixture(scope="module")
def fresh_run(hostile, store) -> dict:
    """Every hostile archive loaded in one fresh interpreter that can import an evil ``keras_hub`` package."""
    package = store / "evil_path" / EVIL_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(hostile['package_module'].marker)!r}, 'w').close()\n")
    (package / "layers.py").write_text("Conv2D = None\n")
    cases = {name: (str(case.path), str(case.marker or "")) for name, case in hostile.items()}
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_SCRIPT, json.dumps(cases), EVIL_PACKAGE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(store / "evil_path"), str(REPO)])},
        cwd=store,
        timeout=600,
        preexec_fn=_limit_address_space,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


HOSTILE_CASES = (
    "lambda",
    "custom",
    "os_system",
    "os_system_function",
    "package_module",
    "tf_op_lambda",
    "refused_operation",
    "operation_from_elsewhere",
    "object_as_argument",
    "lambda_in_argument",
    "custom_registered_name",
    "external_link",
    "external_storage",
    "virtual",
    "soft_link",
    "declared_2gb",
    "declared_7gb",
    "huge_input",
    "numpy_dtype",
    "compressed",
    "declared_member",
    "ratio_config",
    "ratio_weights",
)


@pytest.mark.parametrize("name", HOSTILE_CASES)
def test_hostile_archive_is_refused_in_a_fresh_process_without_allocating(fresh_run, hostile, name):
    result = fresh_run["cases"][name]
    message = result["message"] or "(loaded)"
    assert message.startswith(str(hostile[name].path)), message
    assert hostile[name].says in message, message
    assert "\n" not in message and "Traceback" not in message
    assert result["peak"] < PEAK_RSS_LIMIT, f"peak {result['peak'] / 1024**2:.0f} MB: {message}"


def test_no_hostile_code_ran_and_the_controls_show_it_would(fresh_run):
    assert fresh_run["markers"] == []
    assert fresh_run["package_imported"] is False
    assert fresh_run["final_peak"] < PEAK_RSS_LIMIT
    # Plain Keras runs the Lambda's bytecode without safe mode, and imports a keras_hub module named in a
    # config even in safe mode.
    assert fresh_run["controls_wrote_marker"] == {"lambda": True, "package_module": True}


def test_registered_custom_layer_runs_when_keras_loads_it_unguarded(keras, hostile):
    """Control: in this process the layer is registered, so plain load_model runs its __init__."""
    bad = hostile["custom"]
    bad.marker.unlink(missing_ok=True)
    with pytest.raises(SubmissionError, match="layer 'evil_custom'"):
        load_model_safely(bad.path)
    assert not bad.marker.exists()
    keras.models.load_model(bad.path, compile=False, safe_mode=True)
    assert bad.marker.exists()
    bad.marker.unlink()


def test_declared_member_bomb_is_refused_from_the_directory_alone(hostile):
    """3 GB declared, a few kilobytes stored: check_model_file (no Keras, nothing inflated) refuses it."""
    with pytest.raises(SubmissionError, match="more than the limit"):
        check_model_file(hostile["declared_member"].path)


# --- the operation allowlist --------------------------------------------------------------------------

# Parameter names that would hand an operation a function or a file.
_CALLABLE_OR_FILE = {"f", "fn", "fun", "function", "body", "body_fun", "cond", "branches", "true_fn", "false_fn"}
_CALLABLE_OR_FILE |= {"path", "filepath", "filename", "file", "url", "vocabulary", "pyfunc"}


def _keras_operation_classes() -> dict[tuple[str, str], type]:
    """Every operation class keras.src.ops defines, found independently of model_safety (by subclass walk)."""
    from keras.src.layers.layer import Layer
    from keras.src.ops.operation import Operation

    found, stack = {}, [Operation]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("keras.src.ops.") and not issubclass(cls, Layer):
            found[(cls.__module__, cls.__name__)] = cls
    return found


def test_operation_allowlist_is_derived_from_keras_less_the_refused(keras):
    operations = allowlists().operations
    every = _keras_operation_classes()
    assert operations == {key for key in every if key[1] not in REFUSED_OPERATIONS}
    assert len(operations) > 250  # numpy, nn, image, math, linalg, core...
    assert {("keras.src.ops.numpy", "TrueDivide"), ("keras.src.ops.numpy", "GetItem")} <= operations
    assert {("keras.src.ops.nn", "Relu"), ("keras.src.ops.image", "Resize")} <= operations
    assert set(REFUSED_OPERATIONS) <= {name for _, name in every}  # the refusals name real classes
    assert not any(name.endswith(("Lambda", "OpLayer")) for _, name in operations)


def test_no_allowlisted_operation_takes_a_function_or_a_file(keras):
    every = _keras_operation_classes()
    for key in allowlists().operations:
        cls = every[key]
        parameters = set(inspect.signature(cls.__init__).parameters) | set(inspect.signature(cls.call).parameters)
        assert not parameters & _CALLABLE_OR_FILE, (key, parameters & _CALLABLE_OR_FILE)


def test_application_layers_are_the_ones_keras_applications_defines(keras):
    assert ("keras.src.applications.convnext", "LayerScale") in allowlists().application_layers
    for module, name in allowlists().application_layers:
        assert module.startswith("keras.src.applications.")
        assert issubclass(getattr(sys.modules[module], name), keras.layers.Layer)


def test_archives_are_read_without_keras_imported():
    """Checking the archive (find_model_file) must not import TensorFlow: it runs before the heavy import."""
    code = (
        "import sys; from cityscapes_competition.ingestion.model_files import read_keras_members; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert done.stdout.split() == ["False", "False"], done.stderr
