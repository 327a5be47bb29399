"""A model file cannot make the worker allocate gigabytes: not while loading, not at predict time.

Keras allocates every variable a config declares before comparing it with the stored weights, and an
HDF5 dataset may be gzip-compressed, so a file of a few kilobytes can declare a 7 GB kernel. Each hostile
file here is a tiny real model whose config (or stored dataset) was rewritten with h5py; it is loaded in
a fresh interpreter that must refuse it with one line naming the layer while its peak resident memory
stays near what importing TensorFlow costs. Activation sizes are checked symbolically, in process.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_loading import (
    MAX_ACTIVATION_BYTES,
    _build_without_variables,
    check_activation_sizes,
    check_io,
    load_model_safely,
)
from cityscapes_competition.ingestion.model_safety import check_model_config, read_stored_weights

REPO = Path(__file__).resolve().parents[1]
# Importing TensorFlow takes about 530 MB here; Keras allocating any declared gigabyte would pass this.
PEAK_RSS_LIMIT = 1536 * 1024**2
# A regression must fail the test, not exhaust the machine: the fresh interpreter gets this much address space.
ADDRESS_SPACE_LIMIT = 8 * 1024**3
FIX = 'save the trained model again with model.save("model.h5")'


@dataclass(frozen=True)
class Case:
    path: Path
    says: str  # the refusal must contain this (it names the layer or the dataset)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("memory")


def _edited(source: Path, target: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of ``source`` whose JSON model config ``edit`` changed; the stored weights stay as they were."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        edit(config)
        h5.attrs["model_config"] = json.dumps(config)
    return target


def _layer_config(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["config"].get("name") == name)["config"]


def _set(name: str, **values: object) -> Callable[[dict], None]:
    return lambda config: _layer_config(config, name).update(values)


def _input_shape(shape: list) -> Callable[[dict], None]:
    return lambda config: config["config"]["layers"][0]["config"].update(batch_shape=shape)


@pytest.fixture(scope="module")
def tiny(keras, store) -> Path:
    """8 channels in, a Dense head of 19: the stored kernel is 8x19."""
    layers = keras.layers
    image = keras.Input((4, 4, 8), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv")(image)
    keras.Model(image, layers.Dense(19, name="head")(x)).save(store / "tiny.h5")
    return store / "tiny.h5"


@pytest.fixture(scope="module")
def cases(keras, tf_keras, store, tiny) -> dict[str, Case]:
    head_2gb = "layer 'head' (class Dense) declares the weight 'head/kernel' of shape (8, 67108864) (2.0 GB)"
    table = (
        ("dense_2gb", tiny, _set("head", units=2**26), head_2gb + ", but the file stores it with shape (8, 19)"),
        ("dense_7gb", tiny, _set("head", units=7 * 2**25), "'head/kernel' of shape (8, 234881024) (7.0 GB)"),
        ("conv_filters", tiny, _set("conv", filters=2**23), "layer 'conv' (class Conv2D) declares the weight"),
        ("embedding", _embedding(keras, store), _set("lookup", input_dim=2**27), "'lookup/embeddings' of shape"),
        (
            "adapted_normalization",
            _adapted_normalization(keras, store),
            _input_shape([None, 4, 4, 2**28]),
            "layer 'norm' (class Normalization) declares the weight 'norm/mean' of shape (268435456,)",
        ),
        ("bidirectional", _bidirectional(keras, store), _huge_template, "layer 'bidi' (class Bidirectional) declares"),
        ("tf_keras_dense", _tf_keras_dense(tf_keras, store), _set("head", units=2**26), head_2gb),
    )
    built = {name: Case(_edited(source, store / f"{name}.h5", edit), says) for name, source, edit, says in table}
    numpy_bomb = _edited(_rescaled(keras, store), store / "numpy_dtype.h5", _numpy_scale("(20000,20000)f4"))
    built["numpy_dtype"] = Case(numpy_bomb, "layer 'scale' (class Rescaling): an array of dtype '(20000,20000)f4'")
    built["unstored"] = Case(_unstored(tiny, store / "unstored.h5"), "layer 'head' (class Dense) declares 2 weights")
    built["compressed"] = Case(_compressed_bomb(tiny, store / "compressed.h5"), "once read (uncompressed)")
    image = keras.Input((100_000, 100_000, 3))
    keras.Model(image, keras.layers.Conv2D(19, 1)(image)).save(store / "huge_input.h5")
    says = "the model's input gives a tensor of shape (1, 100000, 100000, 3)"
    built["huge_input"] = Case(store / "huge_input.h5", says)
    return built


def _rescaled(keras, store: Path) -> Path:
    image = keras.Input((4, 4, 3))
    logits = keras.layers.Conv2D(1, 1, name="logits")(keras.layers.Rescaling(1 / 255.0, name="scale")(image))
    keras.Model(image, logits).save(store / "rescaled_source.h5")
    return store / "rescaled_source.h5"


def _numpy_scale(dtype: str) -> Callable[[dict], None]:
    """Keras turns the marker into np.array(value, dtype) while deserializing: a sub-array dtype makes each
    element 1.6 GB, allocated before any weight is looked at (found by an attacker: 6.8 GB for two values)."""
    marker = {"class_name": "__numpy__", "config": {"value": [0.0039, 0.0039], "dtype": dtype}}
    return _set("scale", scale=marker)


def _embedding(keras, store: Path) -> Path:
    ids = keras.Input((6,), dtype="int32")
    keras.Model(ids, keras.layers.Embedding(10, 4, name="lookup")(ids)).save(store / "embedding_source.h5")
    return store / "embedding_source.h5"


def _adapted_normalization(keras, store: Path) -> Path:
    """An adapted Normalization reads its mean while building: where that ran eagerly, 2 GB were allocated."""
    image = keras.Input((4, 4, 3))
    normalization = keras.layers.Normalization(name="norm")
    normalization.build((None, 4, 4, 3))
    logits = keras.layers.Conv2D(1, 1, name="logits")(normalization(image))
    keras.Model(image, logits).save(store / "adapted_source.h5")
    return store / "adapted_source.h5"


def _bidirectional(keras, store: Path) -> Path:
    sequence = keras.Input((5, 8))
    bidirectional = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True), name="bidi")
    keras.Model(sequence, bidirectional(sequence)).save(store / "bidirectional_source.h5")
    return store / "bidirectional_source.h5"


def _huge_template(config: dict) -> None:
    """Bidirectional rebuilds its layer from a sub-config that carries its own build shape."""
    _layer_config(config, "bidi")["layer"]["build_config"] = {"input_shape": [None, 5, 2**24]}


def _tf_keras_dense(tf_keras, store: Path) -> Path:
    """tf.keras 2.x configs go through Keras' legacy conversion: the same check must hold."""
    image = tf_keras.Input((4, 4, 8))
    tf_keras.Model(image, tf_keras.layers.Dense(19, name="head")(image)).save(store / "legacy_source.h5")
    return store / "legacy_source.h5"


