"""png_io reads the PNGs the world writes exactly as Pillow, the official evaluation's reader, does.

Every kind of file that participants and the Cityscapes toolchain write (Pillow, OpenCV and this
project's png_write; label maps, instanceIds, disparity, masks, photos) and the rarer ones (tRNS,
interlaced, 2- and 4-bit, palettes), then damaged copies of them: png_io gives Pillow's pixels for
every file Pillow reads, refuses every file Pillow refuses, and each kind goes to the decoder
measured fastest on it (benchmarks/bench_png_decode.py). The only deliberate differences are png_io's
own limits, refused before any decoder runs and tested in test_bad_results.py and test_fast_png.py:
more pixels than any Cityscapes image, a file far larger than its pixels, more chunks than any
encoder writes (Pillow would read those, slowly, or inflate a bomb).
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import filtered_png, pillow_reading
from PIL import Image

from cityscapes_competition.core.labels import color_of, id2label
from cityscapes_competition.core.naming import FrameId
from cityscapes_competition.png import png_io
from cityscapes_competition.png.png_write import encode_mask_png, encode_png
from cityscapes_competition.synthetic.scenes import FrameData, render_frame

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
PYWUFFS, FAST_PNG, PILLOW = "pywuffs", "fast_png", "Pillow"


# ------------------------------------------------------------------------------------------- writers


def pillow_png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def opencv_png(pixels: np.ndarray) -> bytes:
    """As participants' ``cv2.imwrite`` writes it (colour photos are BGR to OpenCV)."""
    ok, encoded = cv2.imencode(".png", pixels[..., ::-1] if pixels.ndim == 3 else pixels)
    assert ok
    return encoded.tobytes()


def chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _packed_rows(samples: np.ndarray, depth: int) -> list[bytes]:
    """Each row of (h, w) or (h, w, 3) samples at ``depth`` bits, after its filter byte (None)."""
    height = samples.shape[0]
    if depth == 16:
        packed = samples.astype(">u2").view(np.uint8).reshape(height, -1)
    elif depth == 8:
        packed = samples.astype(np.uint8).reshape(height, -1)
    else:
        bits = np.unpackbits(samples.astype(np.uint8)[..., None], axis=-1)[..., 8 - depth :]
        packed = np.packbits(bits.reshape(height, -1), axis=1)
    return [b"\x00" + row.tobytes() for row in packed]


def handmade_png(samples: np.ndarray, depth: int, interlaced: bool = False) -> bytes:
    """What Pillow and OpenCV do not write: Adam7 interlacing, 2- and 4-bit gray (an encoder written from
    the specification, independent of every decoder under test)."""
    height, width = samples.shape[:2]
    if interlaced:
        passes = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in _ADAM7]
        raw = b"".join(b"".join(_packed_rows(part, depth)) for part in passes if part.size)
    else:
        raw = b"".join(_packed_rows(samples, depth))
    header = struct.pack(">IIBBBBB", width, height, depth, 2 if samples.ndim == 3 else 0, 0, 0, int(interlaced))
    return _SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def palette_png(indices: np.ndarray) -> bytes:
    """A label map as a palette image, the Cityscapes colours as palette (Pillow mode P)."""
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.astype(np.uint8).tobytes())
    colors = [color_of(label) if label in id2label else (label, label, label) for label in range(256)]
    image.putpalette([channel for color in colors for channel in color])
    return pillow_png(image)


# ---------------------------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def frame() -> FrameData:
    """A synthetic street scene: label, instance and disparity maps and a photo, 1024x512."""
    return render_frame("val", FrameId("frankfurt", "000000", "000019"), seed=0, size=(1024, 512))


