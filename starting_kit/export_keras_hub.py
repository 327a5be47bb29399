"""Export a keras-hub SegFormer or DeepLabV3 image segmenter as a plain Keras model the competition accepts.

``python starting_kit/export_keras_hub.py SEGMENTER OUT.keras [--input-size H W]``

The competition refuses keras-hub models: keras-hub rebuilds them at load time by running its own Python
constructors on arguments stored in the file, which a submission may not make the server do. This script, run
on your own machine with keras-hub installed, rebuilds your segmenter as a functional model of built-in Keras
layers with the same weights:

- the image converter's scale and offset become a ``Rescaling`` layer at the start of the model, whose input is
  RGB 0..255 at the model's input size, exactly as the ingestion program feeds it;
- DeepLabV3's spatial pyramid pooling becomes its branches, a ``Resizing`` and a ``Concatenate``;
- SegFormer's MiT encoder: each patch embedding becomes padding, ``Conv2D``, ``Reshape`` and
  ``LayerNormalization``; each attention a ``MultiHeadAttention`` holding the query, key, value and output
  weights; each feed-forward ``Dense``, ``DepthwiseConv2D`` and the tanh approximation of GELU that keras-hub
  uses, from built-in layers; DropPath, the identity at inference, is left out;
- every other layer (convolutions, normalizations, the decoder...) is the segmenter's own built-in layer.

It then checks on random images that the exported model predicts what the keras-hub segmenter predicts (the
largest difference must stay within float32 rounding), saves OUT.keras, and loads it back with the
competition's own safe loader when the ``cityscapes_competition`` package is beside this script (as in the
starting kit). Nothing is saved unless every check passes. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED_SEGMENTERS = (
    "SegFormer (keras_hub.models.SegFormerImageSegmenter, with its MiT encoder) and "
    "DeepLabV3 (keras_hub.models.DeepLabV3ImageSegmenter, with a ResNet encoder)"
)
TESTED_KERAS_HUB = "0.32.0"
# The exported model computes what keras-hub computes, partly in another order (MultiHeadAttention's einsums,
# GELU from its formula): float32 rounding only. Measured: a SegFormer-B0 at 1024x1024 differs by 3e-6 in outputs
# of magnitude 3, i.e. 1e-6 relative; the small test models by 0 to 5e-7. A translation mistake (attention heads
# in the wrong order, a missing rescaling) differs by 1 or more. The tolerance, relative to the outputs'
# magnitude, leaves a hundredfold margin for deeper models.
RELATIVE_TOLERANCE = 1e-4
CHECK_IMAGES = 2
CHECK_SEED = 0
COMPETITION_CLASSES = (19, 34)  # trainId scores (the default), or labelId scores with 'output: labelIds'
_HERE = Path(__file__).resolve().parent

Tensor = Any  # a symbolic Keras tensor
Layer = Any  # a Keras layer or operation


class ExportError(Exception):
    """A problem the participant can fix; its text is the whole message shown."""


# --- the command line -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export_keras_hub.py",
        description=(
            "Rebuild a keras-hub SegFormer or DeepLabV3 image segmenter as a plain Keras model of built-in layers "
            "with the same weights, check that it predicts the same, and save it as a .keras file to submit."
        ),
    )
    parser.add_argument(
        "segmenter",
        help="the keras-hub segmenter: a .keras file saved with model.save(), or a keras-hub preset "
        "(a folder written by save_to_preset(), or a preset name, which keras-hub downloads)",
    )
    parser.add_argument("out", type=Path, help="the .keras file to write, the model you submit")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="height and width the exported model takes (the ingestion resizes each image to it); "
        "default: the segmenter's own input size. SegFormer needs H = W",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """0: exported and checked; 1: the segmenter could not be exported (one message says why)."""
    args = build_parser().parse_args(argv)
    _run_on_cpu_quietly()
    try:
        export(args.segmenter, args.out, tuple(args.input_size) if args.input_size else None)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_on_cpu_quietly() -> None:
    """Before Keras is imported: the check compares float32 results, and GPUs may multiply in TF32."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def export(source: str, out: Path, input_size: tuple[int, int] | None = None) -> Path:
    """Export the segmenter ``source`` to ``out`` as described in the module's docstring, printing each step."""
    if out.suffix != ".keras":
        raise ExportError(f"{out}: the exported model must be a .keras file (the Keras 3 format), e.g. model.keras")
    task = load_segmenter(source)
    size = input_size or segmenter_input_size(task)
    check_supported_size(task, size)
    loaded, task = task, segmenter_for_export(task, size)
    print(f"{source}: a {type(task).__name__}; the exported model takes {size[0]}x{size[1]} RGB images")
    if task is not loaded:
        print(f"keras-hub rebuilt it at {size[0]}x{size[1]} in float32, with the same weights, to compare with")
    if image_rescaling(task) is None:
        print(
            "Note: the segmenter has no image converter with a scale or offset, so the exported model gets the "
            "ingestion's RGB values 0..255 as they are. If you trained it on rescaled images, attach the image "
            "converter you trained with (segmenter.preprocessor) before exporting."
        )
    plain = to_functional(task)
    print(f"the plain model's layers, all built into Keras: {', '.join(layer_class_names(plain))}")
    images = random_images(size)
    check_same_predictions(task, plain, images)
    with _saved_atomically(out) as partial:
        plain.save(partial)
        loaded_safely = check_with_competition_loader(partial, images, plain.predict_on_batch(images))
    print(f"saved {out} ({out.stat().st_size / 1024**2:.1f} MB)")
    _print_next_steps(out, loaded_safely, plain.output.shape[-1])
    return out


