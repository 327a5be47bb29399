"""fast_png gives exactly Pillow's pixels for what it reads (1-bit masks, None/Up photos) and declines the rest."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from helpers import filter_row, filtered_png, memory_growth_within, png_chunk
from PIL import Image

from cityscapes_competition.png import fast_png
from cityscapes_competition.png.png_io import (
    PngReadError,
    decode_single_channel,
    read_mask_runs,
    read_rgb,
    read_single_channel,
)


def _scene(rng: np.random.Generator, height: int, width: int, high: int) -> np.ndarray:
    """Blocky label-like content: constant runs with edges, where Paeth prefers 'left'."""
    image = np.full((height, width), rng.integers(0, high), np.int64)
    for _ in range(12):
        y, x = rng.integers(0, height), rng.integers(0, width)
        image[y : y + rng.integers(1, height), x : x + rng.integers(1, width)] = rng.integers(0, high)
    noisy = rng.random((height, width)) < 0.02
    image[noisy] = rng.integers(0, high, noisy.sum())
    return image


@pytest.mark.parametrize("seed", range(8))
def test_masks_decode_as_pillow_reads_them_for_every_filter_mix(seed: int) -> None:
    """1-bit masks: Sub and Up rows in numpy, a few Average and Paeth rows (Pillow writes some) byte by byte."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(2, 70)), int(rng.integers(2, 150))
    pixels = _scene(rng, height, width, 2)
    filters = rng.integers(0, 3, height)
    filters[rng.integers(0, height, 6)] = rng.integers(3, 5, 6)
    data = filtered_png(pixels, 1, filters, idat_pieces=int(rng.integers(1, 4)))
    expected = np.asarray(Image.open(io.BytesIO(data)))
    decoded = fast_png.decode_grayscale(data)
    assert decoded is not None and decoded.dtype == expected.dtype == bool
    np.testing.assert_array_equal(decoded, expected)
    packed, packed_width, packed_height = fast_png.nonzero_bitmask_rows(data)
    assert (packed_width, packed_height) == (width, height)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1, count=width).view(bool), expected)


