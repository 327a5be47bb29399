"""Numpy PNG decoding for the files where it beats the libraries: instance masks and None/Up photos.

Masks, 1- or 8-bit grayscale however written (Pillow's "1" and "L", OpenCV's Sub rows, png_write's Up
rows): only their nonzero pixels are wanted, and those lie in a few rows. zlib-ng inflates the rows
(0.02 ms for a 2048x1024 1-bit mask, 0.13 ms for an 8-bit one, where Pillow takes 2.5 and 5, and pywuffs
0.4 to 1.1 for 8-bit); a row whose filtered bytes are all zero decodes to zeros unless its filter adds
the row above and that row may hold pixels, so only the rows that may hold pixels are unfiltered.
8-bit RGB photos whose rows are all filtered None or Up (png_write's, so every photo the ingestion
reads): libdeflate inflates, and a run of Up rows is one cumulative sum, 5 ms where pywuffs takes 10
and Pillow 19.

Unfiltering for one-byte steps (gray masks): Sub rows are a cumulative sum; a run of Up rows a running
sum over the columns that change; a Paeth row copies the byte to its left wherever its own byte is zero
and the two bytes above it are equal (then the left estimate is exact), so only the other bytes, the
edges, are computed one by one; Average rows by the specification's byte loop. The one-by-one work has a
budget per file; past it, or for any other file, the function returns None and the caller uses a
library. Results are bit-identical to Pillow's; the tests compare them.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import deflate
import numpy as np
from zlib_ng import zlib_ng

from ..core.arrays import PixelRuns, concatenated_ranges

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAYSCALE = 0
_RGB = 2
_PALETTE = 3
_NONE, _SUB, _UP, _AVERAGE, _PAETH = range(5)


def _filter_table(*filters: int) -> np.ndarray:
    """Which filter bytes a decoder accepts, indexed by byte (a lookup costs a fifth of np.isin)."""
    table = np.zeros(256, bool)
    table[list(filters)] = True
    return table


_PHOTO_FILTERS = _filter_table(_NONE, _UP)
_MASK_FILTERS = _filter_table(_NONE, _SUB, _UP, _AVERAGE, _PAETH)
_ABOVE_DEPENDENT_FILTERS = _filter_table(_UP, _AVERAGE, _PAETH)
# Bytes a mask's Average and Paeth rows may compute one by one (about 0.4 us each): a street scene's
# 8-bit Pillow mask needs a few hundred. Past the budget a library decodes the file (pywuffs: 1 ms).
_SEQUENTIAL_BYTES_PER_MASK = 4096
# Average and Paeth rows a mask may have where it may hold pixels (Pillow's: a few; png_write's: none).
_MAX_PREDICTED_ROWS_PER_MASK = 64
# Nonzero bytes a mask's Sub rows may hold (an OpenCV mask of a person: a few thousand): noise in Sub rows
# costs 0.15 s here against pywuffs' 10 ms.
_MAX_SUB_EDGES_PER_MASK = 65536
# Pixels of decoded mask rows whose runs are found at once (``_runs_by_chunks``): about 40 MB of arrays at worst
# (a run every other pixel).
_RUN_CHUNK_PIXELS = 1024 * 1024
# Runs of rows that may hold pixels closer than this are unfiltered together: fewer numpy calls.
_ROW_RUN_GAP = 16
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


def decode_palette_indices(data: bytes) -> np.ndarray | None:
    """The (height, width) uint8 palette indices of an 8-bit palette PNG whose rows are all None or Up, as numpy
    reads Pillow's "P" image (whatever the palette holds); else None."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _PALETTE or depth != 8 or interlace or not width or not height:
        return None
    rows = _inflated_rows(data, height, width)
    if not rows[:, 0].any():  # no row filtered: the inflated bytes are the indices, not copied
        return rows[:, 1:]
    return _unfilter(rows, _PHOTO_FILTERS)