@contextlib.contextmanager
def _saved_atomically(out: Path) -> Iterator[Path]:
    """A temporary ``.keras`` path beside ``out``, renamed to ``out`` only if the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial-{os.getpid()}.keras")
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _print_next_steps(out: Path, loaded_safely: bool, classes: int) -> None:
    if not loaded_safely:
        print(
            "The cityscapes_competition package was not found beside this script, so the competition's loader "
            "was not tried here; the checker below tries it."
        )
    else:
        print("The competition's safe loader (load_model_safely) accepts it, and it predicts the same.")
    if classes not in COMPETITION_CLASSES:
        print(
            f"Note: the model gives {classes} scores per pixel; the competition expects 19 (Cityscapes trainIds, "
            "the default) or 34 (labelIds, with 'output: labelIds' in the metadata)."
        )
    checker = _HERE / "check_submission.py"
    command = os.path.relpath(checker) if checker.is_file() else "starting_kit/check_submission.py"
    print(
        f"Next: put {out.name} and your metadata file (see starting_kit/README.md) in one folder, and check it "
        f"as the server will:\n  python {command} FOLDER"
    )


# --- loading the keras-hub segmenter --------------------------------------------------------------------


def import_keras_hub() -> Any:
    try:
        import keras_hub
    except ImportError:
        raise ExportError(
            f"keras-hub is not installed here: pip install keras-hub=={TESTED_KERAS_HUB} (this script runs on your "
            "machine, where you trained the segmenter)"
        ) from None
    return keras_hub


def load_segmenter(source: str) -> Any:
    """The keras-hub image segmenter in a ``.keras`` file, a preset folder or a preset name."""
    import keras

    keras_hub = import_keras_hub()
    path = Path(source)
    try:
        if path.suffix == ".keras":
            if not path.is_file():
                raise ExportError(f"{source}: no such file")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # notes about the saved training state, which predicting ignores
                task = keras.saving.load_model(path, compile=False)
        elif path.is_dir() or not path.suffix:
            task = keras_hub.models.ImageSegmenter.from_preset(source)
        else:
            raise ExportError(
                f"{source}: give the segmenter as a .keras file (segmenter.save('segmenter.keras')) or as a "
                "keras-hub preset folder (segmenter.save_to_preset(folder))"
            )
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{source}: keras-hub could not load it ({_first_line(exc)})") from None
    if not isinstance(task, keras_hub.models.ImageSegmenter):
        raise ExportError(
            f"{source}: holds a {type(task).__name__}, not a keras-hub image segmenter. Supported: "
            f"{SUPPORTED_SEGMENTERS}. A plain Keras model needs no export: check it with check_submission.py"
        )
    return task


def segmenter_input_size(task: Any) -> tuple[int, int]:
    """The (height, width) the segmenter was built for; refused if it takes any size."""
    shape = tuple(task.input.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ExportError(f"the segmenter's input has shape {shape}; the competition feeds (batch, height, width, 3)")
    height, width = shape[1:3]
    if height is None or width is None:
        raise ExportError(
            "the segmenter takes images of any size, but the exported model needs a fixed one: give it with "
            "--input-size H W (e.g. --input-size 512 1024; the ingestion resizes every image to it)"
        )
    return int(height), int(width)


def check_supported_size(task: Any, size: tuple[int, int]) -> None:
    """Refuse sizes the segmenter cannot run at, before keras-hub is asked to build it there."""
    height, width = size
    if height < 1 or width < 1:
        raise ExportError(f"--input-size {height} {width}: the height and width must be positive")
    if height != width and uses_mit_encoder(task):
        raise ExportError(
            f"keras-hub's MiT encoder (SegFormer) only works on square inputs: it lays each stage's N tokens out "
            f"as a sqrt(N) x sqrt(N) grid, so a {height}x{width} input would be scrambled or would not build. "
            f"Export at a square size, e.g. --input-size {max(size)} {max(size)}: the ingestion resizes each "
            "1024x2048 image to the model's input size"
        )


@functools.cache
def _mit_layer_classes() -> tuple[type, type]:
    try:
        from keras_hub.src.models.mit.mit_layers import HierarchicalTransformerEncoder, OverlappingPatchingAndEmbedding
    except ImportError:
        raise _unknown_keras_hub_version() from None
    return OverlappingPatchingAndEmbedding, HierarchicalTransformerEncoder


def uses_mit_encoder(task: Any) -> bool:
    return any(isinstance(layer, _mit_layer_classes()) for layer in task._flatten_layers(include_self=False))


def segmenter_for_export(task: Any, size: tuple[int, int]) -> Any:
    """The segmenter at ``size``, computing in float32: ``task`` itself when it already is, else rebuilt by
    keras-hub from its own config at that size with the same weights (its layers fix their sizes when built).
    Its image converter's resizing is set to ``size``: the images arrive already resized, as on the server."""
    import keras

    if _input_size(task) != size or not _computes_in_float32(task):
        config = keras.saving.serialize_keras_object(task)
        config.pop("compile_config", None)  # training settings: not needed to predict
        _set_image_shapes(config, size)
        _set_dtype_policies(config, "float32")  # the server runs on CPU, where float32 is fast and exact
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # for the layers keras-hub builds without a dtype argument
        try:
            rebuilt = keras.saving.deserialize_keras_object(config)
            rebuilt.set_weights(task.get_weights())
        except Exception as exc:
            raise ExportError(
                f"keras-hub could not rebuild the segmenter at {size[0]}x{size[1]} ({_first_line(exc)}); sizes "
                "whose sides are multiples of 32 work for SegFormer and DeepLabV3"
            ) from None
        finally:
            keras.config.set_dtype_policy(previous_policy)
        task = rebuilt
    converter = _image_converter(task)
    if converter is not None and converter.image_size is not None:
        converter.image_size = size
    return task


