"""Reading the PNGs of the Cityscapes formats, safely and fast.

Every read checks the header and walks the chunks before any pixel is decoded: a file that is not a PNG,
is too large or has the wrong size is refused, so a decompression bomb never inflates. Then the pixels
come from the decoder measured fastest on the file's kind (benchmarks/bench_png_decode.py):
- 8- and 16-bit grayscale (labelIds, instanceIds, disparity, 8-bit masks, however written): pywuffs,
  Google's memory-safe Wuffs, 1.5 to 14 times faster than Pillow;
- 1-bit masks, and 8-bit RGB photos filtered None or Up (what png_write writes): ``fast_png``;
- other 8-bit RGB photos (Pillow's, OpenCV's, a Cityscapes download's): pywuffs;
- everything else: Pillow, the official evaluation's reader.

A fast decoder stands in for Pillow only where its answer is Pillow's: the chunks before the image data
are ones that change nothing Pillow decodes and Pillow accepts them (no tRNS, no APNG chunk), the image
data is one run of IDAT chunks followed by nothing but IEND, no chunk runs past the file's end, and the
decoder reads the file without any error (a bad checksum, a stream without its end). Anything else,
Pillow decides, so a file is accepted or refused as Pillow decides, with Pillow's pixels. That includes
a zlib stream that ends cleanly before the last rows: Pillow reads the missing rows as 0, and so do the
official scripts, which score such a file; png_io scores it too rather than refuse it.

Refused on purpose though Pillow reads them: other image formats named .png; a chunk before IHDR; a
second IHDR (Pillow decodes with the last, past the size checks made on the first) or a second colour
profile; more pixels, bytes or chunks than any Cityscapes file has. Speed guards: a participant's gray
image whose image data is far larger than a label map needs goes to Pillow, not pywuffs (whose cost grows
with the number of deflate blocks). One difference is left, on the organiser's photos only: libdeflate,
which inflates them, accepts two invalid deflate codes that zlib refuses (tests/test_png_hostile.py).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

try:  # built from source (a C++ compiler); without it Pillow decodes the same pixels, only slower
    from pywuffs import ImageDecoderQuirks, ImageDecoderType, PixelFormat
    from pywuffs.aux import ImageDecoder, ImageDecoderConfig
except ImportError:
    ImageDecoder = None

from ..core.arrays import PixelRuns
from ..core.untrusted_files import MissingFileError, SentFolder, UntrustedFileError, read_untrusted
from .fast_png import (
    MaskRows,
    PngFormatError,
    decode_grayscale,
    decode_palette_indices,
    decode_rgb,
    first_row_filter,
    mask_rows,
    nonzero_mask_runs,
    nonzero_runs_of_masks,
    read_header,
    row_filters,
)
from .png_write import encode_png

if TYPE_CHECKING:
    from PIL import Image

Size = tuple[int, int]  # (width, height), as Pillow reports it

MAX_PIXELS = 4096 * 2048  # no legitimate Cityscapes image is larger
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_MAX_CHUNKS_BASE = 1000  # plus one per 2 KB of file: libpng writes 8 KB IDAT chunks, OpenCV one to five
MAX_FILE_BYTES = 64 * 1024 * 1024
_SINGLE_CHANNEL_MODES = {"L", "P", "1", "I;16", "I;16B", "I;16L", "I"}
_GRAYSCALE = 0
_RGB = 2
_PALETTE = 3


def _wuffs_config(pixel_format: PixelFormat) -> ImageDecoderConfig:
    config = ImageDecoderConfig()
    config.enabled_decoders = [ImageDecoderType.PNG]
    config.pixel_format = pixel_format
    config.max_incl_dimension = 4096  # a second bound: the header checks come first
    config.quirks = {ImageDecoderQuirks.IGNORE_CHECKSUM: 0}  # Wuffs skips CRCs and Adler-32 unless told
    return config


# By (colour type, bit depth). 16-bit samples come little-endian, so numpy views them as Pillow's uint16.
_WUFFS_CONFIGS = (
    {
        (_GRAYSCALE, 8): _wuffs_config(PixelFormat.Y),
        (_GRAYSCALE, 16): _wuffs_config(PixelFormat.Y_16LE),
        (_RGB, 8): _wuffs_config(PixelFormat.RGB),
    }
    if ImageDecoder is not None
    else {}
)


# Ancillary chunks that change nothing Pillow decodes: before the image data, only these (and IHDR) let a fast
# decoder stand in for Pillow. tRNS is not among them (Wuffs applies it), nor APNG's acTL, fcTL and fdAT, nor
# any unknown chunk: Pillow decides those files.
_PASSIVE_CHUNKS = frozenset(
    {b"PLTE", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"tIME", b"bKGD"}
    | {b"hIST", b"sPLT", b"eXIf"}
)
# pywuffs takes about 2.5 us per deflate block, and a block can be 10 bits: 3 MB of empty blocks took 8 s where
# Pillow's zlib takes 0.03. A participant's image whose image data exceeds a sixteenth of its raw rows (a label
# map written by Pillow or OpenCV holds a fiftieth) goes to Pillow, so it costs pywuffs at most about 0.25 s.
_WUFFS_MAX_SHARE_OF_RAW = 1 / 16


@dataclass(frozen=True)
class _Layout:
    """What the header checks found: the image's kind, its raw size, and how its chunks are laid out."""

    depth: int
    color_type: int
    raw_bytes: int  # rows with their filter bytes, uncompressed
    image_data_bytes: int
    fast_decodable: bool  # a fast decoder's pixels are Pillow's, if it reads the file cleanly

    def wuffs_may_read(self, trusted: bool) -> bool:
        """The organiser's files (ground truth, photos) always; a participant's within the bound above."""
        bounded = self.image_data_bytes <= self.raw_bytes * _WUFFS_MAX_SHARE_OF_RAW
        return self.fast_decodable and (trusted or bounded)