def _unstored(tiny: Path, target: Path) -> Path:
    """A declared 2 GB layer whose weights the file does not hold at all."""
    _edited(tiny, target, _set("head", units=2**26))
    with h5py.File(target, "r+") as h5:
        h5["model_weights/head"].attrs["weight_names"] = []
    return target


def _compressed_bomb(tiny: Path, target: Path) -> Path:
    """Config and stored datasets agree on a 2.25 GB head, but gzip keeps the file at a few kilobytes."""
    _edited(tiny, target, _set("head", units=2**26))
    with h5py.File(target, "r+") as h5:
        group = h5["model_weights/head/head"]
        for name, shape, chunks in (("kernel", (8, 2**26), (8, 2**16)), ("bias", (2**26,), (2**18,))):
            del group[name]
            group.create_dataset(name, shape=shape, dtype="float32", chunks=chunks, compression="gzip")
            group[name][tuple(slice(0, c) for c in chunks)] = 1.0  # one real chunk; the rest reads as zeros
    assert target.stat().st_size < 200_000
    return target


_LOAD_SCRIPT = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path
    from cityscapes_competition.core.errors import SubmissionError
    from cityscapes_competition.ingestion.model_loading import import_keras, load_model_safely

    def peak():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count pytest's size
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    keras = import_keras()
    report = {"after_import": peak(), "cases": {}}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            load_model_safely(Path(path))
            message = None
        except SubmissionError as exc:
            message = str(exc)
        except Exception as exc:  # a regression: Keras itself failed (out of address space?)
            message = f"UNEXPECTED {type(exc).__name__}: {str(exc)[:300]}"
        report["cases"][name] = {"message": message, "peak": peak()}
    with keras.StatelessScope():  # leaving a scope initializes variables still pending: none may be left
        pass
    report["final_peak"] = peak()
    print(json.dumps(report))
    """
)


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.fixture(scope="module")
def fresh_load(cases, tiny) -> dict:
    """Every case (and the valid tiny model first) loaded in one fresh interpreter, with its peak memory."""
    paths = {"valid": str(tiny), **{name: str(case.path) for name, case in cases.items()}}
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, json.dumps(paths)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        preexec_fn=_limit_address_space,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


CASES = (
    "dense_2gb",
    "dense_7gb",
    "conv_filters",
    "embedding",
    "adapted_normalization",
    "bidirectional",
    "tf_keras_dense",
    "unstored",
    "compressed",
    "huge_input",
    "numpy_dtype",
)


def test_valid_model_loads_in_the_fresh_process(fresh_load):
    assert fresh_load["cases"]["valid"]["message"] is None
    assert fresh_load["after_import"] < PEAK_RSS_LIMIT


@pytest.mark.parametrize("name", CASES)
def test_hostile_declaration_is_refused_in_one_line_before_any_allocation(fresh_load, cases, name):
    result = fresh_load["cases"][name]
    message = result["message"] or "(loaded)"
    assert message.startswith(str(cases[name].path)), message
    assert cases[name].says in message, message
    assert "\n" not in message and "Traceback" not in message
    assert result["peak"] < PEAK_RSS_LIMIT, f"peak {result['peak'] / 1024**2:.0f} MB: {message}"


def test_no_refused_variable_is_initialized_later(fresh_load):
    assert fresh_load["final_peak"] < PEAK_RSS_LIMIT


def test_messages_say_what_to_fix(fresh_load):
    messages = {name: fresh_load["cases"][name]["message"] or "" for name in CASES}
    assert FIX in messages["dense_2gb"] and FIX in messages["unstored"]
    assert "at most 2 GB in memory" in messages["compressed"]
    assert "keras.Input((None, None, 3))" in messages["huge_input"]


def test_stored_weights_are_described_without_reading_them(cases):
    """The compressed datasets declare 2.25 GB; describing them reads metadata only."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SubmissionError, match=r"2\.3 GB once read .* '/model_weights/head/head/kernel' of shape"):
        read_stored_weights(cases["compressed"].path)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 100 * 1024**2


