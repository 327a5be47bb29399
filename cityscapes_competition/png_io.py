"""Reading the PNGs of the Cityscapes formats, safely and fast.

Every read checks the header before any pixel is decoded: a file that is not a PNG, is too large
or has the wrong size is refused, so a decompression bomb never inflates. Grayscale and 8-bit RGB
images go through ``fast_png``; everything else through Pillow, which the official evaluation
uses, so both paths give the official pixel values.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .fast_png import (
    PngFormatError,
    count_chunks,
    decode_grayscale,
    decode_rgb,
    nonzero_bitmask_rows,
    read_header,
)
from .untrusted_files import MissingFileError, SentFolder, UntrustedFileError, read_untrusted

Size = tuple[int, int]  # (width, height), as Pillow reports it

MAX_PIXELS = 4096 * 2048  # no legitimate Cityscapes image is larger
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_MAX_CHUNKS_BASE = 1000  # plus one per 2 KB of file: libpng writes 8 KB IDAT chunks, OpenCV one to five
MAX_FILE_BYTES = 64 * 1024 * 1024
_SINGLE_CHANNEL_MODES = {"L", "P", "1", "I;16", "I;16B", "I;16L", "I"}
_GRAYSCALE = 0
_RGB = 2


class PngReadError(Exception):
    """A PNG could not be used; the message says why (the caller names the file)."""


class PngMissingError(PngReadError):
    """There is no file at the path."""


def read_single_channel(
    path: Path | str, expected_size: Size | None = None, folder: SentFolder | None = None
) -> np.ndarray:
    """The pixel values of a one-channel PNG (labelIds, instanceIds, disparity), as numpy reads Pillow's.

    ``folder``: the folder a participant's file must lie in (``untrusted_files``).
    """
    return decode_single_channel(_read_bytes(path, folder), expected_size)


def decode_single_channel(data: bytes, expected_size: Size | None = None) -> np.ndarray:
    """The same, from the file's bytes."""
    depth, color_type = _check_header(data, expected_size)
    if color_type == _GRAYSCALE and depth in (1, 8, 16):
        pixels = _fast(decode_grayscale, data)
        if pixels is not None:
            return pixels
    with _pillow(data) as image:
        if image.mode not in _SINGLE_CHANNEL_MODES:
            raise PngReadError(f"has {len(image.getbands())} channels (mode {image.mode}); one channel is needed")
        return _decode(lambda: np.asarray(image))


def read_rgb(path: Path | str) -> np.ndarray:
    """The (height, width, 3) uint8 pixels of a photo, any PNG colour type converted to RGB as Pillow does."""
    return decode_photo(_read_bytes(path))[0]


def decode_photo(data: bytes) -> tuple[np.ndarray, bool]:
    """The same from the file's bytes, and whether ``fast_png`` read them (else Pillow did)."""
    depth, color_type = _check_header(data, None)
    if color_type == _RGB and depth == 8:
        pixels = _fast(decode_rgb, data)
        if pixels is not None:
            return pixels, True
    with _pillow(data) as image:
        return _decode(lambda: np.asarray(image if image.mode == "RGB" else image.convert("RGB"))), False


def read_mask_pixels(
    path: Path | str, expected_size: Size | None = None, folder: SentFolder | None = None
) -> np.ndarray:
    """Flat indices of an instance mask's pixels: nonzero after conversion to 8-bit gray, as officially."""
    data = _read_bytes(path, folder)
    depth, color_type = _check_header(data, expected_size)
    if color_type == _GRAYSCALE and depth == 1:
        packed = _fast(nonzero_bitmask_rows, data)
        if packed is not None:
            return _bit_positions(*packed)
    if color_type == _GRAYSCALE and depth == 8:
        pixels = _fast(decode_grayscale, data)
        if pixels is not None:
            return np.flatnonzero(pixels != 0)
    with _pillow(data) as image:
        gray = image if image.mode in ("1", "L") else _decode(lambda: image.convert("L"))
        return np.flatnonzero(_decode(lambda: np.asarray(gray)) != 0)


def _bit_positions(packed: np.ndarray, width: int, height: int) -> np.ndarray:
    """Flat pixel indices of the set bits of packed 1-bit rows, unpacking only the rows that have any."""
    rows = np.flatnonzero(packed.any(axis=1))
    bits = np.unpackbits(packed[rows], axis=1, count=width).view(bool)
    row_of_bit, column = np.divmod(np.flatnonzero(bits), width)
    return rows[row_of_bit] * width + column


def _read_bytes(path: Path | str, folder: SentFolder | None = None) -> bytes:
    try:
        return read_untrusted(path, MAX_FILE_BYTES, folder)
    except MissingFileError as exc:
        raise PngMissingError(str(exc)) from None
    except UntrustedFileError as exc:
        raise PngReadError(str(exc)) from None


def _header(data: bytes) -> tuple[int, int, int, int, int]:
    try:
        return read_header(data)
    except PngFormatError:
        kind = _guess_format(data)
        raise PngReadError(f"is {kind}, not a PNG image" if kind else "is not a PNG image") from None


def _check_header(data: bytes, expected_size: Size | None) -> tuple[int, int]:
    width, height, depth, color_type, _ = _header(data)
    if width * height > MAX_PIXELS:
        raise PngReadError(f"is {width}x{height} pixels, larger than any Cityscapes image")
    if expected_size is not None and (width, height) != expected_size:
        raise PngReadError(f"is {width}x{height} pixels but the ground truth is {expected_size[0]}x{expected_size[1]}")
    _check_bulk(data, width, height, depth, color_type)
    return depth, color_type


def _check_bulk(data: bytes, width: int, height: int, depth: int, color_type: int) -> None:
    """Refuse a file far larger than its pixels or cut into more chunks than any encoder writes.

    Deflate never needs much more than the raw rows, so a file many times their size holds padding: a
    12-byte empty chunk repeated millions of times costs seconds and hundreds of MB to walk, per read.
    """
    raw = height * ((width * _CHANNELS.get(color_type, 4) * max(depth, 1) + 7) // 8 + 1)
    limit = raw + raw // 64 + 1024 * 1024  # stored deflate blocks, chunk headers, a colour profile or text
    if len(data) > limit:
        raise PngReadError(f"is {len(data)} bytes, far more than its {width}x{height} pixels need ({raw} bytes raw)")
    try:
        count_chunks(data, _MAX_CHUNKS_BASE + len(data) // 2048)
    except PngFormatError as exc:
        raise PngReadError(f"is malformed ({exc})") from None


def _fast(decoder, data: bytes):
    try:
        return decoder(data)
    except (PngFormatError, ValueError, IndexError, struct.error) as exc:
        raise PngReadError(f"is corrupt or truncated ({_short(exc)})") from None


def _pillow(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=["PNG"])
    except Exception as exc:  # Pillow's chunk handlers raise what a damaged file makes them: OSError... IndexError
        raise PngReadError(f"is not a readable PNG ({_short(exc)})") from None


def _decode(convert):
    try:
        return convert()
    except Exception as exc:  # a damaged file: an iCCP after IDAT (IndexError), tRNS without PLTE (AssertionError)
        raise PngReadError(f"is corrupt or truncated ({_short(exc)})") from None


def _guess_format(data: bytes) -> str | None:
    signatures = {b"\xff\xd8\xff": "a JPEG", b"GIF8": "a GIF", b"BM": "a BMP", b"PK\x03\x04": "a zip archive"}
    for signature, name in signatures.items():
        if data.startswith(signature):
            return name
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "a TIFF"
    if not data:
        return "an empty file"
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
