"""The RLE pre-check accepts exactly the strings pycocotools' C decoder reads as written.

``compressed_runs`` is checked against pycocotools itself: every string its encoder writes is accepted
and gives the runs of the mask; padded (non-minimal) encodings are accepted as long as the C shifts
stay defined, and then decode to the same mask in pycocotools; the rest is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import memory_growth_within
from pycocotools import mask as rle_codec

from cityscapes_competition.scoring.rle_results import compressed_runs, compressed_runs_of


def _painted(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """The mask the runs describe: alternating 0 and 1 runs down the columns (Fortran order)."""
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    return flat.reshape(width, height).T


def _random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return rng.random((height, width)) < rng.random()  # speckle: many short runs
    mask = np.zeros((height, width), bool)
    if kind == 1:
        return mask if rng.random() < 0.5 else ~mask
    for _ in range(int(rng.integers(1, 6))):
        y, x = rng.integers(0, height), rng.integers(0, width)
        mask[y : y + rng.integers(1, height + 1), x : x + rng.integers(1, width + 1)] = True
    return mask


@pytest.mark.parametrize("height, width", [(1, 1), (7, 5), (48, 96), (1024, 2048), (2048, 4096)])
def test_every_string_pycocotools_writes_is_accepted_with_its_runs(height: int, width: int) -> None:
    rng = np.random.default_rng(height * 7919 + width)
    for _ in range(12 if height < 1000 else 3):
        mask = _random_mask(rng, height, width)
        encoded = rle_codec.encode(np.asfortranarray(mask.astype(np.uint8)))
        runs = compressed_runs(encoded["counts"].decode("ascii"))
        assert runs is not None and int(runs.sum()) == height * width and (runs >= 0).all()
        np.testing.assert_array_equal(_painted(runs, height, width), mask)


def _groups(text: str) -> list[str]:
    groups, current = [], ""
    for char in text:
        current += char
        if not (ord(char) - 48) & 0x20:
            groups.append(current)
            current = ""
    return groups


def _padded(group: str, extra: int) -> str:
    """The same value with ``extra`` more characters: sign-filled payloads, so that C decodes it alike when defined."""
    last = ord(group[-1]) - 48
    fill = 0x1F if last & 0x10 else 0
    chars = [ord(c) - 48 for c in group[:-1]] + [(last & 0x1F) | 0x20] + [fill | 0x20] * (extra - 1) + [fill]
    return "".join(chr(c + 48) for c in chars)


def test_padded_encodings_decode_alike_while_the_c_shifts_are_defined() -> None:
    rng = np.random.default_rng(3)
    checked = refused = 0
    for _ in range(300):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = _random_mask(rng, height, width)
        groups = _groups(rle_codec.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode())
        which = int(rng.integers(len(groups)))
        groups[which] = _padded(groups[which], int(rng.integers(1, 9)))
        text = "".join(groups)
        runs = compressed_runs(text)
        if runs is None:  # refused: a group grew past seven characters, or its seventh holds more than a bit
            assert max(len(g) for g in groups) > 6
            refused += 1
            continue
        decoded = rle_codec.decode({"size": [height, width], "counts": text.encode()})
        np.testing.assert_array_equal(decoded, mask)
        np.testing.assert_array_equal(_painted(runs, height, width), mask)
        checked += 1
    assert checked > 100 and refused > 20


@pytest.mark.parametrize(
    "text",
    [
        "0\x00PP0",  # C stops at the NUL: the rest of the mask would be uninitialised memory
        "6P",  # the last group is unterminated: C would read past the string
        "PPPPPPPP0",  # eight characters: the shift is undefined
        "PPPPPP2",  # a seventh character holding more than one bit: past the 32-bit int
        "a b",  # outside the encoder's alphabet
        "ö",  # not ASCII
        "p",  # 'p' is beyond 'o', the last character the encoder writes
    ],
)
def test_strings_the_c_decoder_cannot_read_as_written_are_refused(text: str) -> None:
    assert compressed_runs(text) is None


def test_the_empty_string_has_no_runs() -> None:
    runs = compressed_runs("")
    assert runs is not None and runs.size == 0


@pytest.mark.parametrize("seed", range(6))
def test_the_runs_are_pycocotools_decoding(seed: int) -> None:
    """The scorer counts a mask by its runs, column-major as pycocotools encodes them (the ground truth is cut
    into runs in the same order): the same pixels as pycocotools' decoding read column by column, for blobs,
    speckle, an empty and a full mask, odd sizes."""
    from cityscapes_competition.scoring.results_format import RleMask
    from cityscapes_competition.scoring.rle_results import rle_runs

    rng = np.random.default_rng(seed)
    height, width = [(1024, 2048), (7, 5), (1, 9), (33, 1)][seed % 4]
    masks = [
        rng.random((height, width)) < [0.001, 0.3, 0.9][seed % 3],
        np.zeros((height, width), bool),
        np.ones((height, width), bool),
    ]
    blob = np.zeros((height, width), bool)
    blob[height // 4 : height // 2 + 1, width // 3 : width - 1] = True
    masks.append(blob)
    for mask in masks:
        encoded = rle_codec.encode(np.asfortranarray(mask.astype(np.uint8)))
        runs = rle_runs(RleMask(height, width, encoded["counts"].decode("ascii")), height, width, "p.json prediction 0")
        assert runs.column_major
        expected = np.flatnonzero(rle_codec.decode(encoded).ravel(order="F"))
        np.testing.assert_array_equal(runs.pixels(), expected)
        assert (runs.stops > runs.starts).all()


def test_strings_decoded_together_are_decoded_as_one_by_one() -> None:
    """The scorer decodes an image's strings in one batch: each text's runs (or refusal) are its own, whatever
    its neighbours: pycocotools' strings of every kind of mask, refused ones, empty ones, one with more runs
    than the image has pixels."""
    rng = np.random.default_rng(11)
    height, width = 48, 96
    texts = [
        rle_codec.encode(np.asfortranarray(_random_mask(rng, height, width).astype(np.uint8)))["counts"].decode()
        for _ in range(30)
    ]
    texts[3:3] = ["6P", "", "0\x00PP0", "PPPPPPPP0", "ö", "PPPPPP2", "p"]
    texts.insert(15, "0" * (height * width + 2))  # more runs than pixels
    texts.append("")
    together = compressed_runs_of(texts, height * width)
    assert sum(runs is None for runs in together) == 7
    for text, runs in zip(texts, together, strict=True):
        alone = compressed_runs(text, height * width)
        assert (runs is None and alone is None) or np.array_equal(runs, alone)
    assert compressed_runs_of([], height * width) == []


def _refuse_long_string(text: str) -> None:
    assert compressed_runs_of(["0", text, "1"], 2048 * 1024)[1] is None


@pytest.mark.parametrize("ending", ["p", "Q", ""])
def test_a_long_refused_string_costs_no_integers_per_character(ending: str) -> None:
    """Four million characters of one-character runs, ending with a character beyond 'o', an unterminated
    group, or nothing (more runs than pixels): each refused before any array of integers per run (~280 MB)."""
    text = "1" * 4_000_000 + ending
    assert memory_growth_within(_refuse_long_string, text) < 64 * 1024 * 1024