def _car(frame: FrameData) -> np.ndarray:
    """The largest car instance's mask: what a participant's instance results hold."""
    cars = frame.instance_ids[frame.instance_ids // 1000 == 26]
    values, counts = np.unique(cars, return_counts=True)
    return frame.instance_ids == values[np.argmax(counts)]


def _bounding_crop(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(columns[0])
    return mask[top : rows[-1] + 1, left : columns[-1] + 1], top, left


# name: (reader, writer of the frame, the decoder that must read it)
KINDS: dict[str, tuple[str, Callable[[FrameData], bytes], str]] = {
    "labels, Pillow L": ("single", lambda f: pillow_png(Image.fromarray(f.label_ids)), PYWUFFS),
    "labels, Pillow L optimize": ("single", lambda f: pillow_png(Image.fromarray(f.label_ids), optimize=True), PYWUFFS),
    "labels, Pillow P": ("single", lambda f: palette_png(f.label_ids), FAST_PNG),
    "labels, OpenCV": ("single", lambda f: opencv_png(f.label_ids), PYWUFFS),
    "labels, png_write": ("single", lambda f: encode_png(f.label_ids), PYWUFFS),
    "labels with tRNS": ("single", lambda f: pillow_png(Image.fromarray(f.label_ids), transparency=7), PILLOW),
    "labels, interlaced": ("single", lambda f: handmade_png(f.label_ids, 8, interlaced=True), PYWUFFS),
    "labels, 4-bit": ("single", lambda f: handmade_png(f.label_ids % 16, 4), PILLOW),
    "labels, 2-bit": ("single", lambda f: handmade_png(f.label_ids % 4, 2), PILLOW),
    "road, Pillow 1-bit": ("single", lambda f: pillow_png(Image.fromarray(f.label_ids == 7)), FAST_PNG),
    "instanceIds, Pillow I;16": ("ground truth", lambda f: pillow_png(Image.fromarray(f.instance_ids)), PYWUFFS),
    "instanceIds, OpenCV uint16": ("ground truth", lambda f: opencv_png(f.instance_ids), PYWUFFS),
    "instanceIds, png_write": ("ground truth", lambda f: encode_png(f.instance_ids), PYWUFFS),
    "instanceIds with tRNS": (
        "single",
        lambda f: pillow_png(Image.fromarray(f.instance_ids), transparency=int(f.instance_ids.max())),
        PILLOW,
    ),
    # Wuffs reads interlaced 16-bit gray into no pixel format ("unsupported pixel format"): Pillow does.
    "instanceIds, interlaced": ("single", lambda f: handmade_png(f.instance_ids, 16, interlaced=True), PILLOW),
    "disparity, Pillow I;16": ("ground truth", lambda f: pillow_png(Image.fromarray(f.disparity)), PYWUFFS),
    "disparity, OpenCV uint16": ("ground truth", lambda f: opencv_png(f.disparity), PYWUFFS),
    "disparity, png_write": ("ground truth", lambda f: encode_png(f.disparity), PYWUFFS),
    "mask, Pillow 1": ("mask", lambda f: pillow_png(Image.fromarray(_car(f))), FAST_PNG),
    "mask, Pillow L 0/255": ("mask", lambda f: pillow_png(Image.fromarray(_car(f).astype(np.uint8) * 255)), FAST_PNG),
    "mask, Pillow L 0/1": ("mask", lambda f: pillow_png(Image.fromarray(_car(f).astype(np.uint8))), FAST_PNG),
    "mask, OpenCV 0/255": ("mask", lambda f: opencv_png(_car(f).astype(np.uint8) * 255), FAST_PNG),
    "mask, OpenCV 0/1": ("mask", lambda f: opencv_png(_car(f).astype(np.uint8)), FAST_PNG),
    "mask, png_write crop": ("mask", lambda f: encode_mask_png(_car(f).shape, *_bounding_crop(_car(f))), FAST_PNG),
    "mask, 1-bit with tRNS": ("mask", lambda f: pillow_png(Image.fromarray(_car(f)), transparency=0), PILLOW),
    "mask, L with tRNS": (
        "mask",
        lambda f: pillow_png(Image.fromarray(_car(f).astype(np.uint8) * 255), transparency=255),
        PILLOW,
    ),
    "mask, 1-bit interlaced": ("mask", lambda f: handmade_png(_car(f), 1, interlaced=True), PILLOW),
    "mask, L interlaced": ("mask", lambda f: handmade_png(_car(f) * 255, 8, interlaced=True), PYWUFFS),
    "mask, 2-bit": ("mask", lambda f: handmade_png(_car(f) * 3, 2), PILLOW),
    "mask, Pillow P": ("mask", lambda f: palette_png(_car(f) * 26), PILLOW),
    "mask, Pillow I;16": ("mask", lambda f: pillow_png(Image.fromarray(_car(f).astype(np.uint16) * 300)), PILLOW),
    "photo, png_write Up": ("photo", lambda f: encode_png(f.image, up_filter=True), FAST_PNG),
    "photo, png_write None": ("photo", lambda f: encode_png(f.image, up_filter=False), FAST_PNG),
    "photo, Pillow": ("photo", lambda f: pillow_png(Image.fromarray(f.image)), PYWUFFS),
    "photo, Pillow optimize": ("photo", lambda f: pillow_png(Image.fromarray(f.image), optimize=True), PYWUFFS),
    "photo, OpenCV": ("photo", lambda f: opencv_png(f.image), PYWUFFS),
    "photo, interlaced": ("photo", lambda f: handmade_png(f.image, 8, interlaced=True), PYWUFFS),
    "photo with tRNS": ("photo", lambda f: pillow_png(Image.fromarray(f.image), transparency=(0, 0, 0)), PILLOW),
    "photo, RGBA": ("photo", lambda f: pillow_png(Image.fromarray(f.image).convert("RGBA")), PILLOW),
    "photo, OpenCV 16-bit": ("photo", lambda f: opencv_png(f.image.astype(np.uint16) * 257), PILLOW),
}


def png_io_reading(path: Path, reader: str) -> np.ndarray | None:
    try:
        if reader == "mask":
            return png_io.read_mask_runs(path).pixels()
        if reader == "ground truth":  # the organiser's files, read as the scorer reads them
            return png_io.decode_single_channel(path.read_bytes(), trusted=True)
        return png_io.read_rgb(path) if reader == "photo" else png_io.read_single_channel(path)
    except png_io.PngReadError:
        return None


def assert_same_reading(ours: np.ndarray | None, pillow: np.ndarray | None) -> None:
    assert (ours is None) == (pillow is None), "png_io refuses" if ours is None else "png_io accepts"
    if pillow is not None:
        assert ours.dtype == pillow.dtype and ours.shape == pillow.shape
        np.testing.assert_array_equal(ours, pillow)


@pytest.fixture
def decoders_used(monkeypatch) -> list[str]:
    """The fast decoders that returned pixels during the test; none means Pillow read the file."""
    used: list[str] = []

    def spy(name: str, decode):
        def spied(*args):
            result = decode(*args)
            if result is not None:
                used.append(name)
            return result

        return spied

    monkeypatch.setattr(png_io, "_wuffs", spy(PYWUFFS, png_io._wuffs))
    monkeypatch.setattr(png_io, "_fast", spy(FAST_PNG, png_io._fast))
    return used


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_read_as_pillow_reads_it_by_its_fastest_decoder(
    kind: str, frame: FrameData, tmp_path: Path, decoders_used: list[str]
) -> None:
    reader, write, decoder = KINDS[kind]
    path = tmp_path / "file.png"
    path.write_bytes(write(frame))
    pillow = pillow_reading(path, reader)
    assert pillow is not None and pillow.size > 0
    assert_same_reading(png_io_reading(path, reader), pillow)
    assert (decoders_used or [PILLOW]) == [decoder]


@pytest.mark.parametrize("kind", KINDS)
def test_without_pywuffs_each_kind_is_read_as_pillow_reads_it(
    kind: str, frame: FrameData, tmp_path: Path, decoders_used: list[str], monkeypatch
) -> None:
    """A participant's machine without a C++ compiler has no pywuffs: Pillow reads its share, same pixels."""
    monkeypatch.setattr(png_io, "_WUFFS_CONFIGS", {})
    reader, write, decoder = KINDS[kind]
    path = tmp_path / "file.png"
    path.write_bytes(write(frame))
    assert_same_reading(png_io_reading(path, reader), pillow_reading(path, reader))
    assert (decoders_used or [PILLOW]) == [FAST_PNG if decoder == FAST_PNG else PILLOW]


def test_the_frame_holds_what_the_kinds_need(frame: FrameData) -> None:
    """The tRNS kinds name a value the label maps hold (Wuffs would read it as 0), and there is a car."""
    assert (frame.label_ids == 7).any()
    assert 1000 < _car(frame).sum() < _car(frame).size // 2


# ---------------------------------------------------------------------------------- damaged files


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, payload) of each chunk, up to IEND."""
    chunks, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        if kind == b"IEND":
            break
        position += 12 + length
    return chunks


def _with_stream(data: bytes, stream: bytes, before: bytes = b"", after: bytes = b"") -> bytes:
    """The file with its image data replaced by one IDAT chunk holding ``stream``."""
    head = [chunk(kind, payload) for kind, payload in _chunks(data) if kind not in (b"IDAT", b"IEND")]
    return _SIGNATURE + b"".join(head) + before + chunk(b"IDAT", stream) + after + chunk(b"IEND", b"")


def _with_header(data: bytes, header: bytes) -> bytes:
    """The file with another IHDR payload (its checksum redone)."""
    return data[:8] + chunk(b"IHDR", header) + data[33:]


def _stream(data: bytes) -> bytes:
    return b"".join(payload for kind, payload in _chunks(data) if kind == b"IDAT")


def _row_stride(data: bytes) -> int:
    width, _, depth, color_type, _ = png_io.read_header(data)
    return (width * {0: 1, 2: 3, 3: 1}[color_type] * depth + 7) // 8 + 1


def _recompressed(data: bytes, edit: Callable[[bytearray, int], bytes]) -> bytes:
    raw = bytearray(zlib.decompress(_stream(data)))
    return _with_stream(data, zlib.compress(edit(raw, _row_stride(data))))


def _bad_filter(raw: bytearray, stride: int) -> bytes:
    raw[stride * 3] = 7
    return bytes(raw)


def _split_by_text(data: bytes) -> bytes:
    stream = _stream(data)
    half = len(stream) // 2
    return _with_stream(data, stream[:half], after=chunk(b"tEXt", b"k\x00v") + chunk(b"IDAT", stream[half:]))


def _bad_checksum_of(kind: bytes) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        start = data.index(kind) - 4
        (length,) = struct.unpack(">I", data[start : start + 4])
        end = start + 12 + length
        return data[: end - 4] + bytes(b ^ 0xFF for b in data[end - 4 : end]) + data[end:]

    return damage


# name: (damage, Pillow's verdict: True reads, False refuses, None depends on the file)
DAMAGES: dict[str, tuple[Callable[[bytes], bytes], bool | None]] = {
    # A complete zlib stream without the last rows: Pillow reads them as 0 (see png_io's docstring).
    "stream ends early": (lambda d: _recompressed(d, lambda raw, stride: bytes(raw[: -3 * stride])), True),
    "stream cut short": (lambda d: _with_stream(d, _stream(d)[: len(_stream(d)) // 2]), False),
    "rows past the last": (lambda d: _recompressed(d, lambda raw, stride: bytes(raw + raw[: 2 * stride])), True),
    "bytes past the stream": (lambda d: _with_stream(d, _stream(d) + b"junk"), True),
    "bad row filter": (lambda d: _recompressed(d, _bad_filter), False),
    "bad Adler-32": (lambda d: _with_stream(d, _stream(d)[:-4] + bytes(4)), False),
    "bad IDAT CRC": (_bad_checksum_of(b"IDAT"), True),  # Pillow checks the chunks before the image data only
    "bad IHDR CRC": (_bad_checksum_of(b"IHDR"), False),
    "unknown filter method in IHDR": (lambda d: _with_header(d, d[16:27] + b"\x01" + d[28:29]), False),
    "IHDR one byte longer": (lambda d: _with_header(d, d[16:29] + b"\x00"), None),
    "text before the image data": (lambda d: _with_stream(d, _stream(d), before=chunk(b"tEXt", b"k\x00v")), True),
    "bad CRC before the image data": (
        lambda d: _with_stream(d, _stream(d), before=chunk(b"tEXt", b"k\x00v", crc=0)),
        False,
    ),
    "text after the image data": (lambda d: _with_stream(d, _stream(d), after=chunk(b"tEXt", b"k\x00v")), True),
    "malformed pHYs after the image data": (
        lambda d: _with_stream(d, _stream(d), after=chunk(b"pHYs", b"\x00")),
        False,
    ),
    "image data split by a chunk": (_split_by_text, False),
    "no IEND": (lambda d: d[:-12], True),
    "IEND's CRC cut": (lambda d: d[:-4], True),
    **{f"truncated at {k}/8": ((lambda d, k=k: d[: len(d) * k // 8]), None) for k in range(1, 8)},
}

DAMAGED_KINDS = (
    "labels, Pillow L",
    "labels, OpenCV",
    "instanceIds, Pillow I;16",
    "disparity, OpenCV uint16",
    "mask, Pillow 1",
    "mask, OpenCV 0/255",
    "mask, png_write crop",
    "photo, png_write Up",
    "photo, Pillow",
)


@pytest.fixture(scope="module")
def originals(frame: FrameData) -> dict[str, bytes]:
    return {kind: KINDS[kind][1](frame) for kind in DAMAGED_KINDS}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("kind", DAMAGED_KINDS)
def test_damaged_files_are_refused_exactly_where_pillow_refuses_them(
    kind: str, damage: str, originals: dict[str, bytes], tmp_path: Path
) -> None:
    reader = KINDS[kind][0]
    damaged, verdict = DAMAGES[damage]
    path = tmp_path / "damaged.png"
    path.write_bytes(damaged(originals[kind]))
    pillow = pillow_reading(path, reader)
    if verdict is not None:
        assert (pillow is not None) == verdict, "Pillow's verdict changed: revisit png_io's routing"
    assert_same_reading(png_io_reading(path, reader), pillow)


def test_a_stream_that_ends_early_reads_its_missing_rows_as_zero(frame: FrameData, tmp_path: Path) -> None:
    """As Pillow and the official scripts read it (png_io chooses to score such a file, not refuse it)."""
    path = tmp_path / "short.png"
    path.write_bytes(DAMAGES["stream ends early"][0](pillow_png(Image.fromarray(frame.instance_ids))))
    pixels = png_io.read_single_channel(path)
    np.testing.assert_array_equal(pixels[:-3], frame.instance_ids[:-3])
    assert not pixels[-3:].any()


TOP_ROWS_KINDS = (
    "disparity, Pillow I;16",
    "disparity, OpenCV uint16",
    "disparity, png_write",
    "instanceIds, Pillow I;16",
    "labels, Pillow L",
    "labels, interlaced",
    "instanceIds, interlaced",
    "labels with tRNS",
)


@pytest.mark.parametrize("kind", TOP_ROWS_KINDS)
def test_top_rows_are_pillows_first_rows_and_pywuffs_stops_there(
    kind: str, frame: FrameData, decoders_used: list[str]
) -> None:
    """decode_top_rows (a disparity's rows down to the lowest instance) equals Pillow's first rows; pywuffs
    decodes only those rows of a plain file; an interlaced one (its rows are scattered over the passes) and a
    tRNS one are decoded whole, by their usual decoder, and cut."""
    data = KINDS[kind][1](frame)
    with Image.open(io.BytesIO(data)) as image:
        pillow = np.asarray(image)
    height = pillow.shape[0]
    for rows in (1, 97, height - 1, height, height + 5, 0):
        decoders_used.clear()
        got = png_io.decode_top_rows(data, rows)
        assert got.dtype == pillow.dtype
        np.testing.assert_array_equal(got, pillow[:rows])
        plain = "interlaced" not in kind and "tRNS" not in kind
        if plain and 0 < rows < height:
            assert decoders_used == [PYWUFFS]


def test_top_rows_still_refuse_a_damaged_header(frame: FrameData) -> None:
    data = bytearray(KINDS["disparity, Pillow I;16"][1](frame))
    data[29] ^= 1  # the IHDR checksum
    with pytest.raises(png_io.PngReadError):
        png_io.decode_top_rows(bytes(data), 10)
    longer = DAMAGES["IHDR one byte longer"][0](KINDS["disparity, Pillow I;16"][1](frame))  # as Pillow decides
    try:
        with Image.open(io.BytesIO(longer)) as image:
            pillow = np.asarray(image)
    except Exception:  # Pillow refuses it
        pillow = None
    if pillow is None:
        with pytest.raises(png_io.PngReadError):
            png_io.decode_top_rows(longer, 10)
    else:
        np.testing.assert_array_equal(png_io.decode_top_rows(longer, 10), pillow[:10])


# An 8-bit mask found by mutation fuzzing (an attack on the decoders): its zlib stream has no end and inflates to
# more bytes than its rows need, yet Pillow runs out of input before its last row ("image file is truncated").
_STREAM_PAST_ITS_ROWS_WITHOUT_AN_END = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000002d0000001a0800000000060e8a530000003b49444154789c63662005b090a4"
    "9a9132d5ec30c64f4a5dc2ce443b9790683649aa7f32a38bc0bdfd178b72d2429034b349534d5a3aa1305551d197b4740969"
    "073d10760000001749444154803497d012405dc28e5f159a60270e90967700460c0b5d2052d04c0000000049454e44ae4260"
    "82"
)


def test_a_mask_whose_stream_runs_past_its_rows_without_an_end_is_refused_as_pillow_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    path.write_bytes(_STREAM_PAST_ITS_ROWS_WITHOUT_AN_END)
    assert pillow_reading(path, "mask") is None
    with pytest.raises(png_io.PngReadError, match="truncated"):
        png_io.read_mask_runs(path)
    with pytest.raises(png_io.PngReadError, match="truncated"):
        list(png_io.read_masks_runs([path]))


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("first_filter", range(5))
def test_top_rows_whatever_the_first_row_filter(depth: int, first_filter: int) -> None:
    """pywuffs stopped early on a file whose first row is Paeth-filtered gave other pixels in the first rows (an
    attack found it): such files, and Average ones, are decoded whole; the rows are Pillow's whatever the filter."""
    rng = np.random.default_rng(first_filter)
    pixels = rng.integers(0, 2**depth, (9, 16)).astype(np.uint16 if depth == 16 else np.uint8)
    data = filtered_png(pixels, depth, np.array([first_filter] + [row % 5 for row in range(1, 9)]))
    with Image.open(io.BytesIO(data)) as image:
        pillow = np.asarray(image)
    np.testing.assert_array_equal(pillow, pixels)
    for top in (1, 2, 5, 9):
        np.testing.assert_array_equal(png_io.decode_top_rows(data, top), pillow[:top])


def test_pywuffs_is_asked_for_bytes_checksums_and_bounded_dimensions() -> None:
    """A str would be read as a file's path; Wuffs skips checksums unless told; the header checks come first."""
    for config in png_io._WUFFS_CONFIGS.values():
        assert config.quirks == {png_io.ImageDecoderQuirks.IGNORE_CHECKSUM: 0}
        assert config.max_incl_dimension == 4096
    data = encode_png(np.zeros((4, 5), np.uint8))
    assert png_io._wuffs(memoryview(data), 0, 8).shape == (4, 5)


def test_png_io_imports_and_reads_without_pywuffs(tmp_path: Path) -> None:
    """Without pywuffs installed, png_io still imports and decodes (Pillow stands in)."""
    path = tmp_path / "labels.png"
    path.write_bytes(pillow_png(Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))))
    script = (
        "import sys; sys.modules['pywuffs'] = None\n"  # what an absent package looks like to import
        "from cityscapes_competition.png import png_io\n"
        "assert png_io._WUFFS_CONFIGS == {}\n"
        f"print(png_io.read_single_channel({str(path)!r}).sum())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(sum(range(12)))
