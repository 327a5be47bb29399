"""Loading a participant's Keras ``.h5`` model safely, on CPU, and checking its inputs and outputs.

The file's config is checked first (``model_safety``: built-in Keras objects only); then Keras loads it
with ``safe_mode=True``, ``compile=False`` and no custom objects. Any failure is one ``SubmissionError``.
Keras (hence TensorFlow) is imported only inside these functions, so importing the package stays light.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SubmissionError
from .model_safety import check_model_config, saved_with

if TYPE_CHECKING:
    import keras

Shape = tuple[int | None, ...]

_KERAS_SUFFIXES = (".h5", ".hdf5")  # what keras.models.load_model recognizes, case-sensitively
_LOAD_FIX = (
    'Save the model with model.save("model.h5") using Keras 3 (or tf.keras 2.x) and built-in layers only, '
    'and check that keras.models.load_model("model.h5", compile=False) loads it.'
)
_LEGACY_FIX = (
    "Keras 3 cannot rebuild every tf.keras 2.x layer: build the same model with Keras 3, copy the weights with "
    'model.load_weights("old.h5"), and save it again with model.save("model.h5").'
)
_INPUT_FIX = (
    "Give the model exactly one input for a batch of RGB images, channels last: "
    "keras.Input((height, width, 3)) or keras.Input((None, None, 3))."
)
_OUTPUT_FIX = (
    "Make every output per-pixel class scores of shape (batch, height, width, classes), channels last "
    "(data_format='channels_last', the Keras default)."
)
_sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its file, for messages


def configure_tensorflow() -> None:
    """Quiet TensorFlow's C++ logs and hide GPUs unless the organiser chose devices; before its import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_keras() -> Any:
    """Keras with the TensorFlow backend on CPU; the start-up chatter TensorFlow prints is swallowed."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    configure_tensorflow()
    with _stderr_swallowed():
        import keras
    return keras


@contextlib.contextmanager
def _stderr_swallowed() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; show what it caught only if the block fails."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error at all: nothing to swallow
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_model_safely(path: Path) -> keras.Model:
    """The model in ``path``, once its config is known to name only built-in Keras objects."""
    config = check_model_config(path)
    keras = import_keras()
    try:
        with _keras_readable_name(path, _without_legacy_leftovers(config)) as name, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notes about the participant's code, not actionable here
            model = keras.models.load_model(name, compile=False, safe_mode=True)
    except Exception as exc:  # anything Keras raises is the file's fault here: the config was valid JSON
        saved = saved_with(path)
        origin = f" (the file was saved with {saved})" if saved else ""
        fix = _LEGACY_FIX if saved.startswith(("Keras 1.", "Keras 2.")) else _LOAD_FIX
        raise SubmissionError(
            f"could not be loaded by Keras {keras.__version__}{origin}: {short_reason(exc)}", path, fix
        ) from None
    if not isinstance(model, keras.Model):
        raise SubmissionError(f"holds a {type(model).__name__}, not a Keras model", path, _LOAD_FIX)
    with contextlib.suppress(TypeError):
        _sources[model] = path
    return model


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
    import json
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