def _input_size(task: Any) -> tuple[int | None, int | None]:
    return tuple(task.input.shape[1:3])


def _computes_in_float32(task: Any) -> bool:
    return all(layer.compute_dtype == "float32" for layer in task._flatten_layers())


def _set_image_shapes(config: Any, size: tuple[int, int]) -> None:
    """Every ``image_shape`` (height, width, channels) in a serialized keras-hub model, set to ``size``."""
    for node in _dicts(config):
        shape = node.get("image_shape")
        if isinstance(shape, list | tuple) and len(shape) == 3:
            node["image_shape"] = [*size, shape[2]]


def _set_dtype_policies(config: Any, policy: str) -> None:
    """Every dtype policy (``"mixed_float16"`` or a serialized DTypePolicy) in a serialized model, set to ``policy``."""
    for node in _dicts(config):
        dtype = node.get("dtype")
        serialized_policy = isinstance(dtype, dict) and "DTypePolicy" in str(dtype.get("class_name"))
        if serialized_policy or dtype in _FLOAT_POLICIES:
            node["dtype"] = policy


_FLOAT_POLICIES = frozenset({"float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16"})


def _dicts(config: Any) -> Iterator[dict]:
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def _image_converter(task: Any) -> Any:
    return getattr(task.preprocessor, "image_converter", None) if task.preprocessor is not None else None


# --- the plain functional model ---------------------------------------------------------------------------