class PngReadError(Exception):
    """A PNG could not be used; the message says why (the caller names the file: ``path``, where one call
    reads many)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class PngMissingError(PngReadError):
    """There is no file at the path."""


def read_single_channel(
    path: Path | str, expected_size: Size | None = None, folder: SentFolder | None = None, trusted: bool = False
) -> np.ndarray:
    """The pixel values of a one-channel PNG (labelIds, instanceIds, disparity), as numpy reads Pillow's.

    ``folder``: the folder a participant's file must lie in (``untrusted_files``).
    """
    return decode_single_channel(_read_bytes(path, folder), expected_size, trusted)


def decode_single_channel(data: bytes, expected_size: Size | None = None, trusted: bool = False) -> np.ndarray:
    """The same, from the file's bytes. ``trusted``: the organiser's file (ground truth), which pywuffs may read
    whatever its size; a participant's goes to Pillow if its image data is suspiciously large."""
    layout = _check_header(data, expected_size)
    if layout.color_type == _GRAYSCALE and layout.depth == 1 and _fast_decoders_may_read(layout, data):
        pixels = _fast(decode_grayscale, data)
        if pixels is not None:
            return pixels
    elif layout.color_type == _GRAYSCALE and _wuffs_may_read(layout, data, trusted):
        pixels = _wuffs(data, layout.color_type, layout.depth)
        if pixels is not None:
            return pixels
    elif (
        layout.color_type == _PALETTE
        and layout.depth == 8
        and _plain_palette(data)
        and _fast_decoders_may_read(layout, data)
    ):
        pixels = _fast(decode_palette_indices, data)  # Pillow's "P" label maps: None rows, 6 ms in Pillow
        if pixels is not None:
            return pixels
    with _pillow(data) as image:
        if image.mode not in _SINGLE_CHANNEL_MODES:
            raise PngReadError(f"has {len(image.getbands())} channels (mode {image.mode}); one channel is needed")
        return _decode(lambda: np.asarray(image))