def nonzero_bitmask_rows(data: bytes) -> tuple[np.ndarray, int, int] | None:
    """For a 1-bit grayscale PNG: its packed rows, width and height, without unpacking the bits."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _GRAYSCALE or depth != 1 or interlace or not width or not height:
        return None
    row_bytes = (width + 7) // 8
    rows = _inflated_rows(data, height, row_bytes)
    pixels = _unfilter(rows, _MASK_FILTERS, _Budget())
    return None if pixels is None else (pixels, width, height)


def first_row_filter(data: bytes) -> int | None:
    """The filter byte of a PNG's first row, from the first inflated byte (the first IDAT chunks only, not a copy
    of all of them); None if the stream does not start cleanly."""
    inflater = zlib_ng.decompressobj()
    position = 8
    try:
        while position + 8 <= len(data):
            (length,) = struct.unpack_from(">I", data, position)
            kind = data[position + 4 : position + 8]
            if kind == b"IDAT":
                head = inflater.decompress(data[position + 8 : position + 8 + length], 1)
                if head:
                    return head[0]
            elif kind == b"IEND":
                break
            position += 12 + length
    except (zlib_ng.error, zlib.error):
        return None
    return None


def row_filters(data: bytes) -> np.ndarray:
    """The filter byte of every row of a non-interlaced PNG."""
    width, height, depth, color_type, interlace = read_header(data)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color_type)
    if channels is None or interlace or not width or not height:
        raise PngFormatError("not a plain PNG")
    stride = (width * channels * depth + 7) // 8 + 1
    return _inflated_rows(data, height, stride - 1)[:, 0]


def decode_grayscale(data: bytes) -> np.ndarray | None:
    """The (height, width) bool pixels of a 1-bit grayscale PNG, as Pillow's mode "1" reads; else None."""
    packed = nonzero_bitmask_rows(data)
    if packed is None:
        return None
    rows, width, _ = packed
    return np.unpackbits(rows, axis=1, count=width).view(bool)


@dataclass(frozen=True)
class MaskRows:
    """A mask's runs of rows that may hold pixels (inflated, still filtered), each after a row of zeros: stacked
    with other masks' of the same width and depth, they unfilter as they would alone."""

    rows: np.ndarray  # (n, bytes per row + 1), filter byte first
    run_starts: np.ndarray  # per run: its first row in ``rows`` (the row after its row of zeros)
    image_rows: np.ndarray  # per run: the row of the image that row is
    width: int
    depth: int


def mask_rows(data: bytes) -> MaskRows | None:
    """The rows of a 1- or 8-bit grayscale PNG that may hold pixels; None for another kind of file."""
    width, height, depth, color_type, interlace = read_header(data)
    if color_type != _GRAYSCALE or depth not in (1, 8) or interlace or not width or not height:
        return None
    row_bytes = (width * depth + 7) // 8
    rows = _inflated_rows(data, height, row_bytes)
    if int(rows[:, 0].max()) > _PAETH:  # a filter byte no encoder writes (a lookup in _MASK_FILTERS costs more)
        return None
    runs = _row_runs(_rows_that_may_hold_pixels(rows))
    zeros = np.zeros((1, row_bytes + 1), np.uint8)
    zeros[0, 0] = _SUB  # a row of zeros filtered Sub decodes to zeros, and keeps OpenCV's all-Sub masks so
    pieces, run_starts, stacked = [], [], 0
    for first, last in runs:
        pieces += [zeros, rows[first : last + 1]]
        run_starts.append(stacked + 1)
        stacked += last - first + 2
    stack = np.concatenate(pieces) if pieces else np.zeros((0, row_bytes + 1), np.uint8)
    image_rows = np.array([first for first, _ in runs], np.int64)
    return MaskRows(stack, np.array(run_starts, np.int64), image_rows, width, depth)


