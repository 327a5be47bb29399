"""Reading the PNGs of the Cityscapes formats, safely.

Every read checks the header before any pixel is decoded: a file that is not a PNG, has the
wrong size or an unsupported mode is refused, so a decompression bomb never inflates.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserFacingError

# Two-dimensional modes whose pixel values numpy reads as they are.
_SINGLE_CHANNEL_MODES = {"L", "P", "1", "I;16", "I;16B", "I;16L", "I"}
Size = tuple[int, int]  # (width, height), as Pillow reports it

# No legitimate Cityscapes image is larger; anything above is refused before decoding.
MAX_PIXELS = 4096 * 2048


class PngReadError(Exception):
    """A PNG could not be used; the message says why (the caller names the file)."""


def open_png(path: Path, expected_size: Size | None) -> Image.Image:
    """Open a PNG and check its header; pixels are not decoded yet."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PngReadError(f"is not a readable image ({_short(exc)})") from None
    if image.format != "PNG":
        image.close()
        raise PngReadError(f"is a {image.format} file, not a PNG")
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise PngReadError(f"is {width}x{height} pixels, larger than any Cityscapes image")
    if expected_size is not None and image.size != expected_size:
        image.close()
        raise PngReadError(f"is {width}x{height} pixels but the ground truth is {expected_size[0]}x{expected_size[1]}")
    return image


def read_single_channel(path: Path, expected_size: Size | None = None) -> np.ndarray:
    """The pixel values of a one-channel PNG (labelIds, instanceIds, disparity)."""
    image = open_png(path, expected_size)
    with image:
        if image.mode not in _SINGLE_CHANNEL_MODES:
            raise PngReadError(f"has {len(image.getbands())} channels (mode {image.mode}); one channel is needed")
        return _decode(image, lambda img: np.asarray(img))


def read_mask(path: Path, expected_size: Size | None = None) -> np.ndarray:
    """An instance mask as the official evaluation sees it: nonzero after conversion to 8-bit gray."""
    image = open_png(path, expected_size)
    with image:
        if image.mode in ("1", "L"):
            return _decode(image, lambda img: np.asarray(img)) != 0
        return _decode(image, lambda img: np.asarray(img.convert("L"))) != 0


def _decode(image: Image.Image, convert) -> np.ndarray:
    try:
        return convert(image)
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise PngReadError(f"is corrupt or truncated ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def describe(path: Path, error: PngReadError, error_type: type[UserFacingError], fix: str) -> UserFacingError:
    return error_type(str(error), path, fix)