def to_functional(task: Any) -> Any:
    """A functional model of built-in Keras layers computing what ``task`` computes on RGB 0..255 images,
    preprocessing included; it shares the segmenter's layers and weights."""
    import keras

    height, width = _input_size(task)
    images = keras.Input((height, width, 3), name="image")  # RGB 0..255, resized to this size by the ingestion
    rescaling = image_rescaling(task)
    x = images if rescaling is None else keras.layers.Rescaling(*rescaling, name="preprocessing")(images)
    scores = _GraphReplay().apply(task, x)
    return keras.Model(images, scores, name=f"{task.name}_exported")


Numbers = float | list[float]  # global or per channel


def image_rescaling(task: Any) -> tuple[Numbers, Numbers] | None:
    """The image converter's (scale, offset), which it applies as ``x * scale + offset`` (as ``Rescaling``
    does); None if it has neither."""
    converter = _image_converter(task)
    if converter is None or (converter.scale is None and converter.offset is None):
        return None
    scale = 1.0 if converter.scale is None else converter.scale
    offset = 0.0 if converter.offset is None else converter.offset
    return _plain_numbers(scale), _plain_numbers(offset)


def _plain_numbers(value: Any) -> Numbers:
    """A scale or offset as plain floats (what the saved config holds), not a tuple or an array."""
    array = np.asarray(value, dtype="float32")
    return float(array) if array.ndim == 0 else [float(v) for v in array.reshape(-1)]


class _GraphReplay:
    """Applies a keras-hub model's layers to new symbolic tensors, replacing each model by its layers and each
    keras-hub layer by built-in ones; built-in layers are reused as they are, weights included."""

    def apply(self, op: Layer, *args: Any, **kwargs: Any) -> Any:
        import keras
        from keras.src.models.functional import Functional

        if isinstance(op, keras.Sequential):
            x = args[0]
            for layer in op.layers:
                x = self.apply(layer, x)
            return x
        if isinstance(op, Functional):  # keras-hub tasks and backbones are functional models underneath
            # Keras' own graph walk (what Functional.call runs), with each operation replaced by its replay.
            return op._run_through_graph(args[0], operation_fn=lambda inner: functools.partial(self.apply, inner))
        translation = _translations().get(type(op))
        if translation is not None:
            return translation(op, args[0], self)
        if _is_built_in(op):
            return op(*args, **kwargs)
        raise ExportError(
            f"the segmenter has a layer of class {type(op).__module__}.{type(op).__name__} ({op.name}), for which "
            f"this script knows no built-in Keras equivalent. Supported: {SUPPORTED_SEGMENTERS}"
        )


def _is_built_in(op: Layer) -> bool:
    """A Keras layer or operation class defined by Keras itself (keras.src.layers, keras.src.ops)."""
    return type(op).__module__.startswith(("keras.src.layers.", "keras.src.ops."))


Translation = Callable[[Layer, Tensor, _GraphReplay], Tensor]


@functools.cache
def _translations() -> dict[type, Translation]:
    """The keras-hub layers with a built-in equivalent, and the function that builds it."""
    try:
        from keras_hub.src.models.deeplab_v3.deeplab_v3_layers import SpatialPyramidPooling
    except ImportError:
        raise _unknown_keras_hub_version() from None
    patch_embedding, transformer_block = _mit_layer_classes()
    return {
        SpatialPyramidPooling: _spatial_pyramid_pooling,
        patch_embedding: _patch_embedding,
        transformer_block: _transformer_block,
    }


def _unknown_keras_hub_version() -> ExportError:
    keras_hub = import_keras_hub()
    return ExportError(
        f"keras-hub {keras_hub.__version__} does not define the layers this script translates; it was written for "
        f"keras-hub {TESTED_KERAS_HUB}: pip install keras-hub=={TESTED_KERAS_HUB}"
    )


def _spatial_pyramid_pooling(spp: Layer, x: Tensor, replay: _GraphReplay) -> Tensor:
    """DeepLabV3's atrous spatial pyramid pooling: parallel branches, the last one a global pooling that is
    resized back to the feature map, concatenated and projected."""
    from keras import layers

    if spp.channel_axis != -1:
        raise ExportError("the segmenter was built channels first; the competition feeds channels last images")
    branches = [replay.apply(branch, x) for branch in spp.aspp_parallel_channels]
    height, width = x.shape[1:3]
    branches[-1] = layers.Resizing(height, width, interpolation="bilinear", name=f"{spp.name}_pooling_resizing")(
        branches[-1]
    )
    merged = layers.Concatenate(axis=-1, name=f"{spp.name}_concatenate")(branches)
    return replay.apply(spp.projection, merged)