def test_stateful_layer_is_refused_with_its_reason(keras, store):
    """Its state is created from values, which a shape-only build cannot defer; ingestion could not feed it anyway."""
    sequence = keras.Input((5, 8), batch_size=2)
    keras.Model(sequence, keras.layers.GRU(4, stateful=True, name="memory")(sequence)).save(store / "stateful.h5")
    with pytest.raises(SubmissionError, match=r"layer 'memory' is stateful .* Save the model with stateful=False"):
        load_model_safely(store / "stateful.h5")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("missing", "the weights name '/model_weights/head/head/kernel', which is missing from the file"),
        (
            "soft_link",
            "the weights name '/model_weights/head/head/kernel', which is missing from the file (or is a link)",
        ),
        ("text", "the weight '/model_weights/head/head/kernel' holds object values"),
    ],
)
def test_weights_the_file_does_not_hold_as_numbers_are_malformed(tiny, tmp_path, damage, says):
    path = Path(shutil.copy(tiny, tmp_path / "model.h5"))
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/head/head"]
        del group["kernel"]
        if damage == "soft_link":
            group["kernel"] = h5py.SoftLink("/model_weights/head/head/bias")
        elif damage == "text":
            group.create_dataset("kernel", data=["a", "b"], dtype=h5py.string_dtype())
    with pytest.raises(SubmissionError, match="is malformed") as refused:
        load_model_safely(path)
    assert says in str(refused.value)


# --- the shape-only build sees what Keras builds -------------------------------------------------------


def _zoo(keras):
    """Layers a segmentation model may use, including ones with non-trainable, seeded or rebuilt state."""
    layers = keras.layers
    image = keras.Input((8, 16, 3))
    x = layers.Rescaling(1 / 255)(image)
    x = layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 1.0, 1.0])(x)
    adapted = layers.Normalization()
    adapted.build((None, 8, 16, 3))
    x = layers.Conv2D(8, 3, padding="same")(adapted(x))
    x = layers.GroupNormalization(groups=2)(layers.LayerNormalization()(layers.BatchNormalization()(x)))
    x = layers.SeparableConv2D(8, 3, padding="same")(layers.DepthwiseConv2D(3, padding="same")(x))
    x = layers.MaxPooling2D()(layers.Conv2DTranspose(8, 3, strides=2, padding="same")(x))
    x = layers.RandomFlip()(layers.GaussianNoise(0.1)(layers.Dropout(0.2)(layers.PReLU()(x))))
    x = layers.Add()([x, layers.EinsumDense("abcd,de->abce", output_shape=(None, None, 8))(x)])
    inner = keras.Sequential([keras.Input((8, 16, 8)), layers.Conv2D(8, 1)], name="inner")
    x = inner(x)
    s = layers.Reshape((8 * 16, 8))(x)
    s = layers.MultiHeadAttention(2, 4)(s, s)
    s = layers.Bidirectional(layers.GRU(4, return_sequences=True))(layers.LSTM(8, return_sequences=True)(s))
    x = layers.Reshape((8, 16, 8))(s)
    return keras.Model(image, layers.Conv2D(19, 1, dtype="float64")(layers.UpSampling2D(2)(x)))