def nonzero_mask_runs(data: bytes) -> PixelRuns | None:
    """The runs of nonzero pixels of a 1- or 8-bit grayscale PNG, unfiltering only the rows that may hold
    any; None for another kind of file or past the budget of byte-by-byte work."""
    rows = mask_rows(data)
    runs = None if rows is None else nonzero_runs_of_masks([rows])
    return None if runs is None else runs[0]


def nonzero_runs_of_masks(masks: list[MaskRows]) -> list[PixelRuns] | None:
    """Each mask's runs of nonzero pixels (row-major), for masks of one width and depth unfiltered together: a
    mask costs numpy a hundred calls of a few microseconds whatever its size, so the masks of an image go
    through them once. None past the budget of byte-by-byte work (then decode each alone, or with a library).
    The runs come from the edges of the masks, never their inner pixels: a street scene's mask has ~150 runs
    for ~20,000 pixels."""
    width, depth = masks[0].width, masks[0].depth
    stack = np.concatenate([mask.rows for mask in masks])
    mask_starts = np.cumsum([0] + [len(mask.rows) for mask in masks])
    run_starts = np.concatenate([mask.run_starts + start for mask, start in zip(masks, mask_starts, strict=False)])
    run_shifts = np.concatenate([mask.image_rows for mask in masks]) - run_starts  # image row - stacked row
    row_shift = _row_shifts(len(stack), run_starts, run_shifts)
    budget = _Budget(len(masks))
    if depth == 8 and (stack[:, 0] == _SUB).all():  # OpenCV's: the runs of values straight from the edges
        runs = _sub_runs(stack[:, 1:], budget)
        if runs is None:
            return None
        starts, stops, values = runs
        pieces = [(starts[values != 0], stops[values != 0], 0)]
    else:
        decoded = _unfilter(stack, _MASK_FILTERS, budget)
        if decoded is None:
            return None
        pieces = _runs_by_chunks(decoded, width, depth)
    per_mask: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in masks]
    for starts, stops, first_row in pieces:  # positions in rows from ``first_row`` of the stack on
        row = starts // width + first_row  # each run moves down by its stacked row's shift, and is its mask's
        shift = (row_shift[row] + first_row) * width
        bounds = np.searchsorted(row, mask_starts[1:-1])
        for (mask_starts_, mask_stops_), piece_starts, piece_stops in zip(
            per_mask, np.split(starts + shift, bounds), np.split(stops + shift, bounds), strict=True
        ):
            if len(piece_starts) or not mask_starts_:
                mask_starts_.append(piece_starts)
                mask_stops_.append(piece_stops)
    return [PixelRuns(_joined(mask_starts_), _joined(mask_stops_)) for mask_starts_, mask_stops_ in per_mask]


def _runs_by_chunks(decoded: np.ndarray, width: int, depth: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``_byte_runs`` or ``_bit_runs`` of the decoded rows, _RUN_CHUNK_PIXELS at a time (their arrays take a few
    integers per run, and a row of pixels can hold a run for every other one), each chunk's with its first
    row."""
    rows_per_chunk = max(1, _RUN_CHUNK_PIXELS // width)
    for first in range(0, len(decoded), rows_per_chunk):
        chunk = decoded[first : first + rows_per_chunk]
        yield *(_byte_runs(chunk) if depth == 8 else _bit_runs(chunk, width)), first


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """A mask's runs from the chunks it lies in (most lie in one: a view, not a copy; none if no row may hold
    a pixel)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _row_shifts(rows: int, run_starts: np.ndarray, run_shifts: np.ndarray) -> np.ndarray:
    """Per stacked row, the shift of its run (image row - stacked row); rows of zeros take the previous one."""
    shift = np.zeros(rows, np.int64)
    shift[run_starts] = np.diff(run_shifts, prepend=0)
    return np.cumsum(shift)


