"""The baseline model: a small encoder-decoder for CPU inference, built from built-in Keras layers only.

It follows the contract of the ingestion program: one RGB input with values 0..255 (normalized
inside the model), one output of per-pixel class scores (logits, 19 channels in trainId order) at
a quarter of the input resolution, which the ingestion program upsamples bilinearly to the image
size before the argmax. No Lambda or custom layer, so it loads with ``safe_mode=True``.

Layout (input H x W, H and W multiples of 16)::

    Rescaling to [-1, 1]
    stem        3x3 conv stride 2, 24 channels                       1/2
    stage 1     separable block stride 2 (48), separable block (48)  1/4  -> skip
    stage 2     separable block stride 2 (96), 2 separable blocks    1/8
    stage 3     separable block stride 2 (128), separable blocks with dilation 2, 4, 8   1/16
    context     global average pooling -> 1x1 conv -> sigmoid gate on stage 3 (squeeze-excitation),
                plus the 1x1 projection of stage 3
    decoder     bilinear x4 to 1/4, concatenated with the 1/4 skip, 2 separable blocks (64)
    head        1x1 conv to ``num_classes`` logits                   1/4

A separable block is depthwise 3x3 -> BatchNorm -> ReLU -> pointwise 1x1 -> BatchNorm -> ReLU,
with a residual connection when the shapes agree.
"""

from __future__ import annotations

import keras
from keras import layers

NUM_CLASSES = 19
DEFAULT_INPUT_SIZE: tuple[int, int] = (256, 512)  # (height, width)
OUTPUT_STRIDE = 4  # the output has 1/4 of the input's height and width
_MULTIPLE = 16  # the deepest stage is at 1/16


# Keras' default momentum of 0.99 leaves the moving statistics far from the batch statistics after the
# few hundred steps of a CPU training run; 0.9 follows them within tens of steps.
_BN_MOMENTUM = 0.9


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, name=name)


def _conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _separable_block(x, filters: int, name: str, stride: int = 1, dilation: int = 1):
    """Depthwise 3x3 (optionally strided or dilated) and pointwise 1x1, each with BatchNorm and ReLU."""
    shortcut = x
    y = layers.DepthwiseConv2D(
        3, strides=stride, dilation_rate=dilation, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    y = _bn(f"{name}_dw_bn")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(y)
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(y)
    y = _bn(f"{name}_pw_bn")(y)
    if stride == 1 and shortcut.shape[-1] == filters:
        y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu")(y)


def build_baseline_model(
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE, num_classes: int = NUM_CLASSES, name: str = "baseline"
) -> keras.Model:
    """The baseline network for inputs of ``input_size`` = (height, width), both multiples of 16.

    Output: ``num_classes`` logits per pixel at (height / 4, width / 4), channels last.
    """
    height, width = (int(v) for v in input_size)
    if height % _MULTIPLE or width % _MULTIPLE or height <= 0 or width <= 0:
        raise ValueError(f"input_size must be two positive multiples of {_MULTIPLE}, got {input_size}")
    inputs = keras.Input(shape=(height, width, 3), dtype="float32", name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)

    x = _conv_bn_relu(x, 24, 3, 2, "stem")  # 1/2
    x = _separable_block(x, 48, "s1_down", stride=2)  # 1/4
    skip = _separable_block(x, 48, "s1_b1")

    x = _separable_block(skip, 96, "s2_down", stride=2)  # 1/8
    x = _separable_block(x, 96, "s2_b1")
    x = _separable_block(x, 96, "s2_b2")

    x = _separable_block(x, 128, "s3_down", stride=2)  # 1/16
    for dilation in (2, 4, 8):
        x = _separable_block(x, 128, f"s3_d{dilation}", dilation=dilation)

    # Context: a gate from the globally pooled features (broadcast over the image by Multiply).
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="ctx_pool")(x)
    gate = layers.Conv2D(128, 1, activation="sigmoid", name="ctx_gate")(pooled)
    x = layers.Multiply(name="ctx_apply")([x, gate])
    x = _conv_bn_relu(x, 64, 1, 1, "ctx_proj")

    x = layers.UpSampling2D(size=4, interpolation="bilinear", name="up4")(x)  # 1/4
    s = _conv_bn_relu(skip, 32, 1, 1, "skip_proj")
    x = layers.Concatenate(name="fuse")([x, s])
    x = _separable_block(x, 64, "dec_b1")
    x = _separable_block(x, 64, "dec_b2")
    outputs = layers.Conv2D(num_classes, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