def decode_top_rows(data: bytes, rows: int, expected_size: Size | None = None) -> np.ndarray:
    """The first ``rows`` rows of an organiser's one-channel PNG (``decode_single_channel(trusted=True)[:rows]``),
    decoding no further where pywuffs reads the file: the rows below are neither inflated nor unfiltered (a
    disparity image's distances need the rows down to the lowest instance pixel, about two thirds of a street
    scene's, and its decoding costs 10-14 ms). A damaged stream below those rows goes unnoticed."""
    layout = _check_header(data, expected_size)
    _, height, _, _, interlace = _header(data)
    if (
        0 < rows < height
        and not interlace
        and layout.color_type == _GRAYSCALE
        and _wuffs_may_read(layout, data, True)
        and data[8:12] == b"\x00\x00\x00\x0d"  # an IHDR of 13 bytes, as _with_height rewrites it
        and first_row_filter(data) in _TOP_ROWS_FIRST_FILTERS
    ):
        pixels = _wuffs(_with_height(data, rows), layout.color_type, layout.depth, _STOPPED_EARLY)
        if pixels is not None:
            return pixels
    return decode_single_channel(data, expected_size, trusted=True)[: max(rows, 0)]


# pywuffs' message for image data past the rows its header declares: expected when the header says fewer rows.
_STOPPED_EARLY = "base: too much data"
# The first row's filters with which pywuffs stopped early gives the rows of a full decode: None and Sub
# (Pillow's and OpenCV's first rows), Up (png_write's). With a Paeth first row it does not (an attack found
# it: other pixels in the first rows), nor is it trusted with Average: those files are decoded whole.
_TOP_ROWS_FIRST_FILTERS = (0, 1, 2)


def _with_height(data: bytes, rows: int) -> bytes:
    """The PNG with its header declaring ``rows`` rows (and the header's checksum to match)."""
    header = data[12:16] + data[16:20] + struct.pack(">I", rows) + data[24:29]
    return data[:12] + header + struct.pack(">I", zlib.crc32(header)) + data[33:]


def _plain_palette(data: bytes) -> bool:
    """Whether a palette PNG's PLTE chunk, if any, holds at most 256 colours: Pillow refuses a longer one when
    it decodes the pixels (its parse before them accepts it), so then Pillow decides."""
    position = 8
    while position + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        if kind == b"PLTE":
            return length <= 3 * 256
        if kind == b"IDAT":
            return True
        position += 12 + length
    return True


def rows_filtered_none_or_up(data: bytes) -> bool:
    """Whether every row of a well-formed PNG is filtered None or Up, as png_write writes: such ground truth
    decodes 2 to 3 times faster (pywuffs) than the Paeth rows of Pillow's, the Cityscapes tools' writer."""
    try:
        return row_filters(data).max(initial=0) <= 2
    except (PngFormatError, ValueError, OverflowError, struct.error):
        return False


def up_filtered_copy(data: bytes, level: int = 6) -> bytes | None:
    """An organiser's 8- or 16-bit one-channel PNG re-encoded with Up-filtered rows (zlib ``level``), pixel for
    pixel and checked; None if its rows already are None or Up, or png_write cannot reproduce its pixels. A
    download's label maps and disparity, written by the Cityscapes tools through Pillow, are mostly Paeth rows,
    which pywuffs decodes 2 to 7 times slower (labelIds 3.7 -> 0.5 ms, instanceIds 5.0 -> 2.0, disparity 13.6
    -> 4.5; levels 1, 2 and 9 measured slower or no smaller). Raises PngReadError for an unreadable file."""
    if rows_filtered_none_or_up(data):
        return None
    pixels = decode_single_channel(data, trusted=True)
    if pixels.dtype not in (np.uint8, np.uint16):
        return None  # a writer png_write does not reproduce (Pillow's 32-bit "I")
    encoded = encode_png(np.ascontiguousarray(pixels), level)
    if not np.array_equal(decode_single_channel(encoded, trusted=True), pixels):  # never expected; never risked
        return None
    return encoded


def read_rgb(path: Path | str) -> np.ndarray:
    """The (height, width, 3) uint8 pixels of a photo, any PNG colour type converted to RGB as Pillow does."""
    return decode_photo(_read_bytes(path))[0]