def _byte_runs(decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runs of nonzero bytes of 8-bit rows, as [start, stop) positions in the rows, none crossing a row's
    end (a column of zeros after each row keeps them apart)."""
    row_bytes = decoded.shape[1]
    set_bytes = np.zeros((len(decoded), row_bytes + 1), bool)
    np.not_equal(decoded, 0, out=set_bytes[:, :row_bytes])
    edges = np.flatnonzero(np.diff(set_bytes.reshape(-1), prepend=False))
    starts, stops = edges[::2], edges[1::2]
    row = starts // (row_bytes + 1)
    return starts - row, stops - row  # positions in rows without the added column


def _bit_runs(decoded: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The runs of set bits of 1-bit rows (most significant bit first), as [start, stop) pixel positions in
    rows ``width`` wide (a row's padding bits past the width dropped), none crossing a row's end. Only the
    bytes where a run starts or stops are unpacked: a byte's bit starts a run if the bit before it (in the
    byte, or the last bit of the byte to its left in the row) is clear, and stops one if the bit after is."""
    row_bytes = decoded.shape[1]
    flat = decoded.reshape(-1)
    units = np.flatnonzero(flat != 0)  # on bools: 10 times faster than on the bytes
    values = np.take(flat, units)
    column_byte = units % row_bytes
    before = np.zeros(len(units), np.uint8)  # the last bit of the byte to the left, if that byte is set
    joined = (units[1:] == units[:-1] + 1) & (column_byte[1:] != 0)
    before[1:] = (values[:-1] & 1) * joined
    after = np.zeros(len(units), np.uint8)  # the first bit of the byte to the right
    after[:-1] = (values[1:] >> 7) * joined
    first_bits = values & ~((values >> 1) | (before << 7))
    last_bits = values & ~((values << 1) | after)
    ends = []  # (row, column) of each run's first and last pixel
    for bits in (first_bits, last_bits):
        holding = np.flatnonzero(bits != 0)
        byte, bit = np.nonzero(np.unpackbits(bits[holding]).reshape(-1, 8))
        unit = units[holding[byte]]
        ends.append((unit // row_bytes, (unit % row_bytes) * 8 + bit))
    (row, first), (_, last) = ends
    if width % 8:  # bits past the width pad a row's last byte: not pixels
        inside = first < width
        row, first, last = row[inside], first[inside], np.minimum(last[inside], width - 1)
    starts = row * width + first
    return starts, starts + (last - first + 1)


def _rows_that_may_hold_pixels(rows: np.ndarray) -> np.ndarray:
    """Per row, whether it may decode to anything but zeros. A row whose filtered bytes are all zero is
    zeros if its filter ignores the row above (None, Sub), and otherwise (Up, Average, Paeth) if the row
    above is: so a row may hold pixels if it has a nonzero byte, or inherits from one that has."""
    has_bytes = rows[:, 1:].any(axis=1)
    decided = has_bytes | ~_ABOVE_DEPENDENT_FILTERS[rows[:, 0]]
    last_decided = np.maximum.accumulate(np.where(decided, np.arange(len(rows)), -1))
    may_hold = (last_decided >= 0) & has_bytes[np.maximum(last_decided, 0)]
    if may_hold[-1] and not has_bytes[-1]:  # zero rows at the bottom that inherit from above
        _drop_zeros_below(rows, np.flatnonzero(has_bytes), may_hold)
    return may_hold


def _drop_zeros_below(rows: np.ndarray, byte_rows: np.ndarray, may_hold: np.ndarray) -> None:
    """Where every row is filtered Up (png_write's masks), the zero rows below an object inherit its last row,
    which its next row cancels: all zeros. The last row with bytes decodes to the sum, mod 256, of the Up rows
    above it back to a None row (or the top), so if that sum is zero, the rows below it hold no pixel."""
    last = byte_rows[-1]
    others = np.flatnonzero(rows[: last + 1, 0] != _UP)
    base = others[-1] if len(others) else 0
    if len(others) and rows[base, 0] != _NONE:
        return
    summed = byte_rows[byte_rows >= base]
    if not np.add.reduce(rows[summed, 1:], axis=0, dtype=np.uint8).any():
        may_hold[last + 1 :] = False


def _row_runs(may_hold: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of the runs of rows that may hold pixels, runs closer than _ROW_RUN_GAP merged. A run
    starts after a row of zeros (or at the top), so it unfilters on its own; merged gaps unfilter to zeros."""
    rows = np.flatnonzero(may_hold)
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > _ROW_RUN_GAP)
    firsts = np.concatenate([rows[:1], rows[breaks + 1]])
    lasts = np.concatenate([rows[breaks], rows[-1:]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def _inflated_rows(data: bytes, height: int, row_bytes: int) -> np.ndarray:
    """A participant-safe inflate (zlib-ng, at most the declared rows) of the image data, as (height, filter
    byte + row_bytes) still-filtered rows."""
    return np.frombuffer(_inflate(_image_data(data), height * (row_bytes + 1)), np.uint8).reshape(height, -1)


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
    goes through it. Data past the last row: a photo's rows are read; any other file is left to a library."""
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
    if len(raw) > expected and not photo:
        # Data past the last row of a participant's file: Pillow reads the rows or not depending on where the
        # stream ends (a library decides; no encoder writes such a file). The organiser's photos: the rows.
        raise PngFormatError("image data past the last row")
    return raw[:expected] if len(raw) > expected else raw


class _Budget:
    """What the masks of one call may cost: bytes computed one by one (in Average and Paeth rows), Average and
    Paeth rows (each a few numpy calls, even when empty), and nonzero bytes in Sub rows."""

    def __init__(self, masks: int = 1) -> None:
        self.bytes_left = _SEQUENTIAL_BYTES_PER_MASK * masks
        self.sub_edges = _MAX_SUB_EDGES_PER_MASK * masks
        self.predicted_rows = _MAX_PREDICTED_ROWS_PER_MASK * masks

    def spend(self, count: int) -> bool:
        self.bytes_left -= count
        return self.bytes_left >= 0


def _unfilter(rows: np.ndarray, allowed: np.ndarray, budget: _Budget | None = None) -> np.ndarray | None:
    """Undo the row filters of ``rows`` (filter byte first; the row above the first is zeros), or None if a
    row's filter is not ``allowed`` or the Average and Paeth rows exceed ``budget``. Sub rows go first, all
    at once; then the rows that add the row above (``_undo_dependent_rows``). Sub, Average and Paeth rows
    are decoded for one-byte steps only (gray masks). Returns a writable view of the bytes."""
    filters = rows[:, 0]
    if not allowed[filters].all():
        return None
    # In place when the inflated buffer is writable (libdeflate's); else copied whole, a memcpy.
    out = rows[:, 1:] if rows.flags.writeable else rows.copy()[:, 1:]
    sub_rows = np.flatnonzero(filters == _SUB)
    if len(sub_rows):
        decoded = _undo_sub(out[sub_rows], budget)
        if decoded is None:
            return None
        out[sub_rows] = decoded
    predicted = np.count_nonzero(filters >= _AVERAGE)  # Average and Paeth rows: one at a time
    if budget is not None and predicted > budget.predicted_rows:
        return None
    return out if _undo_dependent_rows(out, filters, budget) else None


def _undo_dependent_rows(out: np.ndarray, filters: np.ndarray, budget: _Budget | None) -> bool:
    """Every row that adds the row above (Up, Average, Paeth) in ``out``, the others decoded (the row above the
    first is zeros); False past ``budget``. A chain of such rows depends on nothing but the row before it: the
    chains step down together, their k-th rows at once (the Up ones in one addition, the few Average and
    Paeth ones one by one), while at least _UP_RUNS_TOGETHER of them go on (a Pillow mask's chains are 3
    rows long at the median, 40 at the 95th percentile, ten to a mask); the few longer ones (png_write's masks
    are Up on every row) go on alone."""
    rows = np.flatnonzero(_ABOVE_DEPENDENT_FILTERS[filters])
    if len(rows) == 0:
        return True
    starts_chain = np.ones(len(rows), bool)
    starts_chain[1:] = rows[1:] != rows[:-1] + 1
    chain = np.cumsum(starts_chain) - 1
    chain_first = rows[starts_chain]
    chain_length = np.bincount(chain)
    depth = rows - chain_first[chain]
    by_depth = rows[np.argsort(depth, kind="stable")]  # rows of depth 0, then 1...: a slice per level
    level_sizes = np.bincount(depth)
    level_ends = np.cumsum(level_sizes)
    levels = 0
    while levels < len(level_sizes) and level_sizes[levels] >= _UP_RUNS_TOGETHER:
        level = by_depth[level_ends[levels] - level_sizes[levels] : level_ends[levels]]
        level_filters = filters[level]
        up = level[level_filters == _UP]
        up = up[1:] if len(up) and up[0] == 0 else up  # the first row adds zeros
        out[up] += out[up - 1]
        for row in level[level_filters != _UP].tolist():
            if not _undo_predicted_row(out, row, filters[row], budget):
                return False
        levels += 1
    for first, length in zip(chain_first.tolist(), chain_length.tolist(), strict=True):
        if length > levels and not _undo_chain(out, filters, first + levels, first + length - 1, budget):
            return False
    return True


def _undo_chain(out: np.ndarray, filters: np.ndarray, first: int, last: int, budget: _Budget | None) -> bool:
    """Rows ``first``..``last`` (all adding the row above, the one above ``first`` decoded), in order: runs of
    Up rows (``_undo_up_chain``) and the Average and Paeth rows between them."""
    row = first
    for predicted in [*(first + np.flatnonzero(filters[first : last + 1] != _UP)).tolist(), last + 1]:
        if predicted > row:
            _undo_up_chain(out, row, predicted - 1, out[row - 1] if row > 0 else np.zeros(out.shape[1], np.uint8))
        if predicted <= last and not _undo_predicted_row(out, predicted, filters[predicted], budget):
            return False
        row = predicted + 1
    return True


def _undo_predicted_row(out: np.ndarray, row: int, kind: int, budget: _Budget | None) -> bool:
    """An Average or Paeth row, the row above decoded; False past ``budget``."""
    above = out[row - 1] if row > 0 else np.zeros(out.shape[1], np.uint8)
    if kind == _PAETH:
        decoded = _undo_paeth(out[row], above, budget)
        if decoded is None:
            return False
        out[row] = decoded
    elif out[row].any() or above.any():  # an Average row; else zeros stay zeros
        if budget is not None and not budget.spend(out.shape[1]):
            return False
        out[row] = _undo_average(out[row], above)
    return True


def _undo_sub(raw: np.ndarray, budget: _Budget | None = None) -> np.ndarray | None:
    """Sub rows of one-byte steps (a contiguous array), decoded in place from their runs (``_sub_runs``)."""
    runs = _sub_runs(raw, budget)
    if runs is None:
        return None
    starts, stops, values = runs
    flat = raw.reshape(-1)
    flat[starts] = values
    held = values != 0  # the bytes after a run's first are 0 in the filtered rows
    flat[concatenated_ranges(starts[held] + 1, stops[held])] = np.repeat(values[held], stops[held] - starts[held] - 1)
    return raw


def _sub_runs(raw: np.ndarray, budget: _Budget | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Sub rows of one-byte steps: each byte adds the one decoded to its left, a running sum along the row.
    Computed at the nonzero bytes only (a mask's edges; numpy's cumsum along rows costs 2 ns a byte): the
    runs [start, stop) of flat positions in ``raw`` that hold one value each, from each nonzero byte to the
    next or to the row's end (a row's bytes before its first nonzero one are 0). None if the nonzero bytes
    exceed ``budget``'s share for Sub rows (noise: a library decodes it 10 times faster)."""
    flat = raw.reshape(-1)
    edges = np.flatnonzero(flat != 0)  # on bools: 10 times faster than on the bytes
    if budget is not None and len(edges) > budget.sub_edges:
        return None
    width = raw.shape[1]
    row = edges // width
    added = flat[edges].astype(np.int64)
    sums = np.cumsum(added)
    starts_row = np.ones(len(edges), bool)
    starts_row[1:] = row[1:] != row[:-1]
    before_row = np.maximum.accumulate(np.where(starts_row, np.arange(len(edges)), 0))  # each edge's row's first
    values = ((sums - sums[before_row] + added[before_row]) & 0xFF).astype(np.uint8)
    stops = (row + 1) * width
    stops[:-1] = np.where(starts_row[1:], stops[:-1], edges[1:])
    return edges, stops, values


def _undo_average(raw: np.ndarray, above: np.ndarray) -> np.ndarray:
    """The specification's loop for an Average row of one-byte steps: each byte adds the mean of the one
    decoded just before it and the one above."""
    out, left = [], 0
    for value, up in zip(raw.tolist(), above.tolist(), strict=True):
        left = (value + ((left + up) >> 1)) & 0xFF
        out.append(left)
    return np.array(out, np.uint8)


def _undo_paeth(raw: np.ndarray, above: np.ndarray, budget: _Budget | None) -> np.ndarray | None:
    """A Paeth row of one-byte steps. Where the filtered byte is 0 and the bytes above and above-left are
    equal, the estimate left + above - above_left is the left byte itself, so Paeth predicts it and the
    pixel repeats its left neighbour: only the other bytes (edges, in a mask) are computed one by one,
    and the rest repeat the last of them (0 before the first). None past ``budget``."""
    above_left = np.concatenate([np.zeros(1, np.uint8), above[:-1]])
    edges = np.flatnonzero((raw != 0) | (above != above_left))
    if budget is not None and not budget.spend(len(edges)):
        return None
    values, left = [0], 0
    for value, up, up_left in zip(raw[edges].tolist(), above[edges].tolist(), above_left[edges].tolist(), strict=True):
        estimate = left + up - up_left
        to_left, to_up, to_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
        if to_left <= to_up and to_left <= to_up_left:
            prediction = left
        elif to_up <= to_up_left:
            prediction = up
        else:
            prediction = up_left
        left = (value + prediction) & 0xFF
        values.append(left)
    last_edge = np.zeros(len(raw), np.intp)  # 1 + the index in `edges` of the last edge at or left of each byte
    last_edge[edges] = np.arange(1, len(edges) + 1)
    np.maximum.accumulate(last_edge, out=last_edge)
    return np.array(values, np.uint8)[last_edge]


_SPARSE_CHAIN_COLUMNS = 96
_SHORT_CHAIN_ROWS = 4
_UP_RUNS_TOGETHER = 4


def _undo_up_chain(out: np.ndarray, first: int, last: int, above: np.ndarray) -> None:
    """Up rows add the row above. Along a chain, only the byte columns holding a nonzero
    difference change (object edges): the rest repeat the row above the chain. Those few
    columns are a running sum; a chain with many changing columns is added row by row."""
    chain = out[first : last + 1]
    if len(chain) <= _SHORT_CHAIN_ROWS:  # Pillow's: a row or two, where a few additions cost least
        np.add(chain[0], above, out=chain[0])
        for row in range(1, len(chain)):
            np.add(chain[row], chain[row - 1], out=chain[row])
        return
    changing = np.flatnonzero(chain.any(axis=0))
    if len(changing) <= _SPARSE_CHAIN_COLUMNS:
        differences = chain[:, changing]
        chain[:] = above
        chain[:, changing] = np.cumsum(differences, axis=0, dtype=np.uint8) + above[changing]
        return
    np.add(chain[0], above, out=chain[0])
    for row in range(1, len(chain)):
        np.add(chain[row], chain[row - 1], out=chain[row])
