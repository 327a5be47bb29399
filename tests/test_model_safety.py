"""Finding, checking and loading a participant's Keras .h5 model: valid models load, hostile ones run nothing.

Every hostile model here would write a marker file if its code ran (a Lambda's bytecode, a custom layer's
``__init__``, a module's import). Each test asserts the refusal names the layer and that the marker was
never written; control runs show that an unguarded loader does write it.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion import model_safety
from cityscapes_competition.ingestion.model_files import find_model_file
from cityscapes_competition.ingestion.model_loading import check_io, describe_io, load_model_safely
from cityscapes_competition.ingestion.model_safety import check_model_config

REPO = Path(__file__).resolve().parents[1]
INPUT_SHAPE = (32, 64, 3)
EVIL_MODULE = "evil_marker_mod"


@dataclass(frozen=True)
class Hostile:
    path: Path
    marker: Path  # written if the model's code ever runs
    layer: str  # the layer the refusal must name
    says: str  # a phrase the refusal must contain


# --- building models (once per module) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _functional(keras):
    layers = keras.layers
    image = keras.Input(INPUT_SHAPE, name="image")
    x = layers.Rescaling(1 / 255, name="scale")(image)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    scores = layers.Conv2D(19, 1, activation="softmax", name="logits")(x)
    return keras.Model(image, scores)


@pytest.fixture(scope="module")
def functional_h5(keras, store) -> Path:
    path = store / "functional.h5"
    _functional(keras).save(path)
    return path


@pytest.fixture(scope="module")
def sequential_h5(keras, store) -> Path:
    layers = keras.layers
    model = keras.Sequential(
        [keras.Input(INPUT_SHAPE), layers.Conv2D(4, 3, padding="same", activation="relu"), layers.Conv2D(19, 1)]
    )
    path = store / "sequential.h5"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def legacy_h5(tf_keras, store) -> tuple[Path, object]:
    """A tf.keras 2.x model (Keras 2 API) with the layers a small segmentation net uses."""
    layers = tf_keras.layers
    image = tf_keras.Input(INPUT_SHAPE)
    x = layers.Rescaling(1 / 127.5, offset=-1)(image)
    a = layers.Conv2D(8, 3, padding="same", kernel_initializer="he_normal", kernel_regularizer="l2")(x)
    a = layers.ReLU()(layers.BatchNormalization()(a))
    b = layers.UpSampling2D(2, interpolation="bilinear")(layers.MaxPooling2D()(a))
    x = layers.Concatenate()([a, b])
    x = layers.Conv2D(19, 1, activation="softmax")(layers.Dropout(0.1)(x))
    model = tf_keras.Model(image, x)
    path = store / "legacy.h5"
    model.save(path)
    return path, model


def _edited(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of ``source`` whose JSON model config was changed by ``edit``, with h5py alone."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        edit(config)
        h5.attrs["model_config"] = json.dumps(config)
    return target


def _layer(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["config"].get("name") == name)


def _marker_code(marker: Path) -> str:
    """Base64 marshalled bytecode of ``lambda t: (open(marker, 'w').close(), t)[1]``, as tf.keras stores it."""
    function = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")
    return base64.b64encode(marshal.dumps(function.__code__)).decode("ascii")


@pytest.fixture(scope="module")
def hostile(keras, tf_keras, store, functional_h5) -> dict[str, Hostile]:
    markers = store / "markers"
    markers.mkdir()
    cases: dict[str, Hostile] = {}

    # (a) tf.keras 2.x Lambda: the function's bytecode is marshalled into the config.
    marker = markers / "tf_keras_lambda"
    function = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")
    image = tf_keras.Input(INPUT_SHAPE)
    x = tf_keras.layers.Lambda(function, name="evil_lambda")(image)
    tf_keras.Model(image, tf_keras.layers.Conv2D(19, 1)(x)).save(store / "tf_keras_lambda.h5")
    cases["tf_keras_lambda"] = Hostile(store / "tf_keras_lambda.h5", marker, "evil_lambda", "Lambda")

    # (b) a registered custom layer whose __init__ and call write the marker (its path is in its config).
    class MarkerLayer(keras.layers.Layer):
        def __init__(self, marker: str, **kwargs):
            super().__init__(**kwargs)
            self.marker = marker
            Path(marker).touch()

        def call(self, x):
            Path(self.marker).touch()
            return x

        def get_config(self):
            return {**super().get_config(), "marker": self.marker}

    keras.saving.register_keras_serializable(package="CityscapesTest", name="MarkerLayer")(MarkerLayer)
    marker = markers / "custom_layer"
    image = keras.Input(INPUT_SHAPE)
    x = MarkerLayer(str(marker), name="evil_custom")(image)
    keras.Model(image, keras.layers.Conv2D(19, 1)(x)).save(store / "custom_layer.h5")
    cases["custom_layer"] = Hostile(store / "custom_layer.h5", marker, "evil_custom", "not a built-in Keras layer")

    # (c) configs edited with h5py: os.system as an activation, and a Lambda with marshalled bytecode.
    def os_system_string(config: dict) -> None:
        _layer(config, "conv_a")["config"]["activation"] = "os.system"

    def os_system_function(config: dict) -> None:
        _layer(config, "conv_b")["config"]["activation"] = {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "system",
        }

    marker = markers / "edited_lambda"

    def marshalled_lambda(config: dict) -> None:
        layer = _layer(config, "scale")
        layer["class_name"] = "Lambda"
        layer["config"] = {
            "name": "scale",
            "trainable": True,
            "dtype": "float32",
            "function": [_marker_code(marker), None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
            "output_shape_type": "raw",
            "output_shape_module": None,
            "arguments": {},
        }

    # (d) a module outside Keras, on a layer and on an initializer; importing it writes the marker.
    evil_dir = store / "evil_module"
    evil_dir.mkdir()
    module_marker = markers / "evil_module_imported"
    (evil_dir / f"{EVIL_MODULE}.py").write_text(
        f"open({str(module_marker)!r}, 'w').close()\nclass EvilLayer:\n    pass\n"
    )

    def layer_module(config: dict) -> None:
        layer = _layer(config, "conv_b")
        layer.update({"module": EVIL_MODULE, "class_name": "Conv2D", "registered_name": None})

    def initializer_module(config: dict) -> None:
        _layer(config, "logits")["config"]["kernel_initializer"] = {
            "module": EVIL_MODULE,
            "class_name": "GlorotUniform",
            "config": {"seed": None},
            "registered_name": None,
        }

    for name, edit, layer, says, case_marker in (
        ("os_system_activation", os_system_string, "conv_a", "os.system", markers / "never_written"),
        ("os_system_function", os_system_function, "conv_b", "os.system", markers / "never_written"),
        ("marshalled_lambda", marshalled_lambda, "scale", "Lambda", marker),
        ("layer_module", layer_module, "conv_b", f"module '{EVIL_MODULE}'", module_marker),
        ("initializer_module", initializer_module, "logits", f"module '{EVIL_MODULE}'", module_marker),
    ):
        cases[name] = Hostile(_edited(functional_h5, store / f"{name}.h5", edit), case_marker, layer, says)

    for case in cases.values():  # building ran some of the code: start clean
        case.marker.unlink(missing_ok=True)
    return cases


# --- valid models load --------------------------------------------------------------------------------


def test_keras3_functional_model_loads_with_its_weights(keras, functional_h5):
    model = load_model_safely(functional_h5)
    assert check_io(model) == ((None, *INPUT_SHAPE), [(None, 32, 64, 19)])
    reference = keras.models.load_model(functional_h5, compile=False)
    batch = np.random.default_rng(0).uniform(0, 255, (1, *INPUT_SHAPE)).astype("float32")
    np.testing.assert_allclose(model.predict(batch, verbose=0), reference.predict(batch, verbose=0), atol=1e-6)


def test_sequential_model_loads(sequential_h5):
    model = load_model_safely(sequential_h5)
    assert describe_io(model) == ((None, *INPUT_SHAPE), [(None, 32, 64, 19)])


def test_legacy_tf_keras_model_loads(legacy_h5):
    path, original = legacy_h5
    config = check_model_config(path)
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert {"InputLayer", "Rescaling", "BatchNormalization", "UpSampling2D", "Concatenate"} <= classes
    model = load_model_safely(path)
    assert check_io(model) == ((None, *INPUT_SHAPE), [(None, 32, 64, 19)])
    for mine, theirs in zip(model.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_model_in_a_wrapper_folder_with_an_uppercase_suffix_is_found_and_loads(tmp_path, functional_h5):
    wrapper = tmp_path / "submission" / "my-repo-main"
    (wrapper / "models").mkdir(parents=True)
    (wrapper / "metadata").write_text("inference:\n  output: trainIds\n")
    shutil.copy(functional_h5, wrapper / "models" / "MODEL.H5")
    (tmp_path / "submission" / "__MACOSX").mkdir()
    (tmp_path / "submission" / "__MACOSX" / "._MODEL.H5").write_bytes(b"\x00\x05\x16\x07")
    found = find_model_file(tmp_path / "submission")
    assert found.name == "MODEL.H5"
    assert describe_io(load_model_safely(found))[0] == (None, *INPUT_SHAPE)


# --- hostile models run nothing -----------------------------------------------------------------------

HOSTILE_CASES = (
    "tf_keras_lambda",
    "custom_layer",
    "os_system_activation",
    "os_system_function",
    "marshalled_lambda",
    "layer_module",
    "initializer_module",
)


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_model_is_refused_naming_the_layer_and_runs_nothing(hostile, case):
    bad = hostile[case]
    bad.marker.unlink(missing_ok=True)
    with pytest.raises(SubmissionError) as refused:
        load_model_safely(bad.path)
    message = str(refused.value)
    assert message.startswith(str(bad.path))
    assert f"layer '{bad.layer}'" in message
    assert bad.says in message
    assert "no Lambda, no custom layers or functions" in message
    assert "Traceback" not in message
    assert not bad.marker.exists()


def test_custom_layer_runs_its_code_when_keras_loads_it_unguarded(keras, hostile):
    """Control: in this process the layer is registered, so plain load_model would run it."""
    bad = hostile["custom_layer"]
    with pytest.raises(SubmissionError):
        load_model_safely(bad.path)
    assert not bad.marker.exists()
    keras.models.load_model(bad.path, compile=False, safe_mode=True)
    assert bad.marker.exists()
    bad.marker.unlink()


_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    cases, evil_module = json.loads(sys.argv[1]), sys.argv[2]
    import cityscapes_competition.ingestion.model_files, cityscapes_competition.ingestion.model_loading
    from cityscapes_competition.core.errors import SubmissionError
    report = {"tensorflow_at_import": "tensorflow" in sys.modules, "refused": {}, "markers_after_check": []}
    for name, (path, marker) in cases.items():
        try:
            cityscapes_competition.ingestion.model_loading.load_model_safely(Path(path))
            report["refused"][name] = None
        except SubmissionError as exc:
            report["refused"][name] = str(exc)
    report["markers_after_check"] = sorted(m for _, m in cases.values() if Path(m).exists())
    report["evil_module_imported"] = evil_module in sys.modules
    # Controls: loaders that trust the file do run the code.
    import keras, tf_keras
    controls = {}
    for name, load in (
        ("tf_keras_lambda", lambda p: tf_keras.models.load_model(p, compile=False)),
        ("marshalled_lambda", lambda p: keras.models.load_model(p, compile=False, safe_mode=False)),
    ):
        try:
            load(cases[name][0])
        except Exception:
            pass
        controls[name] = Path(cases[name][1]).exists()
    report["controls_wrote_marker"] = controls
    print(json.dumps(report))
    """
)