def _sparse_mask(rng: np.random.Generator, height: int, width: int, high: int) -> np.ndarray:
    """A mask as instance masks are: zeros but for a few blobs, some rows apart, of values up to ``high``."""
    mask = np.zeros((height, width), np.int64)
    for _ in range(int(rng.integers(1, 4))):
        y, x = rng.integers(0, height), rng.integers(0, width)
        mask[y : y + rng.integers(1, height // 3 + 2), x : x + rng.integers(1, width // 2 + 2)] = rng.integers(
            1, high + 1
        )
    return mask


@pytest.mark.parametrize("depth", [1, 8])
@pytest.mark.parametrize("seed", range(12))
def test_mask_pixels_are_pillows_for_every_filter_mix(depth: int, seed: int) -> None:
    """Only the rows that may hold pixels are unfiltered: whatever the filters (each alone, or mixed as
    Pillow and OpenCV mix them), the nonzero pixels are those of Pillow's reading."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(2, 90)), int(rng.integers(2, 200))
    mask = _sparse_mask(rng, height, width, 1 if depth == 1 else int(rng.choice([1, 255, 200])))
    filter_choice = seed % 6  # each filter alone, then mixes
    filters = np.full(height, filter_choice) if filter_choice < 5 else rng.integers(0, 5, height)
    data = filtered_png(mask, depth, filters, idat_pieces=int(rng.integers(1, 3)))
    expected = np.flatnonzero(np.asarray(Image.open(io.BytesIO(data)).convert("L")))
    runs = fast_png.nonzero_mask_runs(data)
    assert runs is not None
    np.testing.assert_array_equal(runs.pixels(), expected)


@pytest.mark.parametrize("kind", [3, 4])
def test_masks_past_the_byte_budget_go_to_a_library_and_read_the_same(tmp_path, kind: int) -> None:
    """Noise in Average or Paeth rows is all edges: past 4,096 bytes computed one by one, Pillow (1-bit) or
    pywuffs (8-bit) decodes the mask, for the same pixels."""
    noise = np.random.default_rng(kind).integers(0, 2, (90, 400))
    for depth in (1, 8):
        data = filtered_png(noise * (255 if depth == 8 else 1), depth, np.full(90, kind))
        assert fast_png.nonzero_mask_runs(data) is None
        path = tmp_path / f"noise_{depth}.png"
        path.write_bytes(data)
        np.testing.assert_array_equal(read_mask_runs(path).pixels(), np.flatnonzero(noise))


def test_masks_of_noise_in_sub_rows_go_to_pywuffs_and_read_the_same(tmp_path) -> None:
    """Past 65,536 nonzero bytes in Sub rows (an OpenCV mask holds a few thousand) pywuffs is faster."""
    noise = np.random.default_rng(5).integers(0, 256, (300, 300))
    data = filtered_png(noise, 8, np.full(300, 1))
    assert fast_png.nonzero_mask_runs(data) is None
    path = tmp_path / "noise.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_mask_runs(path).pixels(), np.flatnonzero(noise))


def test_sub_rows_hold_their_sums_between_edges() -> None:
    """Worked by hand: Sub bytes 0 5 0 0 251 0 decode to 0 5 5 5 0 0 (5 + 251 = 256 = 0), and a row's sum
    restarts at 0: the next row's 0 7 0 0 0 0 decodes to 0 7 7 7 7 7."""
    raw = np.array([[0, 5, 0, 0, 251, 0], [0, 7, 0, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(fast_png._undo_sub(raw.copy()), [[0, 5, 5, 5, 0, 0], [0, 7, 7, 7, 7, 7]])


def test_paeth_rows_repeat_the_left_byte_away_from_edges() -> None:
    """Worked by hand, above = 0 9 9 9 0 0: at byte 1 the estimate 0 + 9 - 0 = 9 is nearest 'above' (9):
    9 + 0 = 9; bytes 2-3 have equal bytes above and above-left, so repeat their left (9); at byte 4 the
    estimate 9 + 0 - 9 = 0 is nearest 'above' (0) before 'above-left' (9): 0 + 3 = 3; byte 5 repeats 3."""
    above = np.array([0, 9, 9, 9, 0, 0], np.uint8)
    raw = np.array([0, 0, 0, 0, 3, 0], np.uint8)
    np.testing.assert_array_equal(fast_png._undo_paeth(raw, above, None), [0, 9, 9, 9, 3, 3])


@pytest.mark.parametrize("depth", [8, 16])
def test_deeper_grayscale_is_left_to_pywuffs(depth: int) -> None:
    """pywuffs reads 8- and 16-bit gray 2 to 4.5 times faster than numpy did (test_png_decoders.py)."""
    pixels = _scene(np.random.default_rng(depth), 20, 30, 2**depth)
    data = filtered_png(pixels, depth, np.zeros(20, int))
    assert fast_png.decode_grayscale(data) is None and fast_png.nonzero_bitmask_rows(data) is None


@pytest.mark.parametrize("seed", range(4))
def test_photos_decode_as_pillow_reads_them(seed: int) -> None:
    """Rows filtered None or Up, as png_write writes them."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(2, 60)), int(rng.integers(1, 120))
    pixels = np.stack([_scene(rng, height, width, 256) for _ in range(3)], axis=-1)
    filters = rng.choice([0, 2], height)
    data = filtered_png(pixels, 8, filters, idat_pieces=int(rng.integers(1, 4)))
    decoded = fast_png.decode_rgb(data)
    assert decoded is not None and decoded.shape == (height, width, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("kind", [1, 3, 4])
def test_photos_with_other_filters_go_to_pywuffs_and_read_the_same(tmp_path, kind: int) -> None:
    """pywuffs beats numpy on Sub rows of three-byte pixels (18 against 24 ms for 2048x1024) and on Average
    and Paeth rows (most encoders' choice for photos), even from the last row only."""
    rng = np.random.default_rng(kind)
    pixels = np.stack([_scene(rng, 40, 70, 256) for _ in range(3)], axis=-1)
    filters = np.zeros(40, int)
    filters[-1] = kind
    data = filtered_png(pixels, 8, filters)
    assert fast_png.decode_rgb(data) is None
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_rgb(path), pixels)


def test_photos_filtered_as_encoders_filter_them_are_told_from_their_first_rows(monkeypatch) -> None:
    """A photo whose first rows are Paeth is declined before its megabytes are inflated."""
    pixels = np.random.default_rng(13).integers(0, 256, (40, 70, 3))
    monkeypatch.setattr(fast_png, "_inflate", lambda *args: pytest.fail("inflated whole"))
    assert fast_png.decode_rgb(filtered_png(pixels, 8, np.full(40, 4))) is None


def _with_height(data: bytes, height: int) -> bytes:
    """The PNG with another height in its header (and the header's checksum redone)."""
    header = data[16:20] + struct.pack(">I", height) + data[24:29]
    return data[:8] + png_chunk(b"IHDR", header) + data[33:]


def _inflated_with_libdeflate(monkeypatch) -> list[int]:
    calls = []
    inflate = fast_png.deflate.zlib_decompress

    def counted(data, size):
        calls.append(size)
        return inflate(data, size)

    monkeypatch.setattr(fast_png.deflate, "zlib_decompress", counted)
    return calls


def test_megabyte_photos_inflate_with_libdeflate_as_pillow_reads_them(monkeypatch) -> None:
    rng = np.random.default_rng(8)
    height, width = 600, 700  # 1.26 MB of rows: libdeflate's share; masks stay with zlib-ng
    pixels = rng.integers(0, 256, (height, width, 3))
    data = filtered_png(pixels, 8, rng.choice([0, 2], height), idat_pieces=3)
    calls = _inflated_with_libdeflate(monkeypatch)
    np.testing.assert_array_equal(fast_png.decode_rgb(data), pixels)
    assert calls == [height * (3 * width + 1)]
    mask = filtered_png(rng.random((1024, 2048)) < 0.01, 1, np.zeros(1024, int))
    assert fast_png.decode_grayscale(mask) is not None and len(calls) == 1


def test_megabyte_streams_libdeflate_refuses_are_read_as_pillow_reads_them(monkeypatch) -> None:
    """More data than the header declares: Pillow reads the declared rows, and so does zlib-ng after
    libdeflate refuses. A wrong checksum or a stream cut short: an error for all."""
    rng = np.random.default_rng(9)
    pixels = rng.integers(0, 256, (610, 700, 3))
    calls = _inflated_with_libdeflate(monkeypatch)
    longer = _with_height(filtered_png(pixels, 8, np.zeros(610, int)), 600)
    decoded = fast_png.decode_rgb(longer)
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(io.BytesIO(longer))))
    np.testing.assert_array_equal(decoded, pixels[:600])
    data = filtered_png(pixels, 8, np.zeros(610, int))
    end = data.rindex(b"IEND") - 8  # the last IDAT's checksum, then the stream's Adler-32 before it
    wrong_checksum = data[: end - 8] + bytes(4) + data[end - 4 :]
    with pytest.raises(fast_png.PngFormatError, match="corrupt image data"):
        fast_png.decode_rgb(wrong_checksum)
    assert len(calls) == 2
    with pytest.raises(fast_png.PngFormatError, match="truncated"):
        fast_png.decode_rgb(_with_height(data, 620))


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16"])
def test_photos_in_other_colour_types_are_converted_as_pillow_does(tmp_path, mode: str) -> None:
    rgb = Image.fromarray(np.random.default_rng(6).integers(0, 256, (9, 13, 3), dtype=np.uint8))
    image = rgb.convert(mode) if mode != "I;16" else Image.fromarray(np.arange(117, dtype=np.uint16).reshape(9, 13))
    path = tmp_path / f"{mode.replace(';', '')}.png"
    image.save(path)
    with Image.open(path) as expected:
        np.testing.assert_array_equal(read_rgb(path), np.asarray(expected.convert("RGB")))


def test_unreadable_photos_are_refused(tmp_path) -> None:
    jpeg = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(jpeg, format="JPEG")
    with pytest.raises(PngReadError, match="JPEG"):
        read_rgb(jpeg)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(filtered_png(np.zeros((30, 30, 3), np.uint8), 8, np.zeros(30))[:60])
    with pytest.raises(PngReadError, match="corrupt or truncated"):
        read_rgb(truncated)


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("seed", range(3))
def test_grayscale_images_read_as_pillow_reads_them_for_every_filter_mix(tmp_path, depth: int, seed: int) -> None:
    """pywuffs's reading, through png_io, of files whose rows take every filter (an encoder of our own)."""
    rng = np.random.default_rng(11 + seed)
    pixels = _scene(rng, int(rng.integers(2, 64)), int(rng.integers(2, 90)), 2**depth)
    data = filtered_png(pixels, depth, rng.integers(0, 5, len(pixels)), idat_pieces=int(rng.integers(1, 4)))
    path = tmp_path / "filters.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_single_channel(path), pixels)


def test_reader_falls_back_to_pillow_for_palette_images(tmp_path) -> None:
    path = tmp_path / "palette.png"
    values = np.arange(48, dtype=np.uint8).reshape(6, 8) % 34
    Image.fromarray(values).convert("P").save(path)
    np.testing.assert_array_equal(read_single_channel(path), np.asarray(Image.open(path)))


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "I;16"])
def test_mask_pixels_match_the_official_reading(tmp_path, mode: str) -> None:
    """The official code reads a mask as ``np.array(Image.open(f).convert('L')) != 0``."""
    rng = np.random.default_rng(3)
    base = (rng.random((40, 61)) < 0.3).astype(np.uint8)
    if mode == "RGB":
        colors = np.array([[0, 0, 0], [0, 0, 1], [200, 10, 10]], np.uint8)  # (0,0,1) is 0 in gray
        image = Image.fromarray(colors[base + (rng.random((40, 61)) < 0.2)])
    elif mode == "I;16":
        image = Image.fromarray(base.astype(np.uint16) * 300)
    else:
        image = Image.fromarray(base * 255).convert(mode)
    path = tmp_path / f"mask_{mode.replace(';', '')}.png"
    image.save(path)
    official = np.flatnonzero(np.array(Image.open(path).convert("L")) != 0)
    np.testing.assert_array_equal(read_mask_runs(path).pixels(), official)


