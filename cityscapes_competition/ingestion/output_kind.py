"""Whether a model outputs probabilities or logits, read from its graph rather than guessed from numbers.

With ``scores: auto`` the ingestion must know whether to softmax the model's output. Sums of channels
are a poor witness: a mixed-precision model whose softmax runs in float16 sums to 1 only within 1.3e-3,
so a tolerance of 1e-3 took its probabilities for logits and softmaxed them again (instance confidences
fell from 0.51 to 0.08). The graph says it plainly: the output is probabilities when the last thing
that computes it is a softmax (a ``Softmax`` layer, a layer with ``activation="softmax"``, or Keras'
softmax operation), passed through only layers that keep a probability vector one (resizing,
upsampling, reshaping, cropping, casting, nested models). Where the graph does not say (an output
made by ``Add`` or ``Concatenate``), the numbers decide, with a tolerance that scales with the output's
precision.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

OutputKind = Literal["probabilities", "logits"]

# Layers whose output, at every pixel, is a copy, an interpolation or a cast of input vectors: a probability
# vector stays one (bilinear mixes of probability vectors are probability vectors).
_PASS_THROUGH = frozenset(
    {"UpSampling2D", "Resizing", "Reshape", "Permute", "Cropping2D", "Identity", "Activation:linear", "Cast"}
)
_SOFTMAX_OPERATIONS = frozenset({"Softmax"})  # keras.src.ops.nn.Softmax, and the layer of the same name
_MAX_STEPS = 10_000


def declared_output_kind(model: Any) -> OutputKind | None:
    """What the model's (single) output is according to its graph; None where the graph does not say."""
    try:
        tensor = model.outputs[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    for _ in range(_MAX_STEPS):
        operation = _producer(tensor)
        if operation is None:
            return None
        name = _kind_name(operation)
        if name in _SOFTMAX_OPERATIONS or name == "Activation:softmax" or _activation(operation) == "softmax":
            return "probabilities"
        inner = _nested_output(operation)
        if inner is not None:
            tensor = inner
            continue
        if name in _PASS_THROUGH:
            tensor = _single_input(operation, tensor)
            if tensor is None:
                return None
            continue
        return "logits" if _activation(operation) in ("linear", None) and _computes(operation) else None
    return None


def looks_like_probabilities(scores: np.ndarray, dtype: str | None) -> bool:
    """The numbers' verdict, for outputs whose graph does not say: non-negative, at most 1, summing to 1
    within what rounding at the output's precision allows (half a unit in the last place per channel)."""
    resolution = float(np.finfo(np.dtype(dtype)).eps) if dtype in ("float16", "bfloat16", "float32") else 1e-7
    if dtype == "bfloat16":
        resolution = 2.0**-7
    tolerance = max(1e-3, scores.shape[-1] * resolution)
    return bool(scores.min() >= 0 and scores.max() <= 1 + tolerance and np.allclose(scores.sum(-1), 1, atol=tolerance))


def _producer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return getattr(history, "operation", None) if history is not None else None


def _kind_name(operation: Any) -> str:
    name = type(operation).__name__
    if name == "Activation":
        return f"Activation:{_activation(operation)}"
    return name


def _activation(operation: Any) -> str | None:
    activation = getattr(operation, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def _computes(operation: Any) -> bool:
    """A layer whose output is its own computation (a convolution, a dense layer): logits when linear."""
    return type(operation).__name__ in {"Conv2D", "Conv2DTranspose", "Dense", "DepthwiseConv2D", "SeparableConv2D"}


def _nested_output(operation: Any) -> Any:
    """The output tensor inside a nested model (Functional or Sequential), to keep walking there."""
    outputs = getattr(operation, "outputs", None)
    if getattr(operation, "layers", None) is None or not outputs:
        return None
    return outputs[0] if len(outputs) == 1 else None


def _single_input(operation: Any, tensor: Any) -> Any:
    """The one input tensor of the node that produced ``tensor``."""
    history = tensor._keras_history
    try:
        node = operation._inbound_nodes[history.node_index]
    except (AttributeError, IndexError):
        return None
    inputs = list(getattr(node, "input_tensors", []) or [])
    return inputs[0] if len(inputs) == 1 else None