def test_hostile_models_in_a_fresh_process_run_nothing_even_at_import(hostile, store):
    """A fresh interpreter with the evil module importable: refused, no marker, no import; controls do run."""
    for case in hostile.values():
        case.marker.unlink(missing_ok=True)
    cases = {name: (str(case.path), str(case.marker)) for name, case in hostile.items()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(store / "evil_module"), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT, json.dumps(cases), EVIL_MODULE],
        capture_output=True,
        text=True,
        env=env,
        cwd=store,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tensorflow_at_import"] is False
    for name, message in report["refused"].items():
        assert message is not None and f"layer '{hostile[name].layer}'" in message, name
    assert report["markers_after_check"] == []
    assert report["evil_module_imported"] is False
    assert report["controls_wrote_marker"] == {"tf_keras_lambda": True, "marshalled_lambda": True}
    for case in hostile.values():
        case.marker.unlink(missing_ok=True)


# --- other refusals of the config ---------------------------------------------------------------------


def test_tf_op_lambda_from_tf_keras_arithmetic_is_refused(tf_keras, store):
    image = tf_keras.Input(INPUT_SHAPE)
    x = tf_keras.layers.Conv2D(19, 1)(image) * 2.0
    path = store / "tf_op_lambda.h5"
    tf_keras.Model(image, x).save(path)
    with pytest.raises(SubmissionError, match=r"layer 'tf\.math\.multiply' \(class TFOpLambda\)"):
        check_model_config(path)


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            lambda c: _layer(c, "conv_a")["config"].update(
                kernel_initializer={
                    "module": "keras.initializers",
                    "class_name": "GlorotUniform",
                    "config": {},
                    "registered_name": "MyPackage>MyInit",
                }
            ),
            "registered name 'MyPackage>MyInit'",
        ),
        (
            lambda c: _layer(c, "conv_a")["config"].update(
                activation={"class_name": "__lambda__", "config": {"value": "AAAA"}}
            ),
            "not a built-in Keras object",
        ),
        (lambda c: _layer(c, "conv_a")["config"].update(activation="my_swish"), "activation 'my_swish'"),
        (lambda c: _layer(c, "conv_a")["config"].update(kernel_initializer="builtins.eval"), "builtins.eval"),
        (lambda c: _layer(c, "conv_b").update(class_name="SlicingOpLambda"), "SlicingOpLambda"),
        (lambda c: _layer(c, "conv_b").update(class_name="TFSMLayer"), "TFSMLayer layers load code or files"),
        (lambda c: _layer(c, "conv_b")["config"].update(padding="subprocess.Popen"), "subprocess.Popen"),
    ],
)
def test_edited_config_is_refused_naming_the_layer(functional_h5, tmp_path, edit, says):
    path = _edited(functional_h5, tmp_path / "edited.h5", edit)
    with pytest.raises(SubmissionError) as refused:
        check_model_config(path)
    assert says in str(refused.value)
    assert "layer 'conv_" in str(refused.value)