def decode_photo(data: bytes) -> tuple[np.ndarray, bool]:
    """The same from the file's bytes, and whether ``fast_png`` read them (else pywuffs or Pillow did)."""
    layout = _check_header(data, None)
    if layout.color_type == _RGB and layout.depth == 8 and _fast_decoders_may_read(layout, data):
        pixels = _fast(decode_rgb, data)
        if pixels is not None:
            return pixels, True
        pixels = _wuffs(data, _RGB, 8) if layout.wuffs_may_read(trusted=True) else None  # the organiser's
        if pixels is not None:
            return pixels, False
    with _pillow(data) as image:
        return _decode(lambda: np.asarray(image if image.mode == "RGB" else image.convert("RGB"))), False


def read_mask_runs(path: Path | str, expected_size: Size | None = None, folder: SentFolder | None = None) -> PixelRuns:
    """The runs of an instance mask's pixels (row-major): nonzero after conversion to 8-bit gray, as officially."""
    data = _read_bytes(path, folder)
    layout = _check_header(data, expected_size)
    if _may_read_as_mask_rows(layout, data):
        runs = _fast(nonzero_mask_runs, data)
        if runs is not None:
            return runs
    return _mask_runs_by_library(data, layout)


# Masks unfiltered together at most: their rows that may hold pixels take at most 2 MB and four images of pixels
# (an 8-bit image's rows, or four 1-bit ones: a street scene's 40 Pillow masks hold about four), and their files
# and rows at most 16 MB (or one mask more than that), so that a batch's arrays take about 140 MB at worst (a
# worker's share of the memory; masks of a run every other pixel, measured), their runs found half an image at
# a time (fast_png._runs_by_chunks). Bounded by an image's pixels, 1.3 ms more an image of Pillow's masks.
_MASK_BATCH_ROW_BYTES = 2048 * 1024
_MASK_BATCH_PIXELS = 4 * 2048 * 1024
_MASK_BATCH_BYTES = 16 * 1024 * 1024


def read_masks_runs(
    paths: Sequence[Path | str], expected_size: Size | None = None, folder: SentFolder | None = None
) -> Iterator[PixelRuns]:
    """``read_mask_runs`` of each path, in order. The masks ``fast_png`` reads are unfiltered together, a batch
    at a time (bounded as above): 0.2 ms a 1-bit mask less than one by one. A PngReadError names its path
    (``.path``)."""
    pending: list[tuple[str, bytes, _Layout, MaskRows | None]] = []
    batch_row_bytes = batch_pixels = batch_bytes = 0
    for path in paths:
        try:
            data = _read_bytes(path, folder)
            layout = _check_header(data, expected_size)
        except PngReadError as exc:
            raise type(exc)(str(exc), str(path)) from None
        rows = _fast(mask_rows, data) if _may_read_as_mask_rows(layout, data) else None
        row_bytes, pixels = (0, 0) if rows is None else (rows.rows.size, len(rows.rows) * rows.width)
        if pending and (
            batch_row_bytes + row_bytes > _MASK_BATCH_ROW_BYTES
            or batch_pixels + pixels > _MASK_BATCH_PIXELS
            or batch_bytes + len(data) > _MASK_BATCH_BYTES
        ):
            yield from _masks_of_batch(pending)
            pending, batch_row_bytes, batch_pixels, batch_bytes = [], 0, 0, 0
        pending.append((str(path), data, layout, rows))
        batch_row_bytes += row_bytes
        batch_pixels += pixels
        batch_bytes += len(data) + row_bytes
    yield from _masks_of_batch(pending)


