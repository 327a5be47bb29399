"""Refusing a Keras model that names code, before Keras deserializes anything.

A legacy ``.h5`` model holds its architecture as JSON in the root attribute ``model_config``; a Keras 3
``.keras`` archive holds it in ``config.json`` (read out of the archive by ``model_files``). Keras turns
that JSON into objects by looking names up: layer classes, operation classes, initializers, activations,
and, for ``Lambda`` layers, marshalled Python bytecode. Here the JSON is read with h5py or from the archive
alone and every object it names is checked against allowlists derived from Keras itself (its public
layers, initializers, regularizers, constraints, activations and dtype policies; the operation classes of
``keras.src.ops`` that functional models record for ``x / 255.0``, ``x[..., :3]`` or ``keras.ops.*``, by
module and class, less those that call a function they are given; and the few layers keras.applications
defines for its own models), so that only built-in Keras objects ever reach Keras. An operation's call
arguments must be data (tensors, numbers, arrays, slices). Anything else (Lambda and tf.keras op layers,
custom classes, registered names, modules outside Keras, function references, dotted paths such as
``os.system``) is refused with one message naming the layer. A ``.keras`` config's ``compile_config``
(optimizer, loss, metrics: never needed for inference, often a participant's own loss function) is dropped
first, at every level, so neither this check nor Keras ever sees it.

The weights the file stores are described from HDF5 metadata alone (names, shapes, dtypes; never the data,
which may be compressed: a small file can declare a dataset of many gigabytes), so that ``model_loading``
can compare them with the variables the config declares before Keras allocates any: for ``.h5`` the
``model_weights`` group Keras' legacy loader reads, for ``.keras`` the ``<object path>/vars/<index>``
datasets of ``model.weights.h5`` that ``saving_lib``'s ``H5IOStore.get`` finds.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SubmissionError, shown
from .model_files import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, WEIGHTS_MEMBER, is_keras_archive
from .model_graph import check_graph

MAX_DEPTH = 200
MAX_CONFIG_VALUES = 5_000_000  # a layer's config holds a few dozen values; 10,000 layers fit many times over
MAX_HDF5_OBJECTS = 200_000
_FIRST_READ_BYTES = 1024**2  # most configs fit; bigger ones are read again with the full limit
# What the weights may take in memory, uncompressed: as much as the model file may hold, since Keras never
# compresses what it saves. Anything beyond comes from a compressed or edited file, never from model.save().
MAX_WEIGHT_BYTES = MAX_MODEL_BYTES
MAX_NAME_LIST_BYTES = 16 * 1024**2  # a 'layer_names'/'weight_names' attribute: 64 KB per chunk in Keras' files

MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# Built-in layers that run code or read files named in their config; never accepted.
REFUSED_LAYERS = frozenset(
    {
        "TFSMLayer",  # loads a TensorFlow SavedModel (a graph of arbitrary ops) from a path
        "TorchModuleWrapper",  # unpickles a torch module
        "JaxLayer",  # wraps Python functions
        "FlaxLayer",
        "StringLookup",  # read a vocabulary file named in the config
        "IntegerLookup",
        "TextVectorization",
        "IndexLookup",
        "Layer",  # bare base classes: only ever the parent of a custom layer
        "Wrapper",
    }
)
# Wrappers around Python functions or TensorFlow ops (Lambda, tf.keras TFOpLambda/SlicingOpLambda, TF1 op layers).
_CODE_LAYER = re.compile(r"Lambda|OpLayer")
# Where Keras 3 defines the operations a functional model records (keras/src/ops/*.py); configs name their module.
OPERATION_PACKAGE = "keras.src.ops"
# Operation classes of that package that are never accepted, and why. None of them reads a file or touches the
# network (nothing in keras/src/ops or in the TensorFlow backend's implementations opens a file or a socket, or
# wraps Python in a py_function); these are refused for what else they do.
_CALLS_A_FUNCTION = "it calls a function it is given, which would come from the file"
_BASE_CLASS = "it is a base class, not an operation of its own"
_UNBOUNDED_OUTPUT = "the size of its output is a value the model computes, which no check can bound"
REFUSED_OPERATIONS: dict[str, str] = {
    **dict.fromkeys(  # core.Map, Scan, AssociativeScan, Cond, Switch, WhileLoop, ForiLoop, VectorizedMap; linalg.JVP
        ("AssociativeScan", "Cond", "ForiLoop", "JVP", "Map", "Scan", "Switch", "VectorizedMap", "WhileLoop"),
        _CALLS_A_FUNCTION,
    ),
    # Operation does nothing of its own, Function is a whole graph (nested models are Functional layers),
    # SegmentReduction is the parent of the segment operations.
    **dict.fromkeys(("Function", "Operation", "SegmentReduction"), _BASE_CLASS),
    # The output's length is the largest input value (or segment id) plus one, or the number of values that
    # pass a test (Nonzero, Unique): unknown until predict time, so no activation check sees what follows
    # (an outer product of Nonzero's indices took 4.3 GB from a 17 KB file, then crashed TensorFlow).
    **dict.fromkeys(
        ("Bincount", "SegmentMax", "SegmentMin", "SegmentProd", "SegmentSum", "Nonzero", "Unique"),
        _UNBOUNDED_OUTPUT,
    ),
}
APPLICATIONS_PACKAGE = "keras.src.applications"  # its modules define a few layers of their own (ConvNeXt's LayerScale)
# Markers Keras uses for plain data inside configs.
DATA_MARKERS = frozenset(
    {
        "__keras_tensor__",
        "__tuple__",
        "__ellipsis__",
        "__numpy__",
        "__tensor__",
        "__bytes__",
        "__slice__",
        "TensorShape",
    }
)
# Markers Keras turns into arrays with np.array(value, dtype) or convert_to_tensor(value, dtype).
_ARRAY_MARKERS = frozenset({"__numpy__", "__tensor__"})
_ARRAY_DTYPES = frozenset(
    {"bool", "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16"}
    | {"uint32", "uint64"}
)
# Keys under which a dict is a layer (its name is used in messages).
_LAYER_KEYS = frozenset({"layers", "layer", "cell", "cells", "forward_layer", "backward_layer"})
# Keys whose strings are names of layers or tensors, never looked up as code.
_NAME_KEYS = frozenset({"name", "inbound_nodes", "input_layers", "output_layers", "keras_history"})
# Keys that only ever hold Python code or where to import it from.
_CODE_KEYS = frozenset({"function", "function_type", "output_shape_module", "closure", "code"})
_DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_FUNCTION_MODULES = frozenset({"builtins", "keras.activations"})

FIX = (
    "Use only built-in Keras layers; put preprocessing such as normalization into Rescaling/Normalization "
    "layers; no Lambda, no custom layers or functions."
)
_MALFORMED_FIX = (
    'Save the model again with model.save("model.keras") (Keras 3) or model.save("model.h5") (tf.keras 2.x).'
)
KERAS_FORMAT_FIX = (
    'Save the model with model.save("model.keras") (the Keras 3 format, which records where each operation comes '
    "from) and submit that file instead of the .h5."
)

Json = Any


@dataclass(frozen=True)
class Allowlists:
    """Names of built-in Keras objects, derived from the installed Keras."""

    layers: frozenset[str]
    initializers: frozenset[str]
    regularizers: frozenset[str]
    constraints: frozenset[str]
    activations: frozenset[str]
    dtype_policies: frozenset[str]
    operations: frozenset[tuple[str, str]]  # (module, class) of keras.src.ops operations
    application_layers: frozenset[tuple[str, str]]  # (module, class) of layers keras.applications defines

    @property
    def objects(self) -> frozenset[str]:
        return self.layers | self.initializers | self.regularizers | self.constraints | self.dtype_policies

    def keras_format_only(self, class_name: str) -> str | None:
        """What a class is that Keras finds only through the module a ``.keras`` config records (legacy ``.h5``
        configs record none, and Keras' h5 loader looks names up among the layers only); None for others."""
        if class_name in self.layers:
            return None
        if any(name == class_name for _, name in self.operations):
            return "a Keras operation (such as x / 255.0, x[..., :3] or keras.ops.relu(x) on a Keras tensor)"
        if any(name == class_name for _, name in self.application_layers):
            return "a layer that keras.applications defines for its own models (ConvNeXt's LayerScale...)"
        return None

    def family(self, key: str) -> tuple[str, frozenset[str]] | None:
        """The kind of object a config key holds (``kernel_initializer`` holds an initializer), if known."""
        for suffix, label, names in (
            ("initializer", "initializer", self.initializers),
            ("regularizer", "regularizer", self.regularizers),
            ("constraint", "constraint", self.constraints),
        ):
            if key == suffix or key.endswith("_" + suffix):
                return label, names
        return None


@functools.cache
def allowlists() -> Allowlists:
    """Built once per process from Keras' own namespaces (importing Keras, i.e. TensorFlow)."""
    from .keras_runtime import import_keras

    keras = import_keras()
    from keras.src import layers as legacy_layer_namespace  # what Keras 3 resolves tf.keras 2.x names in
    from keras.src.ops.operation import Operation

    layer_base = keras.layers.Layer
    layers = _class_names(layer_base, keras.layers, legacy_layer_namespace) | MODEL_CLASSES | {"InputLayer"}
    return Allowlists(
        layers=frozenset(n for n in layers if n not in REFUSED_LAYERS and not _CODE_LAYER.search(n)),
        initializers=_family(keras.initializers, keras.initializers.Initializer, "keras.src.initializers"),
        regularizers=_family(keras.regularizers, keras.regularizers.Regularizer, "keras.src.regularizers"),
        constraints=_family(keras.constraints, keras.constraints.Constraint, "keras.src.constraints"),
        activations=_activation_names(keras),
        dtype_policies=frozenset(_class_names(keras.dtype_policies.DTypePolicy, keras.dtype_policies)),
        operations=frozenset(
            found
            for found in _classes_defined_in(OPERATION_PACKAGE, Operation)
            if found[1] not in REFUSED_OPERATIONS and not issubclass(_class_of(found), layer_base)
        ),
        application_layers=_classes_defined_in(APPLICATIONS_PACKAGE, layer_base),
    )


def _classes_defined_in(package_name: str, base: type) -> frozenset[tuple[str, str]]:
    """(module, class name) of every public subclass of ``base`` defined in a module of the package, as
    Keras' deserializer finds it (``vars(importlib.import_module(module))[class_name]``)."""
    import importlib
    import pkgutil

    package = importlib.import_module(package_name)
    found: set[tuple[str, str]] = set()
    for module_info in pkgutil.iter_modules(package.__path__, package_name + "."):
        if module_info.name.endswith("_test"):  # Keras ships its tests beside the modules
            continue
        module = importlib.import_module(module_info.name)  # already imported by keras: Keras' own code
        for name, obj in vars(module).items():
            defined_here = inspect.isclass(obj) and obj.__module__ == module.__name__ and name == obj.__name__
            if defined_here and issubclass(obj, base) and not name.startswith("_") and not _CODE_LAYER.search(name):
                found.add((module.__name__, name))
    return frozenset(found)


def _class_of(found: tuple[str, str]) -> type:
    import importlib

    return vars(importlib.import_module(found[0]))[found[1]]


def _class_names(base: type, *namespaces: object) -> set[str]:
    """Every name (exported alias and class name) of a subclass of ``base`` in the namespaces."""
    names: set[str] = set()
    for namespace in namespaces:
        for name, obj in vars(namespace).items():
            if inspect.isclass(obj) and issubclass(obj, base) and not name.startswith("_"):
                names.update({name, obj.__name__})
    return names


def _family(public: object, base: type, source_module: str) -> frozenset[str]:
    """Class names of a family, plus the string identifiers its ``get()`` accepts (``glorot_uniform``)."""
    import importlib

    names = _class_names(base, public)
    identifiers = getattr(importlib.import_module(source_module), "ALL_OBJECTS_DICT", {})
    names.update(n for n, obj in identifiers.items() if inspect.isclass(obj) and issubclass(obj, base))
    bases = {n for n, obj in [*vars(public).items(), *identifiers.items()] if obj is base}
    return frozenset(names - bases - {base.__name__})


def _activation_names(keras: Any) -> frozenset[str]:
    from keras.src import activations

    identifiers = getattr(activations, "ALL_OBJECTS_DICT", None)
    if identifiers is None:  # older Keras: the public functions
        identifiers = {n: f for n, f in vars(keras.activations).items() if inspect.isfunction(f)}
        identifiers = {n: f for n, f in identifiers.items() if n not in {"get", "serialize", "deserialize"}}
    return frozenset(n for n, f in identifiers.items() if callable(f))


# --- reading the file ---------------------------------------------------------------------------------


def check_model_config(path: Path) -> dict:
    """The ``.h5`` model's JSON config, after refusing anything in it that is not a built-in Keras object."""
    return _checked(_parse(read_model_config(path), path), path)


def check_keras_config(text: str, path: Path) -> dict:
    """A ``.keras`` archive's ``config.json`` (its text, read out of ``path``), without its compile configs,
    after refusing anything in it that is not a built-in Keras object."""
    config = _parse(text, path)
    _drop_compile_configs(config)
    return _checked(config, path)


def _checked(config: Json, path: Path) -> dict:
    _check_root(config, path)
    checker = _Checker(allowlists(), path)
    for value, site in _walk(config, path):
        checker.check(value, site)
    check_graph(config, path)
    return config


def _drop_compile_configs(config: Json) -> None:
    """Remove ``compile_config`` from every serialized object: Keras nulls the model's own with compile=False,
    but would still compile a nested model from its one (deserialize_keras_object)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                node.pop("compile_config", None)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def read_model_config(path: Path) -> str:
    """The ``model_config`` attribute's text, read with h5py only and bounded in size."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            check_self_contained(h5, path)
            if "model_config" not in h5.attrs:
                raise _weights_only(path, _saved_with(h5))
            raw = _read_bounded_attribute(h5, "model_config", path)
    except SubmissionError:
        raise
    except Exception as exc:
        reason = _first_line(exc)
        raise SubmissionError(f"could not be read as a Keras model file ({reason})", path, _MALFORMED_FIX) from None
    return raw


def check_self_contained(h5: Any, path: Path, where: str = "") -> None:
    """Refuse links and datasets whose data lives in other files.

    HDF5 lets a dataset keep its bytes in any file of the host (external storage) or in other HDF5 files
    (virtual datasets, external links): loading such "weights" would read files the model must never see,
    such as the hidden ground truth.
    """
    import h5py

    found: list[str] = []
    seen = [0]

    def visit(name: str, link: Any) -> bool | None:
        seen[0] += 1
        if found or seen[0] > MAX_HDF5_OBJECTS:
            return True  # stops the walk: a file of millions of links would take minutes to finish
        if isinstance(link, h5py.ExternalLink):
            found.append(f"'{name}' is a link to another file ({link.filename})")
        elif isinstance(link, h5py.HardLink) and isinstance(h5[name], h5py.Dataset):
            plist = h5[name].id.get_create_plist()
            if plist.get_external_count() > 0:
                found.append(f"the dataset '{name}' keeps its data in an external file")
            elif plist.get_layout() == h5py.h5d.VIRTUAL:
                found.append(f"the dataset '{name}' is a virtual dataset reading other files")

    h5.visititems_links(visit)
    if seen[0] > MAX_HDF5_OBJECTS:
        raise _malformed(path, f"it holds more than {MAX_HDF5_OBJECTS} HDF5 objects; a model holds a few thousand")
    if found:
        raise SubmissionError(
            f"is not self-contained: {where}{found[0][:300]}",
            path,
            f"A model file must hold all its data: save it again with {save_call(path)}.",
        )


def save_call(path: Path) -> str:
    """How to save the model again in the format of ``path``, for messages."""
    return 'model.save("model.keras")' if is_keras_archive(path) else 'model.save("model.h5")'


def saved_with(path: Path) -> str:
    """``Keras 2.21.0, backend tensorflow`` from the file's attributes, for messages (empty if absent)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return _saved_with(h5)
    except Exception:
        return ""


def _saved_with(h5: Any) -> str:
    version = _small_text(h5.attrs.get("keras_version"))[:50]
    backend = _small_text(h5.attrs.get("backend"))[:50]
    return ", ".join(p for p in (f"Keras {version}" if version else "", f"backend {backend}" if backend else "") if p)


def _weights_only(path: Path, saved: str) -> SubmissionError:
    return SubmissionError(
        "holds only weights, no model architecture (no 'model_config')" + (f"; saved with {saved}" if saved else ""),
        path,
        'Save the whole model with model.save("model.keras") (or model.save("model.h5")), not model.save_weights().',
    )


def _read_bounded_attribute(h5: Any, name: str, path: Path) -> str:
    """Read a string attribute, never more than MAX_CONFIG_BYTES into Python."""
    import h5py

    attr = h5py.h5a.open(h5.id, name.encode())
    kind = attr.get_type()
    if not isinstance(kind, h5py.h5t.TypeStringID) or attr.shape not in ((), (1,)):
        raise SubmissionError(f"has a '{name}' attribute that is not a text string", path, _MALFORMED_FIX)
    if not kind.is_variable_str():
        if kind.get_size() > MAX_CONFIG_BYTES:
            raise _too_big(path)
        return _small_text(h5.attrs[name]) or ""
    for limit in (_FIRST_READ_BYTES, MAX_CONFIG_BYTES + 1):
        data = _read_prefix(attr, limit)
        if len(data) < limit:
            return data.decode("utf-8")
    raise _too_big(path)


def _read_prefix(attr: Any, limit: int) -> bytes:
    """A variable-length string attribute converted by HDF5 to at most ``limit`` bytes."""
    import h5py

    memory_type = h5py.h5t.C_S1.copy()
    memory_type.set_size(limit)
    out = np.zeros(attr.shape, dtype=f"S{limit}")
    attr.read(out, mtype=memory_type)
    return out.reshape(-1)[0] if out.ndim else out[()]


def _small_text(value: object) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", errors="replace")
    return value[:10_000_000] if isinstance(value, str) else ""


def _too_big(path: Path) -> SubmissionError:
    return SubmissionError(
        f"has a model configuration larger than {MAX_CONFIG_BYTES // 1024**2} MB; it is malformed",
        path,
        _MALFORMED_FIX,
    )


def _parse(text: str, path: Path) -> Json:
    try:
        return json.loads(text)
    except RecursionError:
        raise _malformed(path, f"the model configuration is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise _malformed(path, f"the model configuration is not valid JSON ({_first_line(exc)})") from None


def _check_root(config: Json, path: Path) -> None:
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict | list):
        raise _malformed(path, "the model configuration is not a Keras model configuration")
    class_name = config.get("class_name")
    if _from_keras_hub(config):
        raise SubmissionError(
            f"holds a keras-hub model ({shown(config.get('registered_name') or class_name)}): keras-hub rebuilds "
            "such a model at load time by running its own Python constructors on arguments stored in the file "
            "(a few bytes can make thousands of layers), so it is not accepted",
            path,
            KERAS_HUB_FIX,
        )
    if class_name not in MODEL_CLASSES:
        raise SubmissionError(
            f"holds a model of class {str(class_name)[:100]!r}, not a Keras Functional or Sequential model "
            "(a subclassed or custom model class)",
            path,
            "Build the model with the functional API or keras.Sequential. " + FIX,
        )


KERAS_HUB_FIX = (
    "Rebuild it as a plain functional model of built-in Keras layers with the same weights, which loads: the "
    "starting kit's export_keras_hub.py does it for SegFormer and DeepLabV3 segmenters "
    "(python export_keras_hub.py segmenter.keras model.keras)."
)


def _from_keras_hub(config: dict) -> bool:
    names = (config.get("module"), config.get("registered_name"), config.get("class_name"))
    return any(isinstance(name, str) and name.startswith(("keras_hub", "keras_nlp", "keras_cv")) for name in names)


def _malformed(path: Path, reason: str) -> SubmissionError:
    return SubmissionError(f"is malformed: {reason}", path, _MALFORMED_FIX)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- walking the config -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Where a value sits in the config, and in which layer."""

    where: str  # JSON path such as config.layers[3].config.activation
    key: str | None  # the dict key it sits under (list items inherit their list's key)
    layer: tuple[str, str]  # (name, class) of the innermost enclosing layer
    depth: int
    arguments: bool = False  # inside a layer's or operation's call arguments (its inbound nodes)

    def child(self, key: str) -> Site:
        arguments = self.arguments or key == "inbound_nodes"
        return Site(f"{self.where}.{key}", key, self.layer, self.depth + 1, arguments)

    def item(self, index: int) -> Site:
        return Site(f"{self.where}[{index}]", self.key, self.layer, self.depth + 1, self.arguments)


def _walk(config: Json, path: Path) -> Iterator[tuple[Json, Site]]:
    """Every value of the config with its site, parents before children, in document order.

    Lazy: a container's children are visited through a generator, so memory grows with the depth, not with
    the length of a list (24 million items once took 6.8 GB as sites made all at once); their count is capped.
    """
    name = _layer_name(config)
    root = Site("model_config", None, (name, str(config["class_name"])), 0)
    stack: list[Iterator[tuple[Json, Site]]] = [iter([(config, root)])]
    visited = 0
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        value, site = entry
        visited += 1
        if visited > MAX_CONFIG_VALUES:
            raise _malformed(path, f"the model configuration holds more than {MAX_CONFIG_VALUES} values")
        if site.depth > MAX_DEPTH:
            raise _malformed(path, f"the model configuration is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            site = _enter(value, site)
        yield value, site
        if isinstance(value, dict):
            stack.append(_dict_children(value, site))
        elif isinstance(value, list):
            stack.append(_list_children(value, site))


def _dict_children(value: dict, site: Site) -> Iterator[tuple[Json, Site]]:
    return ((child, site.child(str(key))) for key, child in value.items())


def _list_children(value: list, site: Site) -> Iterator[tuple[Json, Site]]:
    return ((child, site.item(index)) for index, child in enumerate(value))


def _enter(value: dict, site: Site) -> Site:
    """The site for a dict's children: a layer dict becomes the enclosing layer."""
    if site.depth == 0 or (site.key in _LAYER_KEYS and "class_name" in value):
        layer = (_layer_name(value), str(value.get("class_name"))[:100])
        return Site(site.where, site.key, layer, site.depth, site.arguments)
    return site


def _layer_name(value: dict) -> str:
    name = value.get("name")
    if not isinstance(name, str) and isinstance(value.get("config"), dict):
        name = value["config"].get("name")
    return name[:100] if isinstance(name, str) else "?"


class _Checker:
    """The rules, applied to each value of the config with its site."""

    def __init__(self, allowed: Allowlists, path: Path):
        self.allowed, self.path = allowed, path

    def check(self, value: Json, site: Site) -> None:
        if isinstance(value, dict):
            self._check_dict(value, site)
        elif isinstance(value, str):
            self._check_string(value, site)

    def refuse(self, site: Site, problem: str, fix: str = FIX) -> SubmissionError:
        name, class_name = site.layer
        raise SubmissionError(f"layer '{name}' (class {class_name}): {problem} (at {site.where})", self.path, fix)

    def _check_dict(self, value: dict, site: Site) -> None:
        for key in _CODE_KEYS.intersection(value):
            self.refuse(site, f"its config has a '{key}' entry, which holds Python code")
        class_name = value.get("class_name")
        if class_name is None:
            self._check_module(value, site, None)
            return
        if not isinstance(class_name, str):
            self.refuse(site, f"'class_name' is {class_name!r}, not a class name")
        if site.arguments and class_name not in DATA_MARKERS:
            self.refuse(site, f"a call argument is a '{class_name[:100]}' object; call arguments must be data")
        if site.depth == 0 or site.key in _LAYER_KEYS:
            self._check_layer_class(class_name, site, value.get("module"))
        else:
            self._check_object_class(class_name, value, site)
        self._check_module(value, site, class_name)
        self._check_registered_name(value, site, class_name)

    def _check_layer_class(self, class_name: str, site: Site, module: object = None) -> None:
        if class_name == "Lambda":
            self.refuse(site, "a Lambda layer runs Python code stored in the file")
        if _CODE_LAYER.search(class_name):
            self.refuse(
                site,
                "tf.keras stores a TensorFlow operation applied directly to a Keras tensor (such as x * 2, x[..., 0] "
                "or tf.image.resize(x, size)) as this layer, which runs code named in the file; use Keras layers "
                "instead (Rescaling, Resizing, Multiply, Cropping2D...)",
            )
        if class_name in REFUSED_LAYERS:
            self.refuse(site, f"{class_name} layers load code or files named in the model; they are not accepted")
        if isinstance(module, str) and module.startswith(OPERATION_PACKAGE + "."):
            self._check_operation(module, class_name, site)
        elif (module, class_name) not in self.allowed.application_layers and class_name not in self.allowed.layers:
            kind = self.allowed.keras_format_only(class_name)
            if kind is not None:
                self.refuse(
                    site,
                    f"'{class_name}' is {kind}, which Keras 3 rebuilds only from the .keras format",
                    KERAS_FORMAT_FIX,
                )
            self.refuse(site, f"'{class_name[:100]}' is not a built-in Keras layer (a custom layer?)")

    def _check_operation(self, module: str, class_name: str, site: Site) -> None:
        if (module, class_name) in self.allowed.operations:
            return
        why = REFUSED_OPERATIONS.get(class_name, "no such operation")
        self.refuse(site, f"'{module[:100]}.{class_name[:100]}' is not an accepted Keras operation: {why}")

    def _check_object_class(self, class_name: str, value: dict, site: Site) -> None:
        if class_name in _ARRAY_MARKERS:
            self._check_array_dtype(value, site)
            return
        if class_name in DATA_MARKERS:
            return
        if class_name == "function":
            self._check_function(value, site)
            return
        if class_name in self.allowed.layers or _CODE_LAYER.search(class_name) or class_name in REFUSED_LAYERS:
            self._check_layer_class(class_name, site)  # a layer used as an activation or nested in a layer
            return
        family = self.allowed.family(site.key or "")
        if family is not None and class_name not in family[1]:
            self.refuse(site, f"'{site.key}' is '{class_name[:100]}', not a built-in Keras {family[0]}")
        if class_name not in self.allowed.objects:
            self.refuse(site, f"'{site.key}' names '{class_name[:100]}', which is not a built-in Keras object")

    def _check_array_dtype(self, value: dict, site: Site) -> None:
        """An array marker becomes ``np.array(value, dtype)``: a dtype such as '(20000,20000)f4' or 'V1000000000'
        makes each element gigabytes, so only plain numeric dtypes are data."""
        config = value.get("config")
        dtype = config.get("dtype") if isinstance(config, dict) else None
        if dtype not in _ARRAY_DTYPES:
            self.refuse(
                site, f"an array of dtype {shown(dtype)} is not plain numbers ({', '.join(sorted(_ARRAY_DTYPES))})"
            )

    def _check_function(self, value: dict, site: Site) -> None:
        """Only the serialized form of a built-in activation, ``{class_name: function, config: "relu"}``."""
        name, module = value.get("config"), value.get("module")
        if module not in _FUNCTION_MODULES or not isinstance(name, str) or name not in self.allowed.activations:
            shown = f"{module}.{name}" if module and module != "builtins" else str(name)
            self.refuse(site, f"'{site.key}' is a reference to the function '{shown[:100]}', not a Keras activation")

    def _check_module(self, value: dict, site: Site, class_name: str | None) -> None:
        module = value.get("module")
        if module is None:
            return
        if not isinstance(module, str):
            self.refuse(site, f"'module' is {module!r}, not a module name")
        if module == "builtins" and class_name == "function":
            return
        if module != "keras" and not module.startswith("keras."):
            what = f"'{class_name[:100]}'" if class_name else "an object"
            if module.split(".", 1)[0] == "tf_keras":
                self.refuse(
                    site,
                    f"{what} comes from tf.keras 2.x ('{module[:100]}'): Keras 3 cannot load a .keras file that "
                    "tf.keras wrote",
                    'Save the tf.keras 2.x model with model.save("model.h5") and submit that file.',
                )
            self.refuse(site, f"{what} comes from the module '{module[:100]}', which is not part of Keras")

    def _check_registered_name(self, value: dict, site: Site, class_name: str) -> None:
        registered = value.get("registered_name")
        allowed = {None, class_name} | ({"function", value.get("config")} if class_name == "function" else set())
        if registered not in allowed:
            self.refuse(site, f"registered name '{str(registered)[:100]}' marks a custom object")

    def _check_string(self, value: str, site: Site) -> None:
        key = site.key or ""
        if key in _NAME_KEYS or key in {"module", "registered_name", "class_name"}:
            return
        if key.endswith("activation") and value not in self.allowed.activations:
            self.refuse(site, f"activation '{value[:100]}' is not a built-in Keras activation")
        family = self.allowed.family(key)
        if family is not None and value not in family[1]:
            self.refuse(site, f"'{key}' is '{value[:100]}', not a built-in Keras {family[0]}")
        if _DOTTED_PATH.fullmatch(value) and value.split(".", 1)[0] != "keras":
            self.refuse(site, f"'{key}' is '{value[:100]}', a reference to Python code outside Keras")


# --- the stored weights -------------------------------------------------------------------------------

BIG_WEIGHTS_FIX = (
    f"Use a smaller model (fewer or narrower layers): its weights may take at most "
    f"{MAX_WEIGHT_BYTES / 1024**3:.0f} GB in memory, as much as a model file may hold."
)


@dataclass(frozen=True)
class StoredWeight:
    """One weight as the file stores it, from HDF5 metadata: its dataset, shape and size once read."""

    name: str  # the dataset's path in the file
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class StoredLayer:
    name: str
    weights: tuple[StoredWeight, ...]


@dataclass(frozen=True)
class StoredWeights:
    """What Keras reads from a legacy ``.h5`` file's ``model_weights`` group when loading it."""

    layers: tuple[StoredLayer, ...]  # layers with weights, in the file's order: Keras matches them by position
    top_level: tuple[StoredWeight, ...] | None  # the model's own weights, if the file has that group

    def all(self) -> list[StoredWeight]:
        return [w for layer in self.layers for w in layer.weights] + list(self.top_level or ())


def read_stored_weights(path: Path) -> StoredWeights:
    """The weights Keras would read from ``path``, described without reading any; their total is capped."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            stored = _stored_weights(_child(h5, "model_weights", h5py.Group, path), path)
    except SubmissionError:
        raise
    except Exception as exc:
        reason = _first_line(exc)
        raise SubmissionError(f"could not be read as a Keras model file ({reason})", path, _MALFORMED_FIX) from None
    _check_stored_total(stored, path)
    return stored


def _stored_weights(root: Any, path: Path) -> StoredWeights:
    """Mirrors Keras' ``load_weights_from_hdf5_group``: the same names, looked up the same way."""
    import h5py

    layers = []
    for name in _name_list(root, "layer_names", path):
        group = _child(root, name, h5py.Group, path)
        weights = tuple(_stored_weight(group, weight, path) for weight in _name_list(group, "weight_names", path))
        if weights:
            layers.append(StoredLayer(name, weights))
    top_level = None
    if "top_level_model_weights" in root:
        group = _child(root, "top_level_model_weights", h5py.Group, path)
        top_level = tuple(_stored_weight(group, weight, path) for weight in _name_list(group, "weight_names", path))
    return StoredWeights(tuple(layers), top_level)


def _name_list(node: Any, name: str, path: Path) -> list[str]:
    """A list attribute as Keras reads it: ``name``, else its chunks ``name0``, ``name1``...; bounded in size."""
    import h5py

    names: list[str] = []
    stored_bytes = 0
    for key in _chunk_keys(node.attrs, name):
        stored_bytes += _storage_size(h5py.h5a.open(node.id, key.encode()))
        if stored_bytes > MAX_NAME_LIST_BYTES or len(names) > MAX_HDF5_OBJECTS:
            raise _malformed(path, f"the attribute {shown(key)} of {shown(node.name)} is absurdly large")
        for item in node.attrs[key]:  # iterated as Keras does (a scalar string would go by character)
            item = item.decode("utf8") if hasattr(item, "decode") else item
            if not isinstance(item, str):
                raise _malformed(path, f"the attribute {shown(key)} of {shown(node.name)} is not a list of names")
            names.append(item)
    return names


def _storage_size(attribute: Any) -> int:
    try:
        return int(attribute.get_storage_size())
    except Exception:  # HDF5 reports an empty attribute's size of 0 as an error
        return 0


def _chunk_keys(attrs: Any, name: str) -> Iterator[str]:
    if name in attrs:
        yield name
        return
    index = 0
    while index < MAX_HDF5_OBJECTS and f"{name}{index}" in attrs:
        yield f"{name}{index}"
        index += 1


def _child(parent: Any, name: str, kind: type, path: Path) -> Any:
    """``parent[name]`` as Keras' ``safe_get_h5_group``/``_dataset`` find it: through hard links only."""
    import h5py

    node = parent
    for part in name.split("/"):
        link = node.get(part, getlink=True) if part and isinstance(node, h5py.Group) else None
        if not isinstance(link, h5py.HardLink):
            where = f"{parent.name.rstrip('/')}/{name}"
            raise _malformed(path, f"the weights name {shown(where)}, which is missing from the file (or is a link)")
        node = node[part]
    if not isinstance(node, kind):
        raise _malformed(path, f"{shown(node.name)} is not an HDF5 {kind.__name__.lower()}")
    return node


def _stored_weight(group: Any, name: str, path: Path) -> StoredWeight:
    import h5py

    return _described(_child(group, name, h5py.Dataset, path), path)


def _described(dataset: Any, path: Path) -> StoredWeight:
    shape, dtype = dataset.shape, dataset.dtype  # metadata: nothing is read or decompressed
    bfloat16 = dtype.kind == "V" and dtype.itemsize == 2 and _small_text(dataset.attrs.get("dtype")) == "bfloat16"
    if shape is None or (dtype.kind not in "biuf" and not bfloat16):
        raise _malformed(path, f"the weight {shown(dataset.name)} holds {dtype} values of shape {shape}, not numbers")
    return StoredWeight(dataset.name, tuple(int(d) for d in shape), math.prod(shape) * dtype.itemsize)


def _check_stored_total(stored: StoredWeights, path: Path) -> None:
    weights = stored.all()
    total = sum(w.nbytes for w in weights)
    if total > MAX_WEIGHT_BYTES:
        largest = max(weights, key=lambda w: w.nbytes)
        raise SubmissionError(
            f"stores weights that take {size_text(total)} once read (uncompressed), more than the limit of "
            f"{size_text(MAX_WEIGHT_BYTES)}; the largest is {shown(largest.name)} of shape {shape_text(largest.shape)} "
            f"({size_text(largest.nbytes)})",
            path,
            BIG_WEIGHTS_FIX,
        )


def size_text(nbytes: int) -> str:
    """``2.0 GB``, ``12.5 MB``, ``608 bytes`` (binary units)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def shape_text(shape: tuple[int | None, ...]) -> str:
    """``(8, 19)``: a shape for messages, cut if a config made it absurdly long."""
    text = "(" + ", ".join("None" if d is None else str(d) for d in shape[:8]) + (", ..." if len(shape) > 8 else "")
    return text + ("," if len(shape) == 1 else "") + ")"


# --- the stored weights of a .keras archive -----------------------------------------------------------------

_LEGACY_LAYERS_GROUP = "_layer_checkpoint_dependencies"  # where tf.keras 2.13-2.15 stored the layers' groups


@dataclass(frozen=True)
class StoredGroup:
    """One object's ``vars`` group of ``model.weights.h5``: what Keras' ``H5IOStore.get`` returns for it."""

    name: str  # the group's path in the file
    keys: tuple[str, ...]  # every entry, as Keras counts them against the object's variables
    weights: dict[str, StoredWeight]  # the entries that are datasets (the others Keras refuses to read)


def read_keras_weights(weights: Path, objects: list[str], path: Path) -> dict[str, StoredGroup | None]:
    """The stored weights of each object path (``layers/conv2d``; ``""`` for the model) in ``weights``, the
    ``model.weights.h5`` copied out of the archive ``path``, described without reading any; None where the
    file has no group for it. The file is first checked to read no other file; the total is capped."""
    import h5py

    try:
        with h5py.File(weights, "r") as h5:
            check_self_contained(h5, path, f"in its {WEIGHTS_MEMBER}, ")
            groups = {name: _keras_vars_group(h5, name, path) for name in objects}
    except SubmissionError:
        raise
    except Exception as exc:
        reason = _first_line(exc)
        raise SubmissionError(
            f"has a {WEIGHTS_MEMBER} that could not be read ({reason})", path, _MALFORMED_FIX
        ) from None
    layers = tuple(StoredLayer(g.name, tuple(g.weights.values())) for g in groups.values() if g is not None)
    _check_stored_total(StoredWeights(layers, None), path)
    return groups


def _keras_vars_group(h5: Any, name: str, path: Path) -> StoredGroup | None:
    """Mirrors ``H5IOStore.get``: ``<name>/vars`` through hard links only (Keras refuses other links), with the
    tf.keras 2.13 fallback of ``layers`` renamed."""
    import h5py

    if name and not _has_path(h5, name) and _LEGACY_LAYERS_GROUP in h5:
        name = name.replace("layers", _LEGACY_LAYERS_GROUP)
    node = _hard_linked(h5, f"{name}/vars" if name else "vars", path)
    if node is None:
        return None
    if not isinstance(node, h5py.Group):
        raise _malformed(path, f"{shown(node.name)} in its {WEIGHTS_MEMBER} is not an HDF5 group")
    keys = tuple(node.keys())
    weights = {}
    for key in keys:
        if not isinstance(node.get(key, getlink=True), h5py.HardLink):
            where = f"{node.name}/{key}"
            raise _malformed(path, f"{shown(where)} in its {WEIGHTS_MEMBER} is a link, which Keras refuses to read")
        if isinstance(node[key], h5py.Dataset):
            weights[key] = _described(node[key], path)
    return StoredGroup(node.name, keys, weights)


def _has_path(h5: Any, name: str) -> bool:
    """``name in h5``, as Keras asks it (links were checked to stay inside the file)."""
    import h5py

    node = h5
    for part in name.split("/"):
        if not isinstance(node, h5py.Group) or not part or part not in node:
            return False
        node = node[part]
    return True


def _hard_linked(parent: Any, name: str, path: Path) -> Any:
    """``parent[name]`` through hard links only; None if a part is missing; a soft link is refused."""
    import h5py

    node = parent
    for part in name.split("/"):
        if not isinstance(node, h5py.Group) or part not in node:
            return None
        if not isinstance(node.get(part, getlink=True), h5py.HardLink):
            where = f"{node.name.rstrip('/')}/{part}"
            raise _malformed(path, f"{shown(where)} in its {WEIGHTS_MEMBER} is a link, which Keras refuses to read")
        node = node[part]
    return node