def test_subclassed_model_class_is_refused(functional_h5, tmp_path):
    path = _edited(functional_h5, tmp_path / "sub.h5", lambda c: c.update(class_name="MyModel"))
    with pytest.raises(SubmissionError, match="'MyModel', not a Keras Functional or Sequential model"):
        check_model_config(path)


def test_absurdly_nested_or_large_or_broken_config_is_malformed(functional_h5, tmp_path, monkeypatch):
    nested = _edited(functional_h5, tmp_path / "deep.h5", lambda c: c["config"].update(extra=[[[]]]))
    with h5py.File(nested, "r+") as h5:
        h5.attrs["model_config"] = h5.attrs["model_config"].replace("[[[]]]", "[" * 300 + "]" * 300)
    with pytest.raises(SubmissionError, match="nested deeper than 200 levels"):
        check_model_config(nested)

    broken = shutil.copy(functional_h5, tmp_path / "broken.h5")
    with h5py.File(broken, "r+") as h5:
        h5.attrs["model_config"] = '{"class_name": "Functional", "config": {'
    with pytest.raises(SubmissionError, match="not valid JSON"):
        check_model_config(Path(broken))

    monkeypatch.setattr(model_safety, "_FIRST_READ_BYTES", 100)
    monkeypatch.setattr(model_safety, "MAX_CONFIG_BYTES", 1000)
    with pytest.raises(SubmissionError, match="larger than"):
        check_model_config(functional_h5)