def test_oversized_header_is_refused_before_decoding(tmp_path) -> None:
    """A bomb declares a huge size; it is refused from its header."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = zlib.compress(b"\x00" * 10_000_000)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", bomb) + png_chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(PngReadError, match="larger than any Cityscapes image"):
        read_single_channel(path)


def test_truncated_and_foreign_files_are_refused(tmp_path) -> None:
    data = filtered_png(np.ones((20, 30), np.int64), 8, np.zeros(20, int))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PngReadError, match="corrupt or truncated"):
        read_single_channel(truncated)
    jpeg = tmp_path / "photo.png"
    Image.new("L", (8, 8)).save(jpeg, format="JPEG")
    with pytest.raises(PngReadError, match="JPEG"):
        read_single_channel(jpeg)
    with pytest.raises(PngReadError, match="is 30x20 pixels but the ground truth is 31x20"):
        read_single_channel(truncated, (31, 20))


def test_masks_read_together_are_each_read_as_alone(tmp_path) -> None:
    """read_masks_runs unfilters the masks of an image together: 1- and 8-bit, every filter mix, Sub-only
    (OpenCV), empty, one past the byte budget (noise: a library reads it) and one of another size among them,
    each gives the pixels Pillow reads, in order."""
    from cityscapes_competition.png.png_io import read_masks_runs

    rng = np.random.default_rng(7)
    height, width = 60, 130
    paths, expected = [], []
    for index in range(14):
        depth = 1 if index % 2 else 8
        size = (40, 70) if index >= 12 else (height, width)  # a group of another size
        mask = _sparse_mask(rng, *size, 1 if depth == 1 else 255)
        if index == 5:
            mask[:] = 0
        filters = np.full(size[0], 1) if index in (2, 4) else rng.integers(0, 5, size[0])
        if index == 8:  # 8-bit noise in Paeth rows: 60 rows of about 130 edges
            mask, filters = rng.integers(0, 2, (height, width)) * 255, np.full(height, 4)
        path = tmp_path / f"mask_{index}.png"
        path.write_bytes(filtered_png(mask, depth, filters))
        paths.append(path)
        expected.append(np.flatnonzero(mask))
    assert fast_png.nonzero_mask_runs(paths[8].read_bytes()) is None  # noise past the byte budget
    for got, want in zip(read_masks_runs(paths), expected, strict=True):
        np.testing.assert_array_equal(got.pixels(), want)
    for got, path in zip(read_masks_runs(paths), paths, strict=True):
        np.testing.assert_array_equal(got.pixels(), read_mask_runs(path).pixels())


def test_a_bad_mask_among_others_is_named(tmp_path) -> None:
    from cityscapes_competition.png.png_io import read_masks_runs

    good = filtered_png(_sparse_mask(np.random.default_rng(1), 20, 30, 1), 1, np.zeros(20, int))
    paths = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    paths[0].write_bytes(good)
    paths[1].write_bytes(b"GIF89a" + bytes(40))  # another format named .png
    paths[2].write_bytes(good)
    with pytest.raises(PngReadError) as caught:
        list(read_masks_runs(paths))
    assert caught.value.path == str(paths[1])


def _packed_1_bit_png(rows: np.ndarray, width: int) -> bytes:
    """A 1-bit PNG of already packed rows (their padding bits as given), every row filtered None."""
    stream = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, len(rows), 1, 0, 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(stream))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("width", [8, 13, 16, 63, 64])
def test_runs_of_1_bit_rows_across_bytes_rows_and_padding(width: int) -> None:
    """1-bit runs come from the bytes where a run starts or stops: runs across byte boundaries, whole rows set,
    a run at a row's end beside one at the next row's start, single pixels, and set padding bits past the
    width (Pillow reads none) give Pillow's pixels."""
    rng = np.random.default_rng(width)
    height = 9
    mask = np.zeros((height, width), bool)
    mask[0] = True
    mask[1, width // 2 :] = True
    mask[2, : width // 3 + 1] = True
    mask[3] = rng.random(width) < 0.5
    mask[4, ::2] = True
    mask[6, 7 : width - 1] = True
    mask[7:] = rng.random((2, width)) < 0.8
    rows = np.packbits(mask, axis=1)
    if width % 8:
        rows[::2, -1] |= np.uint8((1 << (8 - width % 8)) - 1)  # padding bits set on every other row
    data = _packed_1_bit_png(rows, width)
    expected = np.flatnonzero(np.asarray(Image.open(io.BytesIO(data)).convert("L")))
    np.testing.assert_array_equal(expected, np.flatnonzero(mask))
    runs = fast_png.nonzero_mask_runs(data)
    np.testing.assert_array_equal(runs.pixels(), expected)
    assert (runs.stops > runs.starts).all() and (runs.starts[1:] >= runs.stops[:-1]).all()


@pytest.mark.parametrize("depth", [1, 8])
def test_rows_below_an_up_filtered_object_are_left_when_they_decode_to_zeros(depth: int) -> None:
    """png_write's masks are Up on every row: below an object, the row that cancels it and the zero rows after
    it decode to zeros, found from one sum, and are not unfiltered; where the sum is not zero (an object
    running on to the bottom, two objects, a Sub row at the base) every row below stays, and the pixels are
    Pillow's in every case."""
    height, width = 40, 24
    high = 1 if depth == 1 else 255
    middle = np.zeros((height, width), np.uint8)
    middle[10:20, 3:15] = high
    to_bottom = np.zeros((height, width), np.uint8)
    to_bottom[25:, 5:9] = high
    two = middle.copy()
    two[30:33, 20:] = high
    up = np.full(height, 2)
    none_base = up.copy()
    none_base[8] = 0
    sub_base = up.copy()
    sub_base[8] = 1
    cases = [  # (mask, filters, the rows that may hold pixels)
        (middle, up, 11),  # rows 10-20: the object and the row cancelling it
        (middle, none_base, 11),
        (middle, sub_base, 30),  # a Sub row at the base: no sum, every row from the object down
        (to_bottom, up, 15),
        (two, up, 24),  # rows 10-33: the gap between the objects stays; only the rows below the last are summed
    ]
    for mask, filters, may_hold in cases:
        data = filtered_png(mask, depth, filters)
        rows = fast_png._inflated_rows(data, height, (width * depth + 7) // 8)
        assert fast_png._rows_that_may_hold_pixels(rows).sum() == may_hold
        expected = np.flatnonzero(np.asarray(Image.open(io.BytesIO(data)).convert("L")))
        np.testing.assert_array_equal(fast_png.nonzero_mask_runs(data).pixels(), expected)


def test_padding_bits_past_the_width_are_not_pixels() -> None:
    """A 1-bit row's last byte may carry bits past the width (a writer's leftovers): Pillow reads none."""
    width, height = 13, 4
    mask = np.zeros((height, width), bool)
    mask[1, 12] = True
    rows = np.packbits(mask, axis=1)
    rows[:, -1] |= 0b0000_0111  # the three bits past column 12
    data = _packed_1_bit_png(rows, width)
    expected = np.flatnonzero(np.asarray(Image.open(io.BytesIO(data)).convert("L")))
    np.testing.assert_array_equal(expected, [1 * width + 12])
    np.testing.assert_array_equal(fast_png.nonzero_mask_runs(data).pixels(), expected)


@pytest.mark.parametrize("filters", ["none", "up", "sub"])
@pytest.mark.parametrize("palette_entries", [0, 2, 256])
def test_palette_label_maps_read_as_their_indices(filters: str, palette_entries: int) -> None:
    """numpy reads Pillow's "P" image as its indices, whatever the palette holds (even nothing, or fewer
    entries than the indices used): so does fast_png for None and Up rows; Sub rows go to Pillow."""
    rng = np.random.default_rng(palette_entries)
    indices = _scene(rng, 30, 50, 34).astype(np.uint8)
    above = np.zeros(50, np.int64)
    stream = bytearray()
    for row in indices.astype(np.int64):
        kind = {"none": 0, "up": 2, "sub": 1}[filters]
        stream.append(kind)
        stream += filter_row(row, above, 1, kind).tobytes()
        above = row
    header = struct.pack(">IIBBBBB", 50, 30, 8, 3, 0, 0, 0)
    palette = png_chunk(b"PLTE", bytes(i % 256 for i in range(palette_entries * 3))) if palette_entries else b""
    chunks = (
        png_chunk(b"IHDR", header)
        + palette
        + png_chunk(b"IDAT", zlib.compress(bytes(stream)))
        + png_chunk(b"IEND", b"")
    )
    data = b"\x89PNG\r\n\x1a\n" + chunks
    expected = np.asarray(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(expected, indices)
    decoded = fast_png.decode_palette_indices(data)
    assert (decoded is None) == (filters == "sub")
    if decoded is not None:
        np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(decode_single_channel(data), expected)


@pytest.mark.parametrize("depth", [1, 8])
def test_long_up_runs_continue_past_the_rows_stepped_together(depth: int) -> None:
    """Runs of Up rows step down together for 64 rows, then each goes on alone: a run of 150 rows (png_write's
    masks are Up on every row) and runs of 1 to 70 rows between None rows, as Pillow mixes them."""
    rng = np.random.default_rng(depth)
    mask = _sparse_mask(rng, 150, 90, 1 if depth == 1 else 255)
    mask[20:140, 10:80] = 1 if depth == 1 else 255
    for filters in (np.full(150, 2), np.where(rng.random(150) < 0.9, 2, 0)):
        data = filtered_png(mask, depth, filters)
        np.testing.assert_array_equal(fast_png.nonzero_mask_runs(data).pixels(), np.flatnonzero(mask))


def test_a_palette_of_more_than_256_colours_is_refused_as_pillow_refuses_it() -> None:
    """Pillow's parse accepts a PLTE chunk of 771 bytes and more, its decoding refuses it: so does png_io."""
    raw = zlib.compress(b"\x00" + bytes([7, 7, 7, 7]))
    header = struct.pack(">IIBBBBB", 4, 1, 8, 3, 0, 0, 0)
    for palette_bytes, accepted in ((768, True), (770, True), (771, False), (900, False)):
        chunks = png_chunk(b"IHDR", header) + png_chunk(b"PLTE", bytes(palette_bytes)) + png_chunk(b"IDAT", raw)
        data = b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IEND", b"")
        if accepted:
            np.testing.assert_array_equal(decode_single_channel(data), [[7, 7, 7, 7]])
        else:
            with pytest.raises(PngReadError, match="palette"):
                decode_single_channel(data)


def test_mask_batches_are_bounded_by_their_rows_pixels_and_bytes(tmp_path, monkeypatch) -> None:
    """The masks read together are bounded by the bytes and the pixels of their rows that may hold pixels and
    by their bytes, files included (a mask a library reads counts its file): a batch holds one mask more only
    when alone."""
    from cityscapes_competition.png import png_io

    sizes: list[tuple[int, int]] = []  # per batch: masks, masks fast_png reads
    batch = png_io._masks_of_batch

    def spy(pending):
        sizes.append((len(pending), sum(rows is not None for *_, rows in pending)))
        return batch(pending)

    monkeypatch.setattr(png_io, "_masks_of_batch", spy)
    rng = np.random.default_rng(3)
    paths, expected = [], []
    for index in range(9):
        mask = _sparse_mask(rng, 40, 64, 255)
        depth = 16 if index % 3 == 0 else 8  # 16-bit: a library reads it; its file counts
        path = tmp_path / f"m{index}.png"
        path.write_bytes(filtered_png(mask * 257 if depth == 16 else mask, depth, np.zeros(40, int)))
        paths.append(path)
        expected.append(np.flatnonzero(mask))
    # 1 byte of rows, 1 pixel or 1 byte: a mask a batch (no two 16-bit masks follow each other); none: all in one
    big = 10**9
    for row_bytes, pixels, size, most, most_fast in (
        (1, big, big, 1, 1),
        (big, 1, big, 1, 1),
        (big, big, 1, 1, 1),
        (big, big, big, 9, 6),
    ):
        sizes.clear()
        monkeypatch.setattr(png_io, "_MASK_BATCH_ROW_BYTES", row_bytes)
        monkeypatch.setattr(png_io, "_MASK_BATCH_PIXELS", pixels)
        monkeypatch.setattr(png_io, "_MASK_BATCH_BYTES", size)
        for got, want in zip(png_io.read_masks_runs(paths), expected, strict=True):
            np.testing.assert_array_equal(got.pixels(), want)
        assert max(n for n, _ in sizes) <= most and max(fast for _, fast in sizes) == most_fast
        assert sum(n for n, _ in sizes) == 9


def test_a_ground_truth_header_too_large_to_size_is_not_up_filtered() -> None:
    from cityscapes_competition.png.png_io import rows_filtered_none_or_up

    header = struct.pack(">IIBBBBB", 0xFFFFFFFF, 0xFFFFFFFF, 16, 6, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(10))) + png_chunk(b"IEND", b"")
    assert rows_filtered_none_or_up(b"\x89PNG\r\n\x1a\n" + chunks) is False


@pytest.mark.parametrize("pieces", [1, 7])
def test_the_first_row_filter_is_read_off_the_first_inflated_byte(pieces: int) -> None:
    """However the image data is split into IDAT chunks; None where the stream is not zlib."""
    pixels = np.random.default_rng(pieces).integers(0, 256, (6, 40))
    for kind in range(5):
        data = filtered_png(pixels, 8, np.array([kind, 4, 3, 2, 1, 0]), idat_pieces=pieces)
        assert fast_png.first_row_filter(data) == kind == fast_png.row_filters(data)[0]
    damaged = bytearray(filtered_png(pixels, 8, np.zeros(6, int)))
    damaged[damaged.index(b"IDAT") + 4] ^= 0xFF  # the zlib header's first byte
    assert fast_png.first_row_filter(bytes(damaged)) is None


@pytest.mark.parametrize("depth", [1, 8])
def test_chains_of_up_average_and_paeth_rows_across_masks_read_as_pillow_reads_them(tmp_path, depth: int) -> None:
    """The rows adding the row above are undone level by level across an image's masks (their k-th rows at
    once), Average and Paeth rows among the Up ones wherever they fall: in the levels stepped together and in
    the long chains that go on alone (a chain of 120 rows)."""
    from cityscapes_competition.png.png_io import read_masks_runs

    rng = np.random.default_rng(depth + 20)
    paths, expected = [], []
    for index in range(8):
        mask = _sparse_mask(rng, 120, 64, 1 if depth == 1 else 255)
        mask[10 : 20 + 12 * index, 5 + index : 40] = 1 if depth == 1 else 255
        filters = np.where(rng.random(120) < 0.9, 2, rng.integers(3, 5, 120))  # Up, some Average and Paeth
        if index == 0:  # one long chain with Paeth rows in its tail, its last row among them
            mask[5:, 20:30] = 1 if depth == 1 else 255
            filters[:] = 2
            filters[[40, 77, 78, 119]] = 4
        path = tmp_path / f"mask_{index}.png"
        path.write_bytes(filtered_png(mask, depth, filters))
        paths.append(path)
        expected.append(np.flatnonzero(np.asarray(Image.open(path).convert("L"))))
    for got, want in zip(read_masks_runs(paths), expected, strict=True):
        np.testing.assert_array_equal(got.pixels(), want)


@pytest.mark.parametrize("depth", [1, 8])
def test_runs_of_masks_read_together_are_found_a_chunk_of_rows_at_a_time(depth: int, monkeypatch) -> None:
    """Runs are found _RUN_CHUNK_PIXELS at a time (chunks of 3 rows here, mid-mask): the same runs."""
    rng = np.random.default_rng(depth + 40)
    masks = [_sparse_mask(rng, 30, 50, 1 if depth == 1 else 255) for _ in range(4)]
    data = [filtered_png(mask, depth, rng.integers(0, 5, 30)) for mask in masks]
    monkeypatch.setattr(fast_png, "_RUN_CHUNK_PIXELS", 3 * 50)
    runs = fast_png.nonzero_runs_of_masks([fast_png.mask_rows(d) for d in data])
    for got, mask in zip(runs, masks, strict=True):
        np.testing.assert_array_equal(got.pixels(), np.flatnonzero(mask))


def _read_hostile_masks(folder) -> None:
    from cityscapes_competition.png.png_io import read_masks_runs

    assert sum(len(runs.starts) for runs in read_masks_runs(sorted(folder.iterdir()))) == 8 * 1024 * 1024


@pytest.mark.slow
def test_masks_of_a_run_every_other_pixel_are_read_in_bounded_memory(tmp_path) -> None:
    """Eight 1-bit masks of 2048x1024 pixels, every other one set (a million runs each), read together: at most
    four images of pixels a batch, their runs found half an image at a time (eight at once: ~480 MB)."""
    mask = np.zeros((1024, 2048), bool)
    mask[:, ::2] = True
    data = filtered_png(mask, 1, np.zeros(1024, int))
    for index in range(8):
        (tmp_path / f"m{index}.png").write_bytes(data)
    assert memory_growth_within(_read_hostile_masks, tmp_path) < 200 * 1024 * 1024


@pytest.mark.parametrize("depth", [1, 8])
def test_masks_without_a_pixel_read_together_have_no_runs(depth: int) -> None:
    """No row may hold a pixel: the masks are read (no runs each), not left to a library."""
    data = [filtered_png(np.zeros((4, 8 * k + 3), np.uint8), depth, np.zeros(4, int)) for k in (2, 2, 2)]
    runs = fast_png.nonzero_runs_of_masks([fast_png.mask_rows(d) for d in data])
    assert runs is not None and [len(r.starts) for r in runs] == [0, 0, 0]