def _masks_of_batch(pending: list[tuple[str, bytes, _Layout, MaskRows | None]]) -> Iterator[PixelRuns]:
    """The runs of each mask in ``pending``: those of one width and depth unfiltered together, the rest (or
    all of them, past the byte-by-byte budget) one by one."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (_, _, _, rows) in enumerate(pending):
        if rows is not None:
            groups.setdefault((rows.width, rows.depth), []).append(index)
    found: dict[int, PixelRuns] = {}
    for indices in groups.values():
        runs = _fast(nonzero_runs_of_masks, [pending[i][3] for i in indices])
        if runs is not None:
            found.update(zip(indices, runs, strict=True))
    for index, (path, data, layout, rows) in enumerate(pending):
        if index in found:
            yield found[index]
            continue
        try:
            runs = _fast(nonzero_runs_of_masks, [rows]) if rows is not None else None
            yield runs[0] if runs is not None else _mask_runs_by_library(data, layout)
        except PngReadError as exc:
            raise type(exc)(str(exc), path) from None


def _may_read_as_mask_rows(layout: _Layout, data: bytes) -> bool:
    return layout.color_type == _GRAYSCALE and layout.depth in (1, 8) and _fast_decoders_may_read(layout, data)


def _mask_runs_by_library(data: bytes, layout: _Layout) -> PixelRuns:
    """pywuffs (an 8-bit gray mask of bounded image data) or Pillow."""
    if layout.color_type == _GRAYSCALE and layout.depth == 8 and _wuffs_may_read(layout, data, trusted=False):
        pixels = _wuffs(data, _GRAYSCALE, 8)
        if pixels is not None:
            return PixelRuns.of_flags(pixels.reshape(-1) != 0)
    with _pillow(data) as image:
        gray = image if image.mode in ("1", "L") else _decode(lambda: image.convert("L"))
        return PixelRuns.of_flags(_decode(lambda: np.asarray(gray)).reshape(-1) != 0)


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


def _check_header(data: bytes, expected_size: Size | None) -> _Layout:
    width, height, depth, color_type, _ = _header(data)
    if width * height > MAX_PIXELS:
        raise PngReadError(f"is {width}x{height} pixels, larger than any Cityscapes image")
    if expected_size is not None and (width, height) != expected_size:
        raise PngReadError(f"is {width}x{height} pixels but the ground truth is {expected_size[0]}x{expected_size[1]}")
    raw = height * ((width * _CHANNELS.get(color_type, 4) * max(depth, 1) + 7) // 8 + 1)
    _check_bulk(data, width, height, raw)
    return _Layout(depth, color_type, raw, *_scan_chunks(data))


def _check_bulk(data: bytes, width: int, height: int, raw: int) -> None:
    """Refuse a file far larger than its pixels. Deflate never needs much more than the raw rows, so a file
    many times their size holds padding: a 12-byte empty chunk repeated millions of times costs seconds and
    hundreds of MB to walk, per read."""
    limit = raw + raw // 64 + 1024 * 1024  # stored deflate blocks, chunk headers, a colour profile or text
    if len(data) > limit:
        raise PngReadError(f"is {len(data)} bytes, far more than its {width}x{height} pixels need ({raw} bytes raw)")


def _scan_chunks(data: bytes) -> tuple[int, bool]:
    """(bytes of image data, whether a fast decoder may stand in for Pillow) from one walk over the chunks.

    Refused here, though Pillow reads them: more chunks than any encoder writes (``_MAX_CHUNKS_BASE``), a
    second IHDR (Pillow decodes with the last one, past the size checks made on the first) and a second
    colour profile (the PNG standard allows one; Pillow inflates each, 2 ms a megabyte, uncounted). A fast
    decoder may read the file only if every chunk before the image data is one that changes nothing Pillow
    decodes (``_PASSIVE_CHUNKS``: no tRNS, which Wuffs applies; no APNG chunk, with which Pillow decodes a
    frame's box or an fdAT's data instead of IDAT's), the IDAT chunks are one run followed by nothing but
    IEND (Pillow parses what follows and refuses some malformed chunks), and no chunk runs past the file's
    end (Pillow fails reading it)."""
    limit = _MAX_CHUNKS_BASE + len(data) // 2048
    position, count, image_bytes, headers, profiles = 8, 0, 0, 0, 0
    fast, state = True, "before"  # before the image data, in it, after it
    while position + 8 <= len(data):
        count += 1
        if count > limit:
            raise PngReadError(f"is malformed (more than {limit} chunks)")
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        if kind == b"IEND":
            break
        headers += kind == b"IHDR"
        profiles += kind == b"iCCP"
        if headers > 1:
            raise PngReadError("holds two IHDR chunks (a PNG has one header)")
        if profiles > 1:
            raise PngReadError("holds more than one colour profile (iCCP chunk); a PNG has at most one")
        if kind == b"IDAT":
            fast = fast and state != "after"
            state, image_bytes = "in", image_bytes + length
        elif state == "before":
            fast = fast and (kind in _PASSIVE_CHUNKS or kind == b"IHDR")
        else:
            state, fast = "after", False
        position += 12 + length
        fast = fast and position <= len(data)
    return image_bytes, fast


def _fast(decoder, data: bytes):
    """``decoder``'s result, or None (Pillow decides) where it does not read the file cleanly."""
    try:
        return decoder(data)
    except (PngFormatError, ValueError, IndexError, struct.error):
        return None


def _wuffs(data: bytes, color_type: int, depth: int, accepted_error: str = "") -> np.ndarray | None:
    """The (height, width) or (height, width, 3) pixels by pywuffs, or None where Pillow decides: another
    kind of image, or any error Wuffs reports but ``accepted_error`` (Pillow accepts a few: a bad IDAT
    checksum, data past the last row, a stream that ends early)."""
    config = _WUFFS_CONFIGS.get((color_type, depth))
    if config is None:
        return None
    # bytes only: pywuffs reads a str as a file's path. A decoder per call: one is not thread-safe.
    result = ImageDecoder(config).decode(bytes(data))
    if result.error_message and result.error_message != accepted_error:
        return None
    pixels = result.pixbuf  # (height, width, bytes per pixel); a copy at each access, so read once
    height, width = pixels.shape[:2]
    if color_type == _RGB:
        return pixels
    return pixels.view("<u2").reshape(height, width) if depth == 16 else pixels.reshape(height, width)


def _fast_decoders_may_read(layout: _Layout, data: bytes) -> bool:
    """Whether a fast decoder's pixels are Pillow's whenever it reads the file cleanly: the chunks are laid
    out as ``_scan_chunks`` requires, and Pillow accepts the ones before the image data."""
    return layout.fast_decodable and _pillow_opens(data)


def _wuffs_may_read(layout: _Layout, data: bytes, trusted: bool) -> bool:
    return layout.wuffs_may_read(trusted) and _pillow_opens(data)


def _pillow_opens(data: bytes) -> bool:
    """Whether Pillow's parse of the chunks before the image data succeeds. For the usual file, IHDR then
    IDAT, this checks what Pillow checks there (IHDR's checksum and filter method) in 1 us; any other goes
    through Pillow's parse (20 us, a tenth of a 1-bit mask's decoding)."""
    if data[8:12] == b"\x00\x00\x00\x0d" and data[37:41] == b"IDAT":  # IHDR of 13 bytes, then IDAT
        return data[27] == 0 and zlib.crc32(data[12:29]) == struct.unpack_from(">I", data, 29)[0]
    try:
        with _pillow(data):
            return True
    except PngReadError:
        return False


def _pillow(data: bytes) -> Image.Image:
    """Pillow's parse of the chunks before the image data. PngImageFile rather than Image.open, which hides
    why a PNG fails ("cannot identify image file"); Image.open's decompression-bomb check adds nothing to
    the header checks before it (MAX_PIXELS is a tenth of Pillow's limit, on the same IHDR). Imported here:
    the usual files never reach Pillow, and its import is 20 ms of every scoring's start-up."""
    from PIL import PngImagePlugin

    try:
        return PngImagePlugin.PngImageFile(io.BytesIO(data))
    except Exception as exc:  # Pillow's chunk handlers raise what a damaged file makes them: SyntaxError... IndexError
        raise PngReadError(f"is corrupt or truncated ({_short(exc)})") from None


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