def _declared(model) -> list[tuple[str, tuple[int, ...]]]:
    from keras.src.legacy.saving.legacy_h5_format import _legacy_weights

    return [(w.path, tuple(w.shape)) for layer in model.layers for w in _legacy_weights(layer)]


def test_shape_only_build_declares_exactly_the_weights_keras_loads(keras, store):
    from keras.src.backend.common import global_state

    path = store / "zoo.h5"
    _zoo(keras).save(path)
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    shape_only, created = _build_without_variables(check_model_config(path), path)
    assert global_state.get_global_attribute("uninitialized_variables") == pending  # nothing left to initialize
    loaded = load_model_safely(path)
    assert _declared(shape_only) == _declared(loaded)
    assert len(created) >= len(loaded.variables)  # seed-generator states and Bidirectional's template too
    assert all(v._value is None for v in created)  # no variable of the shape-only build holds memory


# --- activations ----------------------------------------------------------------------------------------


def _model(keras, *stack, input_shape=(None, None, 3)):
    image = keras.Input(input_shape)
    x = image
    for layer in stack:
        x = layer(x)
    return keras.Model(image, x)


def test_upsampling_to_terabytes_is_refused_at_the_largest_test_image(keras):
    model = _model(keras, keras.layers.UpSampling2D((1000, 1000), name="blow_up"), keras.layers.Conv2D(19, 1))
    check_io(model)
    with pytest.raises(SubmissionError) as refused:
        check_activation_sizes(model, None, 1)
    message = str(refused.value)
    assert "layer 'blow_up' (class UpSampling2D) gives a tensor of shape (1, 1024000, 2048000, 3)" in message
    assert "for a batch of 1 at 1024x2048" in message and "input_size or batch_size" in message


def test_wide_convolution_counts_the_batch(keras):
    """1 GB per image at 1024x2048: accepted alone, refused for batches of 8."""
    model = _model(keras, keras.layers.Conv2D(128, 1, name="wide"), keras.layers.Conv2D(19, 1))
    check_activation_sizes(model, None, 1)
    check_activation_sizes(model, (512, 1024), 8)
    with pytest.raises(SubmissionError, match=r"layer 'wide' \(class Conv2D\) .* \(8, 1024, 2048, 128\) \(8\.0 GB"):
        check_activation_sizes(model, None, 8)


def test_activation_inside_a_nested_model_is_named(keras):
    layers = keras.layers
    inner = keras.Sequential([keras.Input((None, None, 8)), layers.Conv2D(4096, 1, name="deep_wide")], name="inner")
    model = _model(keras, layers.Conv2D(8, 1), inner, layers.Conv2D(19, 1))
    with pytest.raises(SubmissionError, match=r"layer 'deep_wide' \(class Conv2D\)"):
        check_activation_sizes(model, (512, 1024), 1)


def test_enormous_fixed_input_is_refused(keras):
    model = _model(keras, keras.layers.Conv2D(19, 1), input_shape=(100_000, 100_000, 3))
    with pytest.raises(SubmissionError, match=r"the model's input gives a tensor of shape \(1, 100000, 100000, 3\)"):
        check_activation_sizes(model, (100_000, 100_000), 1)


def test_shape_keras_cannot_infer_falls_back_to_the_declared_shapes(keras):
    """A fixed Reshape cannot take another input size (predict would say so); what it declares is still checked."""
    layers = keras.layers
    model = _model(keras, layers.Reshape((64, 32, 3)), layers.Conv2D(19, 1), input_shape=(32, 64, 3))
    check_activation_sizes(model, (256, 512), 4)
    huge = _model(keras, layers.Reshape((64, 32, 3)), layers.UpSampling2D(300, name="up"), input_shape=(32, 64, 3))
    with pytest.raises(SubmissionError, match=r"layer 'up' .* \(4, 19200, 9600, 3\) .* a batch of 4, as declared"):
        check_activation_sizes(huge, (256, 512), 4)


def test_baseline_fits_even_at_the_largest_batch():
    model = load_model_safely(REPO / "baseline_submission" / "model.keras")
    check_io(model)
    check_activation_sizes(model, None, 64)
    assert MAX_ACTIVATION_BYTES >= 64 * 1024 * 2048 * 3 * 4  # the input batch itself fits
    assert math.prod((64, 512, 1024, 24)) * 4 <= MAX_ACTIVATION_BYTES  # its widest layer, stem_conv
