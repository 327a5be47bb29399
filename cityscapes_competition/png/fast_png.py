"""Numpy PNG decoding for the two kinds of file where it beats the libraries: 1-bit masks and None/Up photos.

1-bit grayscale masks (png_write's, Pillow's mode "1"): their packed rows are read without unpacking
the bits, 0.4 ms for a 2048x1024 mask where Pillow takes 2.5 and pywuffs 9. 8-bit RGB photos whose
rows are all filtered None or Up (png_write's, so every photo the ingestion reads): libdeflate
inflates, and a run of Up rows is one cumulative sum, 5 ms where pywuffs takes 10 and Pillow 19.
Sub, Average and Paeth rows depend on their left neighbours: numpy does Sub rows of one-byte steps
as a cumulative sum, and the few Average and Paeth rows Pillow writes into masks by the
specification's byte loop. Any other file returns None, and the caller uses a library. Results are
bit-identical to Pillow's; the tests compare them.
"""

from __future__ import annotations

import contextlib
import struct
import zlib

import deflate
import numpy as np
from zlib_ng import zlib_ng

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAYSCALE = 0
_RGB = 2
_NONE, _SUB, _UP, _AVERAGE, _PAETH = range(5)


def _filter_table(*filters: int) -> np.ndarray:
    """Which filter bytes a decoder accepts, indexed by byte (a lookup costs a fifth of np.isin)."""
    table = np.zeros(256, bool)
    table[list(filters)] = True
    return table


_PHOTO_FILTERS = _filter_table(_NONE, _UP)
_MASK_FILTERS = _filter_table(_NONE, _SUB, _UP, _AVERAGE, _PAETH)
# Pillow writes a few Average or Paeth rows into 4 in 10 of its 1-bit masks (at most 11 rows in a 2048x1024
# street scene's): each costs a 0.05 ms byte loop here, where Pillow takes 2.5 ms for the whole mask.
_MAX_PREDICTED_MASK_ROWS = 16
# Rows whose filters are read before a photo is inflated whole: an encoder that mixes filters (Pillow,
# libpng, OpenCV) shows it in its first rows, and the megabytes are left to pywuffs uninflated.
_PEEK_ROWS = 16
# libdeflate inflates a photo's 6 MB in 11 ms where zlib-ng takes 18; zlib-ng wins on the short,
# zero-heavy streams of masks (0.22 against 0.27 ms for 260 KB).
_LIBDEFLATE_FROM_BYTES = 1 << 20


class PngFormatError(Exception):
    """The bytes are not a well-formed PNG."""


def read_header(data: bytes) -> tuple[int, int, int, int, int]:
    """(width, height, bit depth, color type, interlace) from the IHDR chunk."""
    if not data.startswith(_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        raise PngFormatError("not a PNG file")
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, color_type, interlace


def decode_rgb(data: bytes) -> np.ndarray | None:
    """The (height, width, 3) uint8 pixels of an 8-bit RGB PNG whose rows are all None or Up, else None."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _RGB or depth != 8 or interlace or not width or not height:
        return None
    row_bytes = 3 * width
    compressed = _image_data(data)
    if not _PHOTO_FILTERS[_leading_filters(compressed, row_bytes + 1)].all():
        return None
    rows = np.frombuffer(_inflate(compressed, height * (row_bytes + 1), photo=True), np.uint8)
    rows = rows.reshape(height, row_bytes + 1)
    if not rows[:, 0].any():  # no row filtered: the inflated bytes are the pixels, not copied
        return rows[:, 1:].reshape(height, width, 3)
    pixels = _unfilter(rows, _PHOTO_FILTERS)
    return None if pixels is None else pixels.reshape(height, width, 3)


def nonzero_bitmask_rows(data: bytes) -> tuple[np.ndarray, int, int] | None:
    """For a 1-bit grayscale PNG: its packed rows, width and height, without unpacking the bits."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _GRAYSCALE or depth != 1 or interlace or not width or not height:
        return None
    row_bytes = (width + 7) // 8
    rows = np.frombuffer(_inflate(_image_data(data), height * (row_bytes + 1)), np.uint8).reshape(height, -1)
    if np.count_nonzero(rows[:, 0] >= _AVERAGE) > _MAX_PREDICTED_MASK_ROWS:
        return None
    pixels = _unfilter(rows, _MASK_FILTERS)
    return None if pixels is None else (pixels, width, height)


def decode_grayscale(data: bytes) -> np.ndarray | None:
    """The (height, width) bool pixels of a 1-bit grayscale PNG, as Pillow's mode "1" reads; else None."""
    packed = nonzero_bitmask_rows(data)
    if packed is None:
        return None
    rows, width, _ = packed
    return np.unpackbits(rows, axis=1, count=width).view(bool)


def _image_data(data: bytes) -> bytes:
    """The concatenated IDAT chunks."""
    parts = []
    position = 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            parts.append(data[position + 8 : position + 8 + length])
        elif kind == b"IEND":
            break
        position += 12 + length
    if not parts:
        raise PngFormatError("no image data")
    return b"".join(parts)


def _leading_filters(compressed: bytes, stride: int) -> np.ndarray:
    """The filter bytes of the first rows, from a partial inflate (a damaged stream: none, so the full
    inflate says what is wrong)."""
    try:
        head = zlib_ng.decompressobj().decompress(compressed, _PEEK_ROWS * stride)
    except (zlib_ng.error, zlib.error):
        return np.zeros(0, np.uint8)
    return np.frombuffer(head, np.uint8)[::stride]


def _inflate(compressed: bytes, expected: int, photo: bool = False) -> bytes | bytearray:
    """Inflate at most ``expected`` bytes: a bomb cannot grow past the declared image size.

    libdeflate for photos only, which come from the organiser's data: it accepts two invalid deflate codes
    (distances 30-31, lengths 286-287) that zlib, and so Pillow, refuses, so a participant's file never
    goes through it."""
    if photo and expected >= _LIBDEFLATE_FROM_BYTES:
        with contextlib.suppress(deflate.DeflateError):  # zlib-ng below says what is wrong, or is lenient
            raw = deflate.zlib_decompress(compressed, expected)
            if len(raw) == expected:
                return raw
    inflater = zlib_ng.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected + 1)  # a byte more: data past the last row is fine
    except (zlib_ng.error, zlib.error) as exc:
        raise PngFormatError(f"corrupt image data ({exc})") from None
    if len(raw) < expected:
        raise PngFormatError("truncated image data")
    if len(raw) == expected and not inflater.eof:
        # Every row, but the stream stops before its end: Pillow never flushes the last bytes and fails.
        raise PngFormatError("image data without its end")
    return raw[:expected] if len(raw) > expected else raw


