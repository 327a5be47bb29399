"""A fast decoder for the PNGs of the Cityscapes formats: one-channel labels and masks, RGB photos.

Nearly all of a standard decoder's time on these images goes to inflating megabytes of bytes and
to per-row unfiltering in C loops one byte at a time. Here libdeflate (megabyte streams: photos,
labels) or zlib-ng (short ones: masks) inflates and numpy unfilters whole groups of rows at once.
Grayscale images of bit depth 1, 8 or 16 and 8-bit RGB images, not interlaced, are handled;
anything else returns None so the caller can use Pillow. Results are bit-identical to Pillow's;
the tests compare them.
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
_SUPPORTED_DEPTHS = (1, 8, 16)
_NONE, _SUB, _UP, _AVERAGE, _PAETH = range(5)
_MAX_FIXED_POINT_ROUNDS = 48
# Average and Paeth rows cost a few numpy passes each; past this share of rows, Pillow's C loop is faster.
_MAX_PREDICTED_ROW_SHARE = 0.02
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


def decode_grayscale(data: bytes, max_predicted_share: float = _MAX_PREDICTED_ROW_SHARE) -> np.ndarray | None:
    """The pixels of a grayscale PNG (bool for 1-bit, uint8, uint16), or None if not handled here."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _GRAYSCALE or depth not in _SUPPORTED_DEPTHS or interlace or not width or not height:
        return None
    row_bytes = (width * depth + 7) // 8
    expected = height * (row_bytes + 1)
    raw = _inflate(_image_data(data), expected)
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes + 1)
    if _mostly_predicted(rows[:, 0], max_predicted_share):
        return None
    pixels = _unfilter(rows, max(1, depth // 8))
    if depth == 1:
        return np.unpackbits(pixels, axis=1, count=width).view(bool)
    if depth == 16:
        return pixels.view(">u2").astype(np.uint16)
    return np.ascontiguousarray(pixels)


def decode_rgb(data: bytes) -> np.ndarray | None:
    """The (height, width, 3) uint8 pixels of an 8-bit RGB PNG, or None if not handled here.

    Photos whose rows are mostly Paeth- or Average-filtered (as most encoders write them) go to
    Pillow: their rows depend on their left neighbours, which numpy cannot vectorize.
    """
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _RGB or depth != 8 or interlace or not width or not height:
        return None
    row_bytes = 3 * width
    raw = _inflate(_image_data(data), height * (row_bytes + 1))
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes + 1)
    if _mostly_predicted(rows[:, 0], _MAX_PREDICTED_ROW_SHARE):
        return None
    if not rows[:, 0].any():  # no row filtered: the inflated bytes are the pixels, not copied
        return rows[:, 1:].reshape(height, width, 3)
    return _unfilter(rows, 3).reshape(height, width, 3)


def nonzero_bitmask_rows(data: bytes) -> tuple[np.ndarray, int, int] | None:
    """For a 1-bit grayscale PNG: its packed rows, width and height, without unpacking the bits."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _GRAYSCALE or depth != 1 or interlace or not width or not height:
        return None
    row_bytes = (width + 7) // 8
    raw = _inflate(_image_data(data), height * (row_bytes + 1))
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes + 1)
    if _mostly_predicted(rows[:, 0], _MAX_PREDICTED_ROW_SHARE):
        return None
    return _unfilter(rows, 1), width, height


def _mostly_predicted(filters: np.ndarray, max_share: float) -> bool:
    return np.count_nonzero(filters >= _AVERAGE) > max(4, max_share * len(filters))


def count_chunks(data: bytes, limit: int) -> int:
    """The number of chunks up to IEND; PngFormatError past ``limit`` or where a chunk overruns the file."""
    count, position = 0, 8
    while position + 8 <= len(data):
        count += 1
        if count > limit:
            raise PngFormatError(f"more than {limit} chunks")
        (length,) = struct.unpack_from(">I", data, position)
        if data[position + 4 : position + 8] == b"IEND":
            return count
        position += 12 + length
    return count


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


def _inflate(compressed: bytes, expected: int) -> bytes | bytearray:
    """Inflate at most ``expected`` bytes: a bomb cannot grow past the declared image size."""
    if expected >= _LIBDEFLATE_FROM_BYTES:
        with contextlib.suppress(deflate.DeflateError):  # zlib-ng below says what is wrong, or is lenient
            raw = deflate.zlib_decompress(compressed, expected)
            if len(raw) == expected:
                return raw
    inflater = zlib_ng.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected)
    except (zlib_ng.error, zlib.error) as exc:
        raise PngFormatError(f"corrupt image data ({exc})") from None
    if len(raw) != expected:
        raise PngFormatError("truncated image data")
    return raw


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the PNG row filters of ``rows`` (filter byte first). Rows without a dependency on the
    row above go first, all at once. Returns a writable view of the unfiltered bytes."""
    filters = rows[:, 0]
    if filters.max(initial=0) > _PAETH:
        raise PngFormatError("unknown row filter")
    # In place when the inflated buffer is writable (libdeflate's); else copied whole, a memcpy.
    out = rows[:, 1:] if rows.flags.writeable else rows.copy()[:, 1:]
    sub_rows = np.flatnonzero(filters == _SUB)
    if len(sub_rows):
        out[sub_rows] = _undo_sub(out[sub_rows], bpp)
    zeros = np.zeros(out.shape[1], np.uint8)
    for first, last in _dependent_segments(filters):
        above = out[first - 1] if first > 0 else zeros
        if filters[first] == _UP:
            _undo_up_chain(out, first, last, above)
        else:
            out[first] = _unfilter_predicted_row(out[first], above, bpp, int(filters[first]))
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


def _undo_sub(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Sub: each byte adds the byte ``bpp`` to its left; a running sum per byte lane, modulo 256."""
    count, width = rows.shape
    if width % bpp:
        padded = np.zeros((count, width + bpp - width % bpp), np.uint8)
        padded[:, :width] = rows
        return _undo_sub(padded, bpp)[:, :width]
    lanes = rows.reshape(count, width // bpp, bpp)
    return np.cumsum(lanes, axis=1, dtype=np.uint8).reshape(count, width)


def _unfilter_predicted_row(raw: np.ndarray, above: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average and Paeth rows depend on their own left neighbours.

    A Paeth row is the unique fixed point of ``x = raw + paeth(left(x), above, upper_left)``: the
    true row satisfies it, and any fixed point equals it byte by byte from the left. Each round
    takes the predictor choices implied by the current guess and solves them exactly; where the
    choice is "left", the bytes are a running sum from the last byte that does not depend on its
    left neighbour, so a whole run settles in one round. Average rows (rare in these files) and
    any row that has not settled after a few rounds are decoded byte by byte.
    """
    if kind == _PAETH:
        settled = _paeth_by_fixed_point(raw, above, bpp)
        if settled is not None:
            return settled
    return _unfilter_sequentially(raw, above, bpp, kind)


def _paeth_by_fixed_point(raw: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray | None:
    width = len(raw)
    pad = (-width) % bpp
    lanes_raw = np.concatenate([raw, np.zeros(pad, np.uint8)]).reshape(-1, bpp).astype(np.int64)
    lanes_above = np.concatenate([above, np.zeros(pad, np.uint8)]).reshape(-1, bpp).astype(np.int64)
    upper_left = np.vstack([np.zeros((1, bpp), np.int64), lanes_above[:-1]])
    guess = (lanes_raw + lanes_above) & 0xFF
    running = np.cumsum(lanes_raw, axis=0)
    positions = np.arange(len(guess))[:, None]
    for _ in range(_MAX_FIXED_POINT_ROUNDS):
        left = np.vstack([np.zeros((1, bpp), np.int64), guess[:-1]])
        updated = _solve_paeth_choices(lanes_raw, left, lanes_above, upper_left, running, positions)
        if np.array_equal(updated, guess):
            return guess.astype(np.uint8).reshape(-1)[:width]
        guess = updated
    return None


def _unfilter_sequentially(raw: np.ndarray, above: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """The PNG specification's own loop, for the rows the vectorized paths do not settle."""
    filtered, prior = raw.tolist(), above.tolist()
    out = [0] * len(filtered)
    for i, value in enumerate(filtered):
        left = out[i - bpp] if i >= bpp else 0
        if kind == _AVERAGE:
            prediction = (left + prior[i]) >> 1
        else:
            upper_left = prior[i - bpp] if i >= bpp else 0
            estimate = left + prior[i] - upper_left
            to_left, to_above, to_upper_left = (
                abs(estimate - left),
                abs(estimate - prior[i]),
                abs(estimate - upper_left),
            )
            if to_left <= to_above and to_left <= to_upper_left:
                prediction = left
            elif to_above <= to_upper_left:
                prediction = prior[i]
            else:
                prediction = upper_left
        out[i] = (value + prediction) & 0xFF
    return np.array(out, np.uint8)


def _solve_paeth_choices(raw, left, above, upper_left, running, positions) -> np.ndarray:
    """Bytes under the Paeth choices implied by ``left``; runs of "left" choices as running sums."""
    estimate = left + above - upper_left
    to_left, to_above, to_upper_left = np.abs(estimate - left), np.abs(estimate - above), np.abs(estimate - upper_left)
    use_left = (to_left <= to_above) & (to_left <= to_upper_left)
    use_above = to_above <= to_upper_left
    fixed = raw + np.where(use_above, above, upper_left)  # bytes that do not depend on their left neighbour
    anchor = np.maximum.accumulate(np.where(use_left, -1, positions), axis=0)
    lane = np.arange(raw.shape[1])[None, :]
    safe_anchor = np.maximum(anchor, 0)
    anchor_value = np.where(anchor >= 0, fixed[safe_anchor, lane], 0)
    anchor_running = np.where(anchor >= 0, running[safe_anchor, lane], 0)
    from_run = anchor_value + running - anchor_running
    return np.where(use_left, from_run, fixed) & 0xFF