def _patch_embedding(embedding: Layer, x: Tensor, replay: _GraphReplay) -> Tensor:
    """MiT's overlapping patch embedding: a strided convolution whose grid becomes a token sequence."""
    from keras import layers

    grid = embedding.proj(embedding.padding(x))
    height, width, channels = grid.shape[1:]
    tokens = layers.Reshape((height * width, channels), name=f"{embedding.name}_tokens")(grid)
    return embedding.norm(tokens)


def _transformer_block(block: Layer, x: Tensor, replay: _GraphReplay) -> Tensor:
    """MiT's encoder block: x + attention(norm1(x)), then x + mix_ffn(norm2(x)); DropPath, the identity at
    inference, is left out."""
    from keras import layers

    x = layers.Add(name=f"{block.name}_attention_residual")([x, _attention(block.attn, block.norm1(x), block.name)])
    return layers.Add(name=f"{block.name}_ffn_residual")([x, _mix_ffn(block.mlp, block.norm2(x), block.name)])


def _attention(attention: Layer, x: Tensor, name: str) -> Tensor:
    """SegFormer's efficient attention as a MultiHeadAttention: keys and values come from the token grid
    shrunk by a strided convolution (sr_ratio > 1); queries from every token. Softmax scaling is the same,
    1/sqrt(key_dim)."""
    from keras import layers

    tokens, channels = x.shape[1:]
    heads = attention.num_heads
    key_dim = channels // heads
    keys = x
    if attention.sr_ratio > 1:
        side = _grid_side(tokens)
        grid = layers.Reshape((side, side, channels), name=f"{name}_attention_grid")(x)
        reduced = attention.sr(grid)
        reduced_tokens = reduced.shape[1] * reduced.shape[2]
        keys = attention.norm(layers.Reshape((reduced_tokens, channels), name=f"{name}_attention_reduced")(reduced))
    mha = layers.MultiHeadAttention(heads, key_dim, name=f"{name}_attention")
    attended = mha(x, keys, keys)  # (query, value, key); builds its weights, set below
    _copy_attention_weights(attention, mha, heads, key_dim)
    return attended


def _copy_attention_weights(attention: Layer, mha: Layer, heads: int, key_dim: int) -> None:
    """keras-hub's q, k, v, proj Dense layers hold all heads side by side (head h: features h*key_dim ...);
    MultiHeadAttention holds them per head: the same numbers, reshaped."""
    channels = heads * key_dim
    for source, target in (
        (attention.q, mha.query_dense),
        (attention.k, mha.key_dense),
        (attention.v, mha.value_dense),
    ):
        kernel, bias = source.get_weights()
        target.set_weights([kernel.reshape(channels, heads, key_dim), bias.reshape(heads, key_dim)])
    kernel, bias = attention.proj.get_weights()
    mha.output_dense.set_weights([kernel.reshape(heads, key_dim, kernel.shape[-1]), bias])


def _mix_ffn(ffn: Layer, x: Tensor, name: str) -> Tensor:
    """MiT's Mix-FFN: Dense, a 3x3 depthwise convolution over the token grid, GELU, Dense."""
    from keras import layers

    tokens = x.shape[1]
    side = _grid_side(tokens)
    hidden = ffn.fc1(x)
    channels = hidden.shape[-1]
    grid = layers.Reshape((side, side, channels), name=f"{name}_ffn_grid")(hidden)
    mixed = layers.Reshape((tokens, channels), name=f"{name}_ffn_tokens")(ffn.dwconv(grid))
    return ffn.fc2(gelu_tanh(mixed, f"{name}_ffn_gelu"))