def _unfilter(rows: np.ndarray, allowed: np.ndarray) -> np.ndarray | None:
    """Undo the row filters of ``rows`` (filter byte first), or None if a row's filter is not ``allowed``.
    Sub rows go first, all at once; then, in order, each run of Up rows and each Average or Paeth row.
    Sub, Average and Paeth rows are decoded for one-byte steps only (1-bit masks). Returns a writable
    view of the bytes."""
    filters = rows[:, 0]
    if not allowed[filters].all():
        return None
    # In place when the inflated buffer is writable (libdeflate's); else copied whole, a memcpy.
    out = rows[:, 1:] if rows.flags.writeable else rows.copy()[:, 1:]
    sub_rows = np.flatnonzero(filters == _SUB)
    if len(sub_rows):  # each byte adds the one to its left
        out[sub_rows] = np.cumsum(out[sub_rows], axis=1, dtype=np.uint8)
    zeros = np.zeros(out.shape[1], np.uint8)
    for first, last in _dependent_segments(filters):
        above = out[first - 1] if first > 0 else zeros
        if filters[first] == _UP:
            _undo_up_chain(out, first, last, above)
        else:
            out[first] = _unfilter_sequentially(out[first], above, int(filters[first]))
    return out


def _dependent_segments(filters: np.ndarray) -> list[tuple[int, int]]:
    """Rows that depend on the row above, in order: runs of Up rows together, other rows alone."""
    rows = np.flatnonzero(filters >= _UP)
    if len(rows) == 0:
        return []
    is_up = filters[rows] == _UP
    continues = np.zeros(len(rows), bool)
    continues[1:] = (rows[1:] == rows[:-1] + 1) & is_up[1:] & is_up[:-1]
    starts = np.flatnonzero(~continues)
    ends = np.append(starts[1:] - 1, len(rows) - 1)
    return list(zip(rows[starts].tolist(), rows[ends].tolist(), strict=True))


def _unfilter_sequentially(raw: np.ndarray, above: np.ndarray, kind: int) -> np.ndarray:
    """The PNG specification's loop for an Average or Paeth row of one-byte steps: each byte depends on
    the one decoded just before it, which numpy cannot vectorize."""
    out, left, upper_left = [], 0, 0
    for value, up in zip(raw.tolist(), above.tolist(), strict=True):
        if kind == _AVERAGE:
            prediction = (left + up) >> 1
        else:
            estimate = left + up - upper_left
            to_left, to_up, to_upper_left = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
            if to_left <= to_up and to_left <= to_upper_left:
                prediction = left
            elif to_up <= to_upper_left:
                prediction = up
            else:
                prediction = upper_left
        left, upper_left = (value + prediction) & 0xFF, up
        out.append(left)
    return np.array(out, np.uint8)


_SPARSE_CHAIN_COLUMNS = 96


def _undo_up_chain(out: np.ndarray, first: int, last: int, above: np.ndarray) -> None:
    """Up rows add the row above. Along a chain, only the byte columns holding a nonzero
    difference change (object edges): the rest repeat the row above the chain. Those few
    columns are a running sum; a chain with many changing columns is added row by row."""
    chain = out[first : last + 1]
    changing = np.flatnonzero(chain.any(axis=0))
    if len(changing) <= _SPARSE_CHAIN_COLUMNS:
        differences = chain[:, changing]
        chain[:] = above
        chain[:, changing] = np.cumsum(differences, axis=0, dtype=np.uint8) + above[changing]
        return
    np.add(chain[0], above, out=chain[0])
    for row in range(1, len(chain)):
        np.add(chain[row], chain[row - 1], out=chain[row])
