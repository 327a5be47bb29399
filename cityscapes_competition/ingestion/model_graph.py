"""The graph a model config describes, checked on the JSON before Keras rebuilds it.

Keras rebuilds a functional model from its config by calling each layer on the outputs of the layers it
names (``functional_from_config``). Three shapes of config make that step itself harmful, whatever the
layers are:
- **A call on no tensor of the model.** A node whose arguments hold only numbers (``Full`` of shape
  40000x32000, ``Arange(1.5e9)``, an ``UpSampling2D`` of a constant) is computed for real while loading:
  gigabytes, or a crash inside TensorFlow, from a 7 KB file. A model saved by Keras never has one (an
  operation on constants is folded into a constant when the model is built), so every call must take at
  least one tensor of the model.
- **Layers listed out of order.** Keras makes one pass over the layers per round and retries every call
  whose inputs are not built yet, deserializing its arguments each time: 600 layers listed backwards
  made that quadratic (minutes). The rounds are replayed here on the names alone (no deserialization)
  and a config that needs more than a few is refused: Keras lists layers in the order it built them,
  so a saved model needs one round, two with shared layers.
- **Nesting that multiplies.** A nested model called twice at each of 24 levels is 2**24 layer calls
  per image: loading it is quick, but checking its activations or predicting is not. The calls the
  model makes per image, counted through every nested model, are capped. A ``shared_object_id`` stub
  (Keras returns the object already built under that id, whatever the rest of the dict says) counts as
  the model it stands for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.errors import SubmissionError, shown

MAX_LAYERS = 20_000  # in one functional model; the largest keras.applications models have about 800
MAX_CALLS_PER_IMAGE = 50_000  # layer calls through every nested model; large real models make a few thousand
MAX_REBUILD_ROUNDS = 8  # rounds of Keras' rebuilding loop; a config Keras saved needs one or two
MAX_NODE_VALUES = 100_000  # values inside one call's arguments, looked at while searching its tensors

FIX = 'Save the model again with model.save("model.keras") from the code that built it.'


def check_graph(config: dict, path: Path) -> None:
    """Refuse a model config whose rebuilding or running would be harmful in itself (module docstring)."""
    _Counter(path, _shared_models(config)).calls(config)


def _shared_models(config: dict) -> dict[Any, dict]:
    """The model configs that carry a ``shared_object_id``, by id: what a stub with that id stands for."""
    shared: dict[Any, dict] = {}
    stack, seen = [config], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_NODE_VALUES * 50:  # the config walk (model_safety) caps the whole document already
            break
        if isinstance(value, dict):
            key = value.get("shared_object_id")
            if _layers_of(value) is not None and isinstance(key, (int, str)) and not isinstance(key, bool):
                shared.setdefault(key, value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return shared


class _Counter:
    """Layer calls per image of each (nested) model, with each functional graph's checks on the way."""

    def __init__(self, path: Path, shared: dict[Any, dict]) -> None:
        self.path = path
        self.shared = shared
        self.known: dict[int, int] = {}  # id(model config) -> calls; a nested config is counted once

    def calls(self, model: Any) -> int:
        layers = _layers_of(model)
        if layers is None:
            key = model.get("shared_object_id") if isinstance(model, dict) else None
            stands_for = self.shared.get(key) if isinstance(key, (int, str)) and not isinstance(key, bool) else None
            return 1 if stands_for is None or stands_for is model else self.calls(stands_for)
        if id(model) in self.known:
            return self.known[id(model)]
        if len(layers) > MAX_LAYERS:
            raise SubmissionError(f"holds a model of {len(layers)} layers, more than {MAX_LAYERS}", self.path, FIX)
        functional = model.get("class_name") != "Sequential"
        nodes = {_name(layer): _nodes(layer) for layer in layers} if functional else {}
        if functional:
            for name, layer_nodes in nodes.items():
                for node in layer_nodes:
                    _check_takes_a_tensor(node, name, self.path)
            _replay_rebuilding(layers, nodes, self.path)
        for layer in layers:
            _check_bounded_cost(layer, self.path)
        total = 0
        for layer in layers:
            called = max(1, len(nodes.get(_name(layer), ()))) if functional else 1
            total += called * self.calls(layer)
            if total > MAX_CALLS_PER_IMAGE:
                raise SubmissionError(
                    f"makes more than {MAX_CALLS_PER_IMAGE} layer calls per image through its nested models "
                    f"(at {shown(_name(layer), 60)})",
                    self.path,
                    "Call each nested model fewer times, or flatten it into one functional model.",
                )
        self.known[id(model)] = total
        return total


def _layers_of(model: Any) -> list | None:
    if not isinstance(model, dict):
        return None
    inner = model.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    return layers if isinstance(layers, list) else None


