"""Loading a participant's Keras model (``.h5`` or ``.keras``) safely, on CPU, and checking its inputs and outputs.

The file's config is checked first (``model_safety``: built-in Keras objects only); then Keras loads it
with ``safe_mode=True``, ``compile=False`` and no custom objects. Any failure is one ``SubmissionError``.
Keras (hence TensorFlow) is imported only inside these functions, so importing the package stays light.

A ``.keras`` archive is never given to Keras: ``model_files.unpack_keras_archive`` checks it and copies its
weights into a private folder (where they are probed as any HDF5 model file), the checked config (without
its compile configs) is written beside them as ``config.json``, and Keras loads that folder
(``keras.models.load_model`` of a directory holding ``config.json``: ``saving_lib._load_model_from_dir``).

Memory. Keras allocates every variable a config declares (running its initializer) before it compares it
with the stored weights, so a tiny file declaring ``Dense(2**28)`` would take gigabytes. Between the config
check and the real load, the checked config is therefore built once with no variable initialized (inside a
``keras.StatelessScope`` Keras only records each variable's shape; in a TensorFlow graph context whatever
the layers compute while building stays an unexecuted graph node), and every declared variable is compared
with the weights the file stores (``model_safety.read_stored_weights``: HDF5 metadata, nothing read) and
the total is capped. For ``.keras`` the variables are paired with the datasets of ``model.weights.h5`` by
Keras' own saving walk (``saving_lib._save_state``, which ``_load_state`` mirrors) run on the shape-only
model with a store that records where each value would go. ``check_activation_sizes`` does the same for
activations, once the input size is known.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tempfile
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import SubmissionError, shown
from .keras_runtime import import_keras
from .model_files import CONFIG_MEMBER, WEIGHTS_MEMBER, is_keras_archive, unpack_keras_archive
from .model_safety import (
    BIG_WEIGHTS_FIX,
    MAX_WEIGHT_BYTES,
    StoredGroup,
    StoredWeight,
    StoredWeights,
    check_keras_config,
    check_model_config,
    read_keras_weights,
    read_stored_weights,
    save_call,
    saved_with,
    shape_text,
    size_text,
)

if TYPE_CHECKING:
    import keras

Shape = tuple[int | None, ...]

_KERAS_SUFFIXES = (".h5", ".hdf5")  # what keras.models.load_model recognizes, case-sensitively
_LOAD_FIX = (
    'Save the model with model.save("model.keras") (Keras 3; tf.keras 2.x: model.save("model.h5")) using '
    "built-in layers only, and check that keras.models.load_model(file, compile=False) loads it."
)
_H5_LOAD_FIX = (
    "Keras 3 rebuilds some models it saved as .h5 (keras.applications' MobileNetV3 and ConvNeXt, models using "
    'Keras operations such as x / 255.0) only from .keras: save the model with model.save("model.keras") and '
    "submit that file."
)
_LEGACY_FIX = (
    "Keras 3 cannot rebuild every tf.keras 2.x layer: build the same model with Keras 3, copy the weights with "
    'model.load_weights("old.h5"), and save it again with model.save("model.keras").'
)
_INPUT_FIX = (
    "Give the model exactly one input for a batch of RGB images, channels last: "
    "keras.Input((height, width, 3)) or keras.Input((None, None, 3))."
)
_OUTPUT_FIX = (
    "Make every output per-pixel class scores of shape (batch, height, width, classes), channels last "
    "(data_format='channels_last', the Keras default)."
)
_WEIGHTS_FIX = (
    "The model's configuration and the weights stored in the file disagree (was the file edited?): save the "
    "trained model again with "
)
_ACTIVATION_FIX = (
    "Use a smaller input_size or batch_size in the metadata, or a model with fewer channels and less "
    "upsampling at full resolution."
)
_DECLARED_SHAPE_FIX = "Give the model a modest input shape, such as keras.Input((None, None, 3)) or (1024, 2048, 3)."
_sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its file, for messages

# Variables Keras creates beyond the stored weights (seed-generator states: 8 bytes each) may take this much.
MAX_BOOKKEEPING_BYTES = 1024**2
# Normalization's mean and variance, broadcast at build (per channel: bytes; per pixel of a full image: 50 MB)
MAX_BUILD_CONSTANT_BYTES = 256 * 1024**2
# One activation (a layer's output for a whole batch) may take this much: 4 GB is 8 images of 1024x2048
# with 64 float32 channels, and TensorFlow holds at least a layer's input and output at once on top of it.
MAX_ACTIVATION_BYTES = 4 * 1024**3
# (height, width) of a Cityscapes image: with no input_size, each test image is fed at its own size.
LARGEST_IMAGE = (1024, 2048)


def load_model_safely(path: Path) -> keras.Model:
    """The model in ``path``, once its config names only built-in Keras objects and its variables are
    known to be the stored weights, within the memory caps."""
    if is_keras_archive(path):
        return _load_keras_archive(path)
    config = check_model_config(path)
    stored = read_stored_weights(path)
    replaced = _without_legacy_leftovers(config)
    check_declared_weights(config, stored, path)
    with _keras_readable_name(path, replaced) as name:
        return _loaded(name, path)


def _load_keras_archive(path: Path) -> keras.Model:
    """A ``.keras`` model, loaded by Keras from a private folder: the checked config and the probed weights."""
    with tempfile.TemporaryDirectory(prefix="model-") as folder:
        unpacked = unpack_keras_archive(path, Path(folder))
        saved = f"Keras {unpacked.keras_version}" if unpacked.keras_version else ""
        config = check_keras_config(unpacked.config_text, path)
        check_declared_keras_weights(config, unpacked.weights, path, saved)
        (Path(folder) / CONFIG_MEMBER).write_text(json.dumps(config), encoding="utf-8")
        return _loaded(folder, path, saved)


def _loaded(name: str, path: Path, saved: str | None = None) -> keras.Model:
    """``keras.models.load_model(name)`` in safe mode, uncompiled; any failure is one message about ``path``."""
    keras = import_keras()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notes about the participant's code, not actionable here
            model = keras.models.load_model(name, compile=False, safe_mode=True)
    except Exception as exc:  # anything Keras raises is the file's fault here: the config was valid JSON
        raise _not_loaded(path, exc, saved) from None
    if not isinstance(model, keras.Model):
        raise SubmissionError(f"holds a {type(model).__name__}, not a Keras model", path, _LOAD_FIX)
    with contextlib.suppress(TypeError):
        _sources[model] = path
    return model


def _not_loaded(path: Path, exc: BaseException, saved: str | None = None) -> SubmissionError:
    keras = import_keras()
    saved = saved_with(path) if saved is None else saved
    origin = f" (the file was saved with {saved})" if saved else ""
    if saved.startswith(("Keras 1.", "Keras 2.")):
        fix = _LEGACY_FIX
    elif is_keras_archive(path):
        fix = _LOAD_FIX
    else:
        fix = _H5_LOAD_FIX
    return SubmissionError(f"could not be loaded by Keras {keras.__version__}{origin}: {short_reason(exc)}", path, fix)


def _weights_fix(path: Path) -> str:
    return f"{_WEIGHTS_FIX}{save_call(path)}."


# --- declared variables against stored weights ----------------------------------------------------------


def check_declared_weights(config: dict, stored: StoredWeights, path: Path) -> None:
    """Refuse a (checked) ``.h5`` config whose variables are not the stored weights or take too much memory.

    Runs before Keras allocates anything: the model is built without initializing a single variable.
    """
    model, created = _build_without_variables(config, path)
    _check_declared(model, created, _match_stored(model, stored, path), path)


def check_declared_keras_weights(config: dict, weights: Path, path: Path, saved: str = "") -> None:
    """The same for a (checked) ``.keras`` config and its ``model.weights.h5`` (copied out of ``path``)."""
    model, created, layout = _build_keras_without_variables(config, path, saved)
    stored = read_keras_weights(weights, list(layout), path)
    _check_declared(model, created, _match_keras_layout(layout, stored, path), path)


def _check_declared(model: Any, created: list[Any], matched: list[Any], path: Path) -> None:
    """Caps on what is created beyond the stored weights, on all variables, and on declared activations."""
    _check_unstored(created, matched, path)
    total = sum(map(_nbytes, created))
    if total > MAX_WEIGHT_BYTES:
        largest = max(created, key=_nbytes)
        raise SubmissionError(
            f"declares variables that take {size_text(total)}, more than the limit of {size_text(MAX_WEIGHT_BYTES)}; "
            f"the largest is {_variable_text(largest)}",
            path,
            BIG_WEIGHTS_FIX,
        )
    for layer, tensor in _declared_outputs(model):
        _check_activation(layer, tensor.shape, tensor.dtype, path, ("one image, as declared", _DECLARED_SHAPE_FIX))
    _check_build_constants(model, path)


def _check_build_constants(model: Any, path: Path) -> None:
    """Cap what layers compute while Keras builds them, which is no variable and no activation: a Normalization
    given its mean and variance broadcasts both to its kept axes of the input (3 layers over an 8192x8192
    input took 4.8 GB while loading a 24 KB file). The build here made them symbolic; loading makes them real."""
    sizes: list[tuple[int, str]] = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ != "Normalization" or getattr(layer, "input_mean", None) is None:
            continue
        shape = getattr(layer, "_mean_and_var_shape", None) or ()
        sizes.append((2 * math.prod(int(side) for side in shape if isinstance(side, int)) * 4, layer.name))
    total = sum(size for size, _ in sizes)
    if total > MAX_BUILD_CONSTANT_BYTES:
        raise SubmissionError(
            f"builds {size_text(total)} of Normalization constants (its mean and variance broadcast over the "
            f"input's kept axes; the largest in layer {shown(max(sizes)[1], 60)}), more than the limit of "
            f"{size_text(MAX_BUILD_CONSTANT_BYTES)}",
            path,
            "Normalize over the channel axis only (axis=-1), or give the model a smaller fixed input.",
        )


def _build_without_variables(config: dict, path: Path) -> tuple[Any, list[Any]]:
    """The model built from ``config`` as Keras' h5 loader builds it, and every variable it created, none
    initialized (see ``_nothing_initialized``)."""
    from keras.src.legacy.saving import json_utils, saving_options, saving_utils

    decoded = json_utils.decode(json.dumps(config))  # what the loader deserializes (and a private copy)
    with _nothing_initialized(config, path) as created, saving_options.keras_option_scope(use_legacy_config=True):
        model = saving_utils.model_from_config(decoded, custom_objects={})
    return model, created


@dataclass
class _SavedGroup:
    """What Keras' saving walk puts into one object's ``vars`` group: its name and values by key."""

    name: str
    values: dict[str, Any]


def _build_keras_without_variables(
    config: dict, path: Path, saved: str = ""
) -> tuple[Any, list[Any], dict[str, _SavedGroup]]:
    """The model built from a ``.keras`` config as ``saving_lib`` builds it, every variable it created (none
    initialized), and where Keras keeps each value in ``model.weights.h5`` (object path -> group)."""
    from keras.src.saving import saving_lib

    with _nothing_initialized(config, path, saved) as created:
        model = saving_lib._model_from_config(json.dumps(config), {}, False, True)  # custom objects, compile, safe
        layout = _saved_layout(model)
    return model, created, layout


def _saved_layout(model: Any) -> dict[str, _SavedGroup]:
    """Keras' own saving walk over ``model`` with a store that records instead of writing: the loader's walk
    (``_load_state``) visits the same objects under the same paths and reads the same keys."""
    from keras.src.saving import saving_lib

    class RecordingStore(saving_lib.H5IOStore):  # _save_state accepts only its store classes
        def __init__(self) -> None:  # no file
            self.groups: dict[str, _SavedGroup] = {}
            self.current = ""

        def __bool__(self) -> bool:
            return True

        def make(self, path: str, metadata: dict | None = None) -> RecordingStore:
            name = str((metadata or {}).get("name", path or "the model"))
            self.current = path
            self.groups.setdefault(path, _SavedGroup(name, {}))
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            self.groups[self.current].values[key] = value

    store = RecordingStore()
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    return {path: group for path, group in store.groups.items() if group.values}


@contextlib.contextmanager
def _nothing_initialized(config: dict, path: Path, saved: str | None = None) -> Iterator[list[Any]]:
    """Scopes in which building a model creates its variables without initializing any: a StatelessScope defers
    initializers, the graph context keeps build-time computation symbolic (it is never run). Yields the list
    that receives the variables created, which are then forgotten so that nothing initializes them later."""
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from keras.src.saving import serialization_lib

    keras = import_keras()
    before = list(global_state.get_global_attribute("uninitialized_variables") or [])
    created: list[Any] = []
    try:
        with (
            tf.Graph().as_default(),
            keras.StatelessScope(initialize_variables=False),
            serialization_lib.SafeModeScope(True),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield created
    except SubmissionError:
        raise
    except Exception as exc:  # the real load would fail the same way, except for a stateful layer
        stateful = _stateful_layer(config)
        if stateful is not None:
            raise SubmissionError(
                f"layer {shown(stateful)} is stateful (stateful=True): its state is sized by a fixed batch, while "
                "ingestion feeds batches of any size",
                path,
                "Save the model with stateful=False.",
            ) from None
        raise _not_loaded(path, exc, saved) from None
    finally:
        created += (global_state.get_global_attribute("uninitialized_variables") or [])[len(before) :]
        global_state.set_global_attribute("uninitialized_variables", before)


def _stateful_layer(config: object) -> str | None:
    """The name of a layer whose config says ``stateful: true`` (RNNs create its state from values), if any."""
    if isinstance(config, dict):
        inner = config.get("config")
        if isinstance(inner, dict) and inner.get("stateful") is True:
            return str(inner.get("name"))
        children: Any = config.values()
    else:
        children = config if isinstance(config, list) else ()
    return next((name for child in children if (name := _stateful_layer(child)) is not None), None)


def _match_stored(model: Any, stored: StoredWeights, path: Path) -> list[Any]:
    """Pair declared and stored weights as Keras does (the layers with weights, by position); refuse a difference."""
    from keras.src.legacy.saving.legacy_h5_format import _legacy_weights  # the order the h5 format uses

    declared = [layer for layer in model.layers if _legacy_weights(layer)]
    if len(declared) < len(stored.layers):
        extra = stored.layers[len(declared)]
        raise SubmissionError(
            f"stores weights for {len(stored.layers)} layers but its configuration declares {len(declared)} layers "
            f"with weights; the first stored layer left over is {shown(extra.name)}",
            path,
            _weights_fix(path),
        )
    matched: list[Any] = []
    for index, layer in enumerate(declared):
        saved = stored.layers[index].weights if index < len(stored.layers) else ()
        _compare(f"layer {shown(layer.name)} (class {type(layer).__name__})", _legacy_weights(layer), saved, path)
        matched += _legacy_weights(layer)
    if stored.top_level is not None:
        weights = {id(w) for w in model.weights}  # identity: == on an uninitialized variable would compute
        own = [v for v in model._trainable_variables + model._non_trainable_variables if id(v) in weights]
        _compare("the model itself", own, stored.top_level, path)
        matched += own
    return matched


def _match_keras_layout(layout: dict[str, _SavedGroup], stored: dict[str, StoredGroup | None], path: Path) -> list[Any]:
    """Pair each value Keras would load with its dataset, as ``H5IOStore.get`` and ``load_own_variables`` do
    (the same count of entries, each key a dataset of the same shape); refuse a difference."""
    matched: list[Any] = []
    for object_path, saved in layout.items():
        group = stored.get(object_path)
        what = f"layer {shown(saved.name)}" if object_path else "the model itself"
        keys = group.keys if group is not None else ()
        values = list(saved.values.values())
        if len(keys) != len(values):
            found = f"{len(keys)} for it" if keys else "none for it"
            raise SubmissionError(
                f"{what} declares {len(values)} weights, such as {_variable_text(values[0])}, but its "
                f"{WEIGHTS_MEMBER} stores {found}",
                path,
                _weights_fix(path),
            )
        for key, value in saved.values.items():
            weight = group.weights.get(key) if group is not None else None
            if weight is None:
                raise SubmissionError(
                    f"{what} declares the weight {_variable_text(value)}, but its {WEIGHTS_MEMBER} has no dataset "
                    f"{shown(key)} in {shown(group.name if group else object_path)}",
                    path,
                    _weights_fix(path),
                )
            _compare_shape(what, value, weight, path)
            matched.append(value)
    return matched


def _compare(what: str, declared: list[Any], stored: tuple[StoredWeight, ...], path: Path) -> None:
    if len(declared) != len(stored):
        found = f"{len(stored)} for it" if stored else "none for it"
        raise SubmissionError(
            f"{what} declares {len(declared)} weights, such as {_variable_text(declared[0])}, "
            f"but the file stores {found}",
            path,
            _weights_fix(path),
        )
    for variable, saved in zip(declared, stored, strict=True):
        _compare_shape(what, variable, saved, path)


def _compare_shape(what: str, variable: Any, saved: StoredWeight, path: Path) -> None:
    if _shape(variable) != saved.shape:
        raise SubmissionError(
            f"{what} declares the weight {_variable_text(variable)}, but the file stores it with shape "
            f"{shape_text(saved.shape)}",
            path,
            _weights_fix(path),
        )


def _check_unstored(created: list[Any], matched: list[Any], path: Path) -> None:
    """Variables beyond the stored weights: seed-generator states, and copies of stored weights Keras builds
    and drops (Bidirectional rebuilds its layer); anything else, past a few bytes, is refused."""
    matched_ids = {id(v) for v in matched}
    copies = {(v.path, _shape(v)) for v in matched}
    extra = 0
    for variable in created:
        if id(variable) in matched_ids or (variable.path, _shape(variable)) in copies:
            continue
        extra += _nbytes(variable)
        if extra > MAX_BOOKKEEPING_BYTES:
            layer = str(variable.path).split("/", 1)[0]
            raise SubmissionError(
                f"layer {shown(layer)} creates the variable {_variable_text(variable)}, which the file does not store",
                path,
                _weights_fix(path),
            )


def _shape(variable: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


def _nbytes(variable: Any) -> int:
    return math.prod(_shape(variable)) * _itemsize(variable.dtype)


def _itemsize(dtype: object) -> int:
    try:
        return np.dtype(str(dtype)).itemsize
    except TypeError:  # bfloat16, float8_e4m3fn...: the bits are in the name
        bits = re.search(r"\d+", str(dtype))
        return max(int(bits.group()) // 8, 1) if bits else 4


def _variable_text(variable: Any) -> str:
    name = getattr(variable, "path", None) or getattr(variable, "name", "?")  # a saved value may be a tensor
    return f"{shown(str(name))} of shape {shape_text(_shape(variable))} ({size_text(_nbytes(variable))})"


# Config entries tf.keras 2.x writes that Keras 3 refuses, though they change nothing: ``groups: 1`` is
# the no-grouping default, and separable convolutions never use the ``kernel_*`` settings they inherit.
_ANY = object()
_NO_GROUPS = {"groups": 1}
_SEPARABLE = {"groups": 1, "kernel_initializer": _ANY, "kernel_regularizer": _ANY, "kernel_constraint": _ANY}
_LEGACY_LEFTOVERS: dict[str, dict[str, object]] = {
    name: leftovers
    for names, leftovers in (
        (("DepthwiseConv1D", "DepthwiseConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"), _NO_GROUPS),
        (("SeparableConv1D", "SeparableConv2D"), _SEPARABLE),
    )
    for name in names
}


def _without_legacy_leftovers(config: dict) -> dict | None:
    """The (already checked) config without tf.keras 2.x leftovers Keras 3 refuses; None if there were none."""
    changed = False

    def visit(node: object) -> None:
        nonlocal changed
        if isinstance(node, dict):
            inner = node.get("config")
            leftovers = _LEGACY_LEFTOVERS.get(str(node.get("class_name")), {})
            if isinstance(inner, dict):
                for key, value in leftovers.items():
                    if key in inner and (value is _ANY or inner[key] == value):
                        del inner[key]
                        changed = True
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(config)
    return config if changed else None


@contextlib.contextmanager
def _keras_readable_name(path: Path, replaced_config: dict | None = None) -> Iterator[str]:
    """A name ending in .h5 for the file: Keras picks its loader by the suffix, case-sensitively.

    With ``replaced_config``, a private copy of the file whose stored config is that one.
    """
    if replaced_config is None and path.name.endswith(_KERAS_SUFFIXES):
        yield str(path.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="model-") as folder:
        target = Path(folder) / "model.h5"
        if replaced_config is None:
            target.symlink_to(path.resolve())
        else:
            _copy_with_config(path, target, replaced_config)
        yield str(target)


def _copy_with_config(source: Path, target: Path, config: dict) -> None:
    import shutil

    import h5py

    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as h5:
        h5.attrs["model_config"] = json.dumps(config)


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message, without the config dumps Keras appends."""
    text = str(exc).strip()
    if "Exception encountered:" in text:  # Keras wraps the real reason after a dump of the config
        text = text.rsplit("Exception encountered:", 1)[1].strip()
    for cut in ("Full object config", "\n\nconfig=", "config={", "Received: config"):
        text = text.split(cut, 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return reason if len(reason) <= 300 else reason[:297] + "..."


# --- inputs and outputs -------------------------------------------------------------------------------


def describe_io(model: Any) -> tuple[Shape, list[Shape]]:
    """(input shape, output shapes) of a one-input model, e.g. ((None, 1024, 2048, 3), [(None, 1024, 2048, 19)])."""
    inputs = _shapes(model, "inputs")
    if len(inputs) != 1:
        raise SubmissionError(
            f"the model has {len(inputs)} inputs ({', '.join(map(_show, inputs))}); it must have one",
            _source_of(model),
            _INPUT_FIX,
        )
    return inputs[0], _shapes(model, "outputs")


def check_io(model: Any, path: Path | None = None) -> tuple[Shape, list[Shape]]:
    """Refuse a model whose input is not one (batch, H, W, 3) image or whose outputs are not (batch, H, W, C)."""
    path = path or _source_of(model)
    input_shape, output_shapes = describe_io(model)
    _check_input(input_shape, path)
    for index, shape in enumerate(output_shapes):
        _check_output(shape, index, len(output_shapes), input_shape, path)
    return input_shape, output_shapes


def _source_of(model: Any) -> Path | None:
    try:
        return _sources.get(model)
    except TypeError:  # not weakly referenceable or not hashable
        return None


def _shapes(model: Any, which: str) -> list[Shape]:
    try:
        tensors = list(getattr(model, which))
    except (AttributeError, ValueError, TypeError):
        tensors = []
    if not tensors:
        raise SubmissionError(
            f"the model has no defined {which} (an unbuilt Sequential model?)",
            _source_of(model),
            "Start the model with keras.Input((height, width, 3)) so that its shapes are saved.",
        )
    return [tuple(None if d is None else int(d) for d in tensor.shape) for tensor in tensors]


def _check_input(shape: Shape, path: Path | None) -> None:
    if len(shape) == 4 and shape[3] == 3:
        return
    hint = " (channels first?)" if len(shape) == 4 and shape[1] == 3 else ""
    raise SubmissionError(
        f"the model's input has shape {_show(shape)}{hint}; it must be (batch, height, width, 3)", path, _INPUT_FIX
    )


def _check_output(shape: Shape, index: int, count: int, input_shape: Shape, path: Path | None) -> None:
    which = "the model's output" if count == 1 else f"the model's output {index}"
    if len(shape) != 4:
        raise SubmissionError(
            f"{which} has shape {_show(shape)} (rank {len(shape)}); it must be (batch, height, width, classes)",
            path,
            _OUTPUT_FIX,
        )
    if shape[3] is None or _looks_channels_first(shape, input_shape):
        raise SubmissionError(
            f"{which} has shape {_show(shape)}, which looks channels first (batch, classes, height, width); "
            "it must be (batch, height, width, classes) with a known number of classes",
            path,
            _OUTPUT_FIX,
        )


def _looks_channels_first(shape: Shape, input_shape: Shape) -> bool:
    """The input's height and width sit at axes 2, 3 of the output (possibly scaled), not at axes 1, 2."""
    height, width = input_shape[1], input_shape[2]
    return not _same_aspect(shape[1], shape[2], height, width) and _same_aspect(shape[2], shape[3], height, width)


def _same_aspect(rows: int | None, cols: int | None, height: int | None, width: int | None) -> bool:
    """``rows x cols`` is ``height x width`` scaled by one factor, give or take a pixel of rounding."""
    if None in (rows, cols, height, width) or not rows or not cols:
        return False
    scale = width / cols
    return abs(height / scale - rows) <= 1.0


def _show(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


# --- activations --------------------------------------------------------------------------------------


def check_activation_sizes(
    model: Any, input_size: tuple[int, int] | None, batch_size: int, path: Path | None = None
) -> None:
    """Refuse a model any of whose activations, for the batches ingestion feeds it, exceeds MAX_ACTIVATION_BYTES.

    ``input_size`` is what ingestion resizes to (None: each image's own size, at most LARGEST_IMAGE). Shapes
    only: every layer's output spec is computed from KerasTensors, nothing is run. Call after ``check_io``.
    """
    import keras

    path = path or _source_of(model)
    height, width = input_size or LARGEST_IMAGE
    image = keras.KerasTensor((batch_size, height, width, model.inputs[0].shape[-1]), dtype="float32")
    context = (f"a batch of {batch_size} at {height}x{width}", _ACTIVATION_FIX)
    _check_activation(None, image.shape, image.dtype, path, context)
    try:
        _run_symbolically(model, image, lambda op, out: _check_activation(op, out.shape, out.dtype, path, context))
    except SubmissionError:
        raise
    except Exception:  # a shape Keras cannot infer for this size (predict will fail and say why): what is declared
        for layer, tensor in _declared_outputs(model):
            shape = (batch_size, *tensor.shape[1:])
            declared = (f"a batch of {batch_size}, as declared", _ACTIVATION_FIX)
            _check_activation(layer, shape, tensor.dtype, path, declared)


def _run_symbolically(model: Any, inputs: Any, visit: Any, done: dict | None = None) -> Any:
    """``model`` applied to KerasTensors layer by layer, nested models included; ``visit(layer, output)``.

    A nested model is run once per input shape (``done``): called twice at each of 24 levels, it would
    otherwise be run 2**24 times (a hang found by an attacker); its activations are the same each call.
    """
    import keras

    graph = _graph_of(model)
    if graph is None:
        raise ValueError("not a graph of layers")
    done = {} if done is None else done

    def operation_fn(operation: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if _graph_of(operation) is not None:
                key = (id(operation), _spec(args[0]))
                if key not in done:
                    done[key] = _run_symbolically(operation, args[0], visit, done)
                outputs = done[key]
            else:
                outputs = operation.compute_output_spec(*args, **kwargs)
            for tensor in keras.tree.flatten(outputs):
                visit(operation, tensor)
            return outputs

        return call

    return graph._run_through_graph(inputs, operation_fn=operation_fn)


def _spec(tensors: Any) -> tuple:
    import keras

    return tuple((tuple(tensor.shape), str(tensor.dtype)) for tensor in keras.tree.flatten(tensors))


def _graph_of(layer: Any) -> Any:
    """The Functional graph a model runs (a built Sequential's inner one), None for any other layer."""
    from keras.src.models.functional import Functional

    if isinstance(layer, Functional):
        return layer
    inner = getattr(layer, "_functional", None)
    return inner if isinstance(inner, Functional) else None


def _declared_outputs(model: Any) -> Iterator[tuple[Any, Any]]:
    """(layer, output) for every tensor of the model's graph as built from its config, nested models and
    operations (which ``model.layers`` leaves out) included."""
    import keras

    for tensor in model.inputs or []:
        yield None, tensor
    graph = _graph_of(model)
    for layer in graph.operations if graph is not None else model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in node.outputs:
                yield layer, tensor
        if isinstance(layer, keras.Model):
            yield from _declared_outputs(layer)


def _check_activation(layer: Any, shape: Any, dtype: object, path: Path | None, context: tuple[str, str]) -> None:
    """Refuse one activation over the cap; ``context`` is (for what input, the fix to suggest)."""
    dims = tuple(shape)
    if dims and dims[0] is None:
        dims = (1, *dims[1:])  # the batch, when the model leaves it open
    if any(d is None for d in dims):
        return  # not fixed by the model: bounded where the input size is known
    nbytes = math.prod(int(d) for d in dims) * _itemsize(dtype)
    if nbytes <= MAX_ACTIVATION_BYTES:
        return
    what = "the model's input" if layer is None else f"layer {shown(layer.name)} (class {type(layer).__name__})"
    scale, fix = context
    raise SubmissionError(
        f"{what} gives a tensor of shape {shape_text(dims)} ({size_text(nbytes)} of {dtype}) for {scale}, more "
        f"than the limit of {size_text(MAX_ACTIVATION_BYTES)} for one activation",
        path,
        fix,
    )
