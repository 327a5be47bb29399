"""Hostile PNGs (tests/data/hostile_png, made by an attacker) and their generated siblings: png_io reads each
as Pillow does, or refuses it on purpose, and none costs a fast decoder more than Pillow would."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import pillow_reading

from cityscapes_competition.png import png_io

HOSTILE = Path(__file__).parent / "data" / "hostile_png"
READERS = {
    "mask": lambda path: png_io.read_mask_runs(path).pixels(),
    "single": png_io.read_single_channel,
    "photo": png_io.read_rgb,
}
# Refused on purpose, though Pillow reads them: the PNG standard puts IHDR first and allows one; a BMP is
# not a PNG; the single-channel reader takes no colour image.
ON_PURPOSE = (
    {("chunk_before_ihdr_gray8.png", reader): "is not a PNG image" for reader in READERS}
    | {("bmp_named_png_mask.png", reader): "is a BMP, not a PNG image" for reader in READERS}
    | {
        (name, reader): "holds two IHDR chunks"
        for name in ("duplicate_ihdr_interlaced_mask_1bit.png", "duplicate_ihdr_rgb_photo.png")
        for reader in READERS
    }
)


def png_io_reading(path: Path, reader: str) -> np.ndarray | str:
    try:
        return READERS[reader](path)
    except png_io.PngReadError as error:
        return str(error)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", sorted(p.name for p in HOSTILE.glob("*.png")))
def test_each_hostile_file_is_read_as_pillow_reads_it_or_refused_on_purpose(name: str, reader: str) -> None:
    path = HOSTILE / name
    ours, pillow = png_io_reading(path, reader), pillow_reading(path, reader)
    if (name, reader) in ON_PURPOSE:
        assert pillow is not None and isinstance(ours, str) and ON_PURPOSE[name, reader] in ours
    elif isinstance(ours, str):
        assert pillow is None or (reader == "single" and pillow.ndim == 3), ours  # refused where Pillow reads
    else:
        assert pillow is not None, "png_io reads a file Pillow refuses"
        np.testing.assert_array_equal(ours, pillow)


# ---- generated siblings ----


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def gray_png(width: int, height: int, stream: bytes, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def test_a_second_colour_profile_is_refused_before_pillow_inflates_them(tmp_path: Path) -> None:
    """1551 profiles of 1 MB each took Pillow 3.5 s to inflate; the standard allows one."""
    profile = chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(1 << 20)))
    path = tmp_path / "profiles.png"
    path.write_bytes(gray_png(4, 2, zlib.compress(b"\x00" * 4 * 2 + b"\x00" * 2), profile * 2))
    with pytest.raises(png_io.PngReadError, match="more than one colour profile"):
        png_io.read_mask_runs(path)
    path.write_bytes(gray_png(4, 2, zlib.compress(bytes(10)), profile))  # one is fine
    assert png_io.read_single_channel(path).shape == (2, 4)


def empty_fixed_blocks_stream(raw: bytes, blocks: int) -> bytes:
    """A zlib stream of ``raw`` opened by ``blocks`` empty fixed-Huffman blocks (10 bits each: not final,
    type 01, end of block): Wuffs takes about 2.5 us per block, zlib next to nothing."""
    blocks -= blocks % 4  # 40 bits: whole bytes
    bits = np.tile(np.array([0, 1, 0] + [0] * 7, np.uint8), blocks)
    body = zlib.compress(raw, 9)[2:-4]
    return b"\x78\xda" + np.packbits(bits, bitorder="little").tobytes() + body + struct.pack(">I", zlib.adler32(raw))


def test_image_data_far_larger_than_a_label_map_needs_is_left_to_pillow(tmp_path: Path, monkeypatch) -> None:
    width, height = 2048, 1024
    raw = (b"\x00" + bytes(range(256)) * (width // 256)) * height
    stream = empty_fixed_blocks_stream(raw, 400_000)  # 500 KB of empty blocks: a second in Wuffs
    assert len(stream) > len(raw) * png_io._WUFFS_MAX_SHARE_OF_RAW
    path = tmp_path / "labels.png"
    path.write_bytes(gray_png(width, height, stream))
    monkeypatch.setattr(png_io, "_wuffs", lambda *args: pytest.fail("pywuffs was given the file"))
    expected = np.tile(np.arange(256, dtype=np.uint8), (height, width // 256))
    np.testing.assert_array_equal(png_io.read_single_channel(path), expected)
    assert png_io.read_mask_runs(path).size == np.count_nonzero(expected)