def _name(layer: Any) -> str:
    if not isinstance(layer, dict):
        return "?"
    name = layer.get("name")
    if not isinstance(name, str) and isinstance(layer.get("config"), dict):
        name = layer["config"].get("name")
    return name if isinstance(name, str) else "?"


def _nodes(layer: Any) -> list:
    nodes = layer.get("inbound_nodes") if isinstance(layer, dict) else None
    return nodes if isinstance(nodes, list) else []


def _references(node: Any) -> list[tuple[str, int]]:
    """(layer name, node index) of every tensor a call takes: Keras 3's ``__keras_tensor__`` markers, or the
    ``[name, node_index, tensor_index, kwargs]`` lists of tf.keras' legacy format."""
    if isinstance(node, list):  # legacy: a list of [name, node_index, tensor_index, kwargs]
        return [
            (entry[0], entry[1])
            for entry in node
            if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], str) and _index(entry[1])
        ]
    found = []
    for value in _values(node):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history") if isinstance(value.get("config"), dict) else None
            if isinstance(history, list) and len(history) >= 2 and isinstance(history[0], str) and _index(history[1]):
                found.append((history[0], history[1]))
    return found


def _index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _values(node: Any) -> Iterator[Any]:
    """Every value inside a call's arguments, at most MAX_NODE_VALUES of them (the walk is lazy)."""
    stack, seen = [node], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_NODE_VALUES:
            return
        yield value
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _check_bounded_cost(layer: Any, path: Path) -> None:
    """Two calls whose cost no check before predicting can see: ``where(condition)`` with one argument (its
    output's length is the number of true values: an outer product of it took 4.3 GB from a 17 KB file), and
    a recurrent layer with ``unroll=True`` (one copy of its step per time step, built at the first
    prediction: an hour for an RNN over a 1000x1000 image's pixels)."""
    if not isinstance(layer, dict):
        return
    name = shown(_name(layer), 60)
    if layer.get("class_name") == "Where" and any(_one_argument_where(node) for node in _nodes(layer)):
        raise SubmissionError(
            f"layer {name} is where(condition) with one argument: its output's size is the number of true "
            "values, which no check can bound before predicting",
            path,
            "Use where(condition, x, y), whose output has the shape of its inputs.",
        )
    if any(key == "unroll" and value is True for key, value in _items(layer.get("config"))):
        raise SubmissionError(
            f"layer {name} unrolls its recurrence (unroll=True): one copy of the step per time step, built at "
            "the first prediction",
            path,
            "Build the layer with unroll=False (the default) and save the model again.",
        )


def _one_argument_where(node: Any) -> bool:
    if not isinstance(node, dict):
        return False  # the legacy format records no operation calls
    args, kwargs = node.get("args"), node.get("kwargs")
    args = args if isinstance(args, list) else []
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    given = [*args[1:3], kwargs.get("x1"), kwargs.get("x2")]
    return sum(value is not None for value in given) < 2


def _items(config: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) of a layer's config, nested configs (a Bidirectional's layer) included; bounded."""
    stack, seen = [config], 0
    while stack and seen < MAX_NODE_VALUES:
        value = stack.pop()
        seen += 1
        if isinstance(value, dict):
            yield from value.items()
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _check_takes_a_tensor(node: Any, layer: str, path: Path) -> None:
    if not _references(node):
        raise SubmissionError(
            f"layer {shown(layer, 60)} is called on no tensor of the model, only on constants: Keras would "
            "compute it for real while loading the model",
            path,
            FIX,
        )


def _replay_rebuilding(layers: list, nodes: dict[str, list], path: Path) -> None:
    """Keras' rebuilding loop on names alone: each round goes over the layers in order and builds every call
    of a layer, in order, whose input calls are built; refuse what needs too many rounds or never ends."""
    built = {name: 0 if layer_nodes else 1 for name, layer_nodes in nodes.items()}  # an input layer is built
    waiting = {name: list(layer_nodes) for name, layer_nodes in nodes.items() if layer_nodes}
    for _ in range(MAX_REBUILD_ROUNDS):
        if not waiting:
            return
        progress = False
        for layer in layers:
            name = _name(layer)
            pending = waiting.get(name)
            while pending and all(index < built.get(source, 0) for source, index in _references(pending[0])):
                pending.pop(0)
                built[name] += 1
                progress = True
            if not pending:
                waiting.pop(name, None)
        if not progress:
            break
    if waiting:
        stuck = next(iter(waiting))
        raise SubmissionError(
            f"lists its layers so that Keras could not rebuild it in {MAX_REBUILD_ROUNDS} rounds (layer "
            f"{shown(stuck, 60)} waits for inputs listed after it, or for ones that never come)",
            path,
            FIX,
        )