@pytest.mark.parametrize("kind", ["external storage", "external link"])
def test_weights_read_from_other_files_are_refused(functional_h5, tmp_path, kind):
    """HDF5 can keep a dataset's bytes in any host file (say, the hidden ground truth): never read them."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"hidden ground truth" * 4)
    path = Path(shutil.copy(functional_h5, tmp_path / "model.h5"))
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights"].create_group("leak")
        if kind == "external storage":
            group.create_dataset("kernel", shape=(16,), dtype="u1", external=[(str(secret), 0, 16)])
        else:
            group["kernel"] = h5py.ExternalLink(str(secret), "/x")
    with pytest.raises(SubmissionError, match=r"is not self-contained: .*'model_weights/leak/kernel'"):
        load_model_safely(path)


# --- the model file -----------------------------------------------------------------------------------


def _submission(root: Path, files: dict[str, bytes | Path]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_bytes(content)
    return root


def _refusal(submission: Path) -> str:
    with pytest.raises(SubmissionError) as refused:
        find_model_file(submission)
    return str(refused.value)


def test_no_model_file_names_the_accepted_suffixes_and_what_was_found(tmp_path):
    files = {"metadata": b"", "export/saved_model.pb": b"\x08\x01", "notes.txt": b"hi"}
    message = _refusal(_submission(tmp_path / "s", files))
    assert "no model file" in message and ".h5, .hdf5, .keras" in message
    assert "it holds metadata, notes.txt, export/saved_model.pb (a TensorFlow SavedModel" in message
    assert 'model.save("model.keras")' in message


def test_two_model_files_are_listed(tmp_path, functional_h5):
    message = _refusal(_submission(tmp_path / "s", {"a.h5": functional_h5, "old/b.hdf5": functional_h5}))
    assert "2 model files: a.h5, old/b.hdf5" in message


def test_git_lfs_pointer_is_explained(tmp_path):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 123456789\n"
    message = _refusal(_submission(tmp_path / "s", {"model.h5": pointer}))
    assert "Git LFS pointer" in message and "git lfs pull" in message and "upload the zip" in message


def test_empty_file_is_refused(tmp_path):
    assert "is empty" in _refusal(_submission(tmp_path / "s", {"model.h5": b""}))


def test_png_renamed_h5_is_not_hdf5(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    message = _refusal(_submission(tmp_path / "s", {"model.h5": png}))
    assert "is not an HDF5 file" in message and "PNG" in message


def test_truncated_hdf5_is_refused(tmp_path, functional_h5):
    half = functional_h5.read_bytes()[: functional_h5.stat().st_size // 2]
    assert "damaged or incomplete HDF5" in _refusal(_submission(tmp_path / "s", {"model.h5": half}))


def test_hdf5_with_a_user_block_is_accepted(tmp_path):
    path = tmp_path / "s" / "model.h5"
    path.parent.mkdir()
    with h5py.File(path, "w", userblock_size=512) as h5:
        h5["x"] = np.zeros(3)
    assert find_model_file(tmp_path / "s") == path


def test_weights_only_file_says_to_save_the_whole_model(tmp_path, keras):
    model = _functional(keras)
    model.save_weights(tmp_path / "w.weights.h5")
    submission = _submission(tmp_path / "s", {"model.h5": tmp_path / "w.weights.h5"})
    with pytest.raises(SubmissionError) as refused:
        load_model_safely(find_model_file(submission))
    assert "only weights" in str(refused.value) and 'model.save("model.keras")' in str(refused.value)


def test_symlink_leaving_the_submission_is_refused(tmp_path, functional_h5):
    submission = _submission(tmp_path / "s", {"metadata": b""})
    (submission / "model.h5").symlink_to(functional_h5)
    assert "symbolic link pointing outside" in _refusal(submission)


def test_symlink_inside_the_submission_counts_once(tmp_path, functional_h5):
    submission = _submission(tmp_path / "s", {"weights/real.h5": functional_h5})
    (submission / "model.h5").symlink_to(submission / "weights" / "real.h5")
    assert find_model_file(submission).resolve() == (submission / "weights" / "real.h5").resolve()


# --- inputs and outputs -------------------------------------------------------------------------------


def test_multi_input_model_is_refused(keras):
    a, b = keras.Input(INPUT_SHAPE), keras.Input(INPUT_SHAPE)
    model = keras.Model([a, b], keras.layers.Conv2D(19, 1)(keras.layers.Add()([a, b])))
    with pytest.raises(SubmissionError, match=r"2 inputs \(\(None, 32, 64, 3\), \(None, 32, 64, 3\)\)"):
        check_io(model)


def test_channels_first_input_is_refused(keras):
    image = keras.Input((3, 32, 64))
    model = keras.Model(image, keras.layers.Conv2D(19, 1)(image))
    with pytest.raises(SubmissionError, match=r"input has shape \(None, 3, 32, 64\) \(channels first\?\)"):
        check_io(model)


def test_channels_first_output_is_refused(keras):
    image = keras.Input(INPUT_SHAPE)
    model = keras.Model(image, keras.layers.Permute((3, 1, 2))(keras.layers.Conv2D(19, 1)(image)))
    with pytest.raises(SubmissionError, match=r"output has shape \(None, 19, 32, 64\), which looks channels first"):
        check_io(model)


def test_rank_3_output_is_refused(keras):
    image = keras.Input(INPUT_SHAPE)
    model = keras.Model(image, keras.layers.Reshape((32 * 64, 19))(keras.layers.Conv2D(19, 1)(image)))
    with pytest.raises(SubmissionError, match=r"output has shape \(None, 2048, 19\) \(rank 3\)"):
        check_io(model)


def test_fully_convolutional_and_downsampled_outputs_are_accepted(keras):
    image = keras.Input((None, None, 3))
    conv = keras.Model(image, keras.layers.Conv2D(19, 3, strides=2)(image))
    assert check_io(conv) == ((None, None, None, 3), [(None, None, None, 19)])
    image = keras.Input(INPUT_SHAPE)
    strided = keras.Model(image, keras.layers.Conv2D(19, 3, strides=2)(image))
    assert check_io(strided)[1] == [(None, 15, 31, 19)]


def test_tf_keras_depthwise_separable_and_transposed_convolutions_load(tf_keras, store) -> None:
    """tf.keras 2.x writes `groups: 1` and unused `kernel_*` entries into these layers, which Keras 3
    refuses; MobileNet-style models must load anyway, with the same predictions."""
    from cityscapes_competition.ingestion.model_loading import load_model_safely

    layers = tf_keras.layers
    image = tf_keras.Input(INPUT_SHAPE)
    x = layers.Rescaling(1 / 255.0)(image)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.SeparableConv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(19, 3, strides=2, padding="same")(x)
    legacy = tf_keras.Model(image, x)
    path = store / "legacy_mobilenet_style.h5"
    legacy.save(path)
    model = load_model_safely(path)
    batch = np.random.default_rng(0).random((1, *INPUT_SHAPE)).astype("float32") * 255
    np.testing.assert_allclose(model.predict(batch, verbose=0), legacy.predict(batch, verbose=0), atol=1e-5)