def gelu_tanh(x: Tensor, name: str) -> Tensor:
    """keras.ops.gelu(x) as keras-hub calls it (approximate=True), from built-in layers:
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). The 'gelu' activation would be the exact (erf) one."""
    from keras import layers

    cube = layers.Multiply(name=f"{name}_cube")([x, x, x])
    inner = layers.Add(name=f"{name}_inner")([x, layers.Rescaling(0.044715, name=f"{name}_cube_scale")(cube)])
    tanh = layers.Activation("tanh", name=f"{name}_tanh")(
        layers.Rescaling(math.sqrt(2 / math.pi), name=f"{name}_inner_scale")(inner)
    )
    gate = layers.Rescaling(0.5, offset=0.5, name=f"{name}_gate")(tanh)  # (1 + tanh) / 2
    return layers.Multiply(name=name)([x, gate])


def _grid_side(tokens: int) -> int:
    """The side of MiT's square token grid (keras-hub takes sqrt(N) for both height and width)."""
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ExportError(
            f"an MiT stage has {tokens} tokens, not a square grid: keras-hub's SegFormer only works on square inputs"
        )
    return side


def layer_class_names(model: Any) -> list[str]:
    """The sorted class names of every layer inside ``model`` (nested layers included)."""
    return sorted({type(layer).__name__ for layer in model._flatten_layers(include_self=False)})


# --- checking ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How the exported model's outputs compare with the keras-hub segmenter's on the same images."""

    max_difference: float
    tolerance: float  # RELATIVE_TOLERANCE times the outputs' magnitude (at least 1)
    argmax_agreement: float  # the fraction of pixels whose highest-scoring class is the same

    @property
    def matches(self) -> bool:
        return self.max_difference <= self.tolerance

    def __str__(self) -> str:
        return (
            f"largest |difference| {self.max_difference:.2g} (tolerance {self.tolerance:.2g}), "
            f"same class at {100 * self.argmax_agreement:.2f}% of pixels"
        )


def check_same_predictions(task: Any, plain: Any, images: np.ndarray) -> None:
    """Refuse an exported model that does not predict what keras-hub's own pipeline predicts on ``images``."""
    comparison = compare(task.predict_on_batch(images), plain.predict_on_batch(images))  # preprocessor included
    print(f"checked on {len(images)} random images: {comparison}")
    if not comparison.matches:
        raise ExportError(
            f"the rebuilt model does not predict what the keras-hub segmenter predicts ({comparison}), so nothing "
            f"was saved. This script was written for keras-hub {TESTED_KERAS_HUB}: try that version"
        )


def random_images(size: tuple[int, int], count: int = CHECK_IMAGES, seed: int = CHECK_SEED) -> np.ndarray:
    """RGB values 0..255 as float32, as the ingestion feeds the model."""
    return np.random.default_rng(seed).uniform(0.0, 255.0, (count, *size, 3)).astype("float32")


def compare(expected: np.ndarray, got: np.ndarray) -> Comparison:
    expected, got = np.asarray(expected, "float64"), np.asarray(got, "float64")
    if expected.shape != got.shape:
        return Comparison(math.inf, 0.0, 0.0)
    scale = max(1.0, float(np.abs(expected).max()))
    agreement = float((expected.argmax(-1) == got.argmax(-1)).mean())
    return Comparison(float(np.abs(expected - got).max()), RELATIVE_TOLERANCE * scale, agreement)


def competition_package_root() -> Path | None:
    """The folder holding the cityscapes_competition package: beside this script or one level up (the kit's
    and the repository's layout), as check_submission.py finds it."""
    for root in (_HERE, _HERE.parent):
        if (root / "cityscapes_competition").is_dir():
            return root
    return None


def check_with_competition_loader(path: Path, images: np.ndarray, expected: np.ndarray) -> bool:
    """Load ``path`` as the server does and check its predictions; False if the package is not here to do it."""
    root = competition_package_root()
    if root is None:
        return False
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from cityscapes_competition.core.errors import SubmissionError
    from cityscapes_competition.ingestion.model_loading import check_io, load_model_safely

    try:
        model = load_model_safely(path)
        check_io(model, path)
    except SubmissionError as exc:  # its message names the temporary file: quote what it says about it
        reason = f"{exc.detail.rstrip('.')}. {exc.fix or ''}".strip()
        raise ExportError(
            f"the competition's loader refuses the exported model, so nothing was saved: {reason}"
        ) from None
    comparison = compare(expected, model.predict_on_batch(images))
    if not comparison.matches:
        raise ExportError(f"the exported model predicts differently once loaded back ({comparison}); nothing was saved")
    return True


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


if __name__ == "__main__":
    sys.exit(main())
