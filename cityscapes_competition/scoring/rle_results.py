"""Instance results as one COCO-style RLE JSON file: streamed with bounded memory, and checked exactly.

The file is a JSON list of predictions::

    {"image_id": "<city>_<seq>_<frame>", "category_id": <labelId>,
     "segmentation": {"size": [height, width], "counts": <RLE>}, "score": <confidence>}

``counts`` is pycocotools' compressed string or a list of run lengths (an uncompressed RLE). Other keys
(``bbox``, ``area``, ``id``...) are allowed and skipped unread.

Memory. ``json.loads`` builds every object of the file at once: ``[{},{},...]`` takes about 25 times
the file's size. Here ijson (yajl, in C) streams the parse events; only the expected fields are kept,
list counts as 4-byte integers, and per image only the ``MAX_INSTANCES_PER_IMAGE`` highest-scoring
predictions (the others are dropped as they come, as the cap would drop them). Memory is then bounded
by the file size cap whatever the file holds, and nesting depth costs nothing.

Exactness. pycocotools decodes a compressed string in C (``rleFrString``) without checks: it stops at
a NUL character, reads past the end of a string whose last group is unterminated, shifts a 32-bit int
past its width in groups of more than six characters, and writes past its buffer (or leaves it
uninitialised) when the runs do not add up to the image. ``compressed_runs`` reproduces the decoder
and accepts exactly the strings it decodes as written; everything else is refused before it is called.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ijson
import numpy as np

from ..core.arrays import PixelRuns
from ..core.errors import SubmissionError, printable, shown
from ..core.naming import FrameId, frame_id_from_stem
from ..core.untrusted_files import SentFolder, UntrustedFileError, open_untrusted
from ..png.png_io import MAX_PIXELS
from .results_format import MAX_INSTANCES_PER_IMAGE, InstanceLine, RleMask, cap_note, refuse_utf16_or_32

# A prediction takes ~15 bytes of JSON beside its counts (a few hundred bytes for a car's mask):
# 500 images x 255 predictions fit many times over.
MAX_JSON_BYTES = 256 * 1024 * 1024
# yajl copies a token that spans its buffer once per buffer read, and ijson holds the events of one buffer at
# once. Measured: with ijson's 64 KB a 250 MB string took 80 s; with 16 MB, 1 s, but 60 MB of dense JSON peaked
# at 436 MiB; with 2 MB, 5 s for the string, 69 s to refuse a 250 MB number, 115 MiB. Real tokens are short.
_PARSE_BUFFER_BYTES = 2 * 1024 * 1024
_EXPECTED_KEYS = ("image_id", "category_id", "segmentation", "score")
_SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})
_UTF8_BOM = b"\xef\xbb\xbf"
_UINT32_LIMIT = 2**32

JSON_FIX = (
    "The file must be a JSON list of {'image_id': '<city>_<seq>_<frame>', 'category_id': <labelId>, "
    "'segmentation': {'size': [height, width], 'counts': <RLE>}, 'score': <confidence>}."
)
RLE_FIX = "Encode masks with pycocotools.mask.encode(np.asfortranarray(mask)) and store counts.decode('ascii')."


@dataclass
class RleResults:
    per_frame: dict[FrameId, list[InstanceLine]]
    warnings: list[str] = field(default_factory=list)


class _Invalid:
    """A field whose JSON type is wrong (an object or array where a value was expected)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"<a JSON {self.kind}>"


# ---- reading the file ----------------------------------------------------------------------------------


def parse_rle_json(path: Path, frames: set[FrameId], folder: SentFolder) -> RleResults:
    """The predictions for the test images, at most MAX_INSTANCES_PER_IMAGE each; one message per problem."""
    _refuse_other_encodings(path, folder)
    try:
        with open_untrusted(path, MAX_JSON_BYTES, folder) as stream:
            if stream.read(len(_UTF8_BOM)) != _UTF8_BOM:  # a BOM, as Windows editors write, is dropped
                stream.seek(0)
            events = ijson.basic_parse(stream, use_float=True, buf_size=_PARSE_BUFFER_BYTES)
            return _collect(events, path, frames)
    except SubmissionError:
        raise
    except UntrustedFileError as exc:
        raise SubmissionError(str(exc), path, "Results must be plain files inside the results folder.") from None
    except Exception as exc:  # yajl's errors; ijson's yajl2_c raises SystemError on a number of megabytes
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, ijson.JSONError):
            reason = "a value too long to be one"
        raise SubmissionError(f"is not valid JSON ({printable(reason, 120)})", path, JSON_FIX) from None


def _refuse_other_encodings(path: Path, folder: SentFolder) -> None:
    """UTF-16 and UTF-32 JSON get the right message (ijson reads UTF-8 only)."""
    try:
        with open_untrusted(path, MAX_JSON_BYTES, folder) as stream:
            refuse_utf16_or_32(stream.read(4), path, JSON_FIX)
    except UntrustedFileError:
        return  # parse_rle_json says why


def _collect(events: Iterator[tuple[str, object]], path: Path, frames: set[FrameId]) -> RleResults:
    first = next(events, (None, None))[0]
    if first != "start_array":
        what = "a JSON object" if first == "start_map" else "a single JSON value"
        raise SubmissionError(f"holds {what}, not a list of predictions", path, JSON_FIX)
    kept: dict[FrameId, _TopPredictions] = {}
    unknown: set[str] = set()
    for index, (event, _) in enumerate(events):
        if event == "end_array":
            break
        if event != "start_map":
            _skip(event, events)
            raise SubmissionError(f"prediction {index} is not an object", path, JSON_FIX)
        frame, line = _prediction(_read_object(events), index, path)
        if frame in frames:
            kept.setdefault(frame, _TopPredictions()).add(line)
        elif len(unknown) < 1000:
            unknown.add(frame.stem)
    for _ in events:  # ijson raises on anything after the list
        pass
    return _results(kept, unknown, path)


def _results(kept: dict[FrameId, _TopPredictions], unknown: set[str], path: Path) -> RleResults:
    warnings = [cap_note(frame, top.count) for frame, top in sorted(kept.items()) if top.dropped]
    if unknown:
        warnings.append(
            f"{path.name}: predictions for image ids that are not test images were ignored (e.g. {sorted(unknown)[0]})"
        )
    return RleResults({frame: top.lines() for frame, top in kept.items()}, warnings)


class _TopPredictions:
    """The MAX_INSTANCES_PER_IMAGE highest-scoring predictions of one image, ties kept in file order."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, InstanceLine]] = []  # the weakest on top: lowest score, then latest
        self.count = 0

    @property
    def dropped(self) -> bool:
        return self.count > MAX_INSTANCES_PER_IMAGE

    def add(self, line: InstanceLine) -> None:
        entry = (line.confidence, -self.count, line)
        self.count += 1
        if len(self.heap) < MAX_INSTANCES_PER_IMAGE:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def lines(self) -> list[InstanceLine]:
        return [line for _, _, line in sorted(self.heap, key=lambda entry: -entry[1])]


def _read_object(events: Iterator[tuple[str, object]]) -> dict[str, object]:
    """The expected fields of one prediction object (the start_map was read); other keys are skipped."""
    fields: dict[str, object] = {}
    for event, value in events:
        if event == "end_map":
            return fields
        key = value  # a map_key
        event, value = next(events)
        if key == "segmentation" and event == "start_map":
            fields[key] = _read_segmentation(events)
        elif key in _EXPECTED_KEYS:
            fields[key] = value if event in _SCALAR_EVENTS else _skipped(event, events)
        else:
            _skip(event, events)
    return fields  # unreachable: ijson raises on a premature end


def _read_segmentation(events: Iterator[tuple[str, object]]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for event, value in events:
        if event == "end_map":
            return fields
        key = value
        event, value = next(events)
        if key == "counts" and event == "start_array":
            fields[key] = _read_runs(events)
        elif key == "size" and event == "start_array":
            fields[key] = _read_size(events)
        elif key in ("counts", "size"):
            fields[key] = value if event in _SCALAR_EVENTS else _skipped(event, events)
        else:
            _skip(event, events)
    return fields


def _read_runs(events: Iterator[tuple[str, object]]) -> array | _Invalid:
    """An uncompressed RLE's run lengths as uint32; anything but whole numbers 0..2**32-1 is invalid."""
    runs = array("I")
    for event, value in events:
        if event == "end_array":
            return runs
        if (
            event != "number"
            or isinstance(value, float)
            or not 0 <= value < _UINT32_LIMIT  # type: ignore[operator]
            or len(runs) > MAX_PIXELS  # more runs than any image has pixels
        ):
            _skip(event, events)
            _skip("start_array", events)
            return _Invalid("list of numbers that are not run lengths")
        runs.append(value)  # type: ignore[arg-type]
    return runs


def _read_size(events: Iterator[tuple[str, object]]) -> list[object] | _Invalid:
    size: list[object] = []
    for event, value in events:
        if event == "end_array":
            return size
        if event not in _SCALAR_EVENTS or len(size) >= 2:
            _skip(event, events)
            _skip("start_array", events)
            return _Invalid("array")
        size.append(value)
    return size


def _skipped(event: str, events: Iterator[tuple[str, object]]) -> _Invalid:
    _skip(event, events)
    return _Invalid("object" if event == "start_map" else "array")


def _skip(event: str, events: Iterator[tuple[str, object]]) -> None:
    """Consume the rest of a value that started with ``event``, however deep, without building it."""
    depth = 1 if event in ("start_map", "start_array") else 0
    while depth:
        event, _ = next(events)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1


def _prediction(item: dict[str, object], index: int, path: Path) -> tuple[FrameId, InstanceLine]:
    where = f"prediction {index}"
    missing = [key for key in _EXPECTED_KEYS if key not in item]
    if missing:
        raise SubmissionError(f"{where} lacks {', '.join(missing)}", path, JSON_FIX)
    image_id = item["image_id"]
    frame = frame_id_from_stem(image_id) if isinstance(image_id, str) else None
    if frame is None:
        raise SubmissionError(f"{where}: image_id {shown(image_id)} is not a Cityscapes stem", path, JSON_FIX)
    label = item["category_id"]
    if not _is_number(label) or not float(label).is_integer() or not 0 <= label <= 33:  # type: ignore[operator]
        raise SubmissionError(f"{where}: category_id {shown(label)} is not a label id 0..33", path, JSON_FIX)
    score = item["score"]
    if not _is_number(score) or not math.isfinite(score):  # type: ignore[arg-type]
        raise SubmissionError(f"{where}: score {shown(score)} is not a finite number", path, JSON_FIX)
    mask = _rle_mask(item["segmentation"], where, path)
    return frame, InstanceLine(mask, int(label), float(score), f"{path.name} {where}")  # type: ignore[arg-type]


def _rle_mask(segmentation: object, where: str, path: Path) -> RleMask:
    size = segmentation.get("size") if isinstance(segmentation, dict) else None
    counts = segmentation.get("counts") if isinstance(segmentation, dict) else None
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        or not isinstance(counts, str | array)
    ):
        raise SubmissionError(f"{where}: segmentation is not an RLE {{'size', 'counts'}}", path, JSON_FIX)
    stored = counts if isinstance(counts, str) else np.frombuffer(counts, np.uint32)
    return RleMask(size[0], size[1], stored)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- decoding one mask exactly as pycocotools does ---------------------------------------------------


def rle_runs_of_masks(masks: Sequence[RleMask], height: int, width: int, sources: Sequence[str]) -> Iterator[PixelRuns]:
    """``rle_runs`` of each mask, in order: the compressed strings of up to ``_BATCH_CHARACTERS`` characters
    decoded together (``compressed_runs_of``; one at a time, an image's 40 cost 3.7 ms, together 0.8)."""
    pending: list[int] = []
    characters = 0
    for index, mask in enumerate(masks):
        length = len(mask.counts) if isinstance(mask.counts, str) else 0
        if pending and characters + length > _BATCH_CHARACTERS:
            yield from _runs_of_batch([masks[i] for i in pending], height, width, [sources[i] for i in pending])
            pending, characters = [], 0
        pending.append(index)
        characters += length
    yield from _runs_of_batch([masks[i] for i in pending], height, width, [sources[i] for i in pending])


# Characters of compressed counts decoded at once: a few bytes of arrays each (a car's mask has a few hundred).
_BATCH_CHARACTERS = 1 << 20


def _runs_of_batch(masks: list[RleMask], height: int, width: int, sources: list[str]) -> Iterator[PixelRuns]:
    decodable = [isinstance(m.counts, str) and (m.height, m.width) == (height, width) for m in masks]
    texts = [m.counts for m, ok in zip(masks, decodable, strict=True) if ok]
    decoded = iter(compressed_runs_of(texts, height * width))  # type: ignore[arg-type]
    for mask, source, ok in zip(masks, sources, decodable, strict=True):
        yield _checked_runs(mask, height, width, source, next(decoded) if ok else None)


def rle_runs(mask: RleMask, height: int, width: int, source: str) -> PixelRuns:
    """The mask's runs of pixels, column-major as pycocotools encodes them, once they are proven to cover the
    image exactly as pycocotools decodes them (tests/test_rle_results.py compares with pycocotools' own
    decoding). Runs alternate unset and set pixels, unset first; the set ones are the mask's."""
    return next(rle_runs_of_masks([mask], height, width, [source]))


def _checked_runs(mask: RleMask, height: int, width: int, source: str, decoded: np.ndarray | None) -> PixelRuns:
    """``rle_runs``, given the compressed string's ``compressed_runs`` (unused for a list of counts)."""
    where, _, prediction = source.partition(" ")  # "predictions.json prediction 3"
    if (mask.height, mask.width) != (height, width):
        raise SubmissionError(
            f"{prediction}: segmentation size [{mask.height}, {mask.width}] is not [{height}, {width}]",
            where,
            "RLE sizes are [height, width] of the test image.",
        )
    if isinstance(mask.counts, str):
        runs = decoded
    else:
        runs = mask.counts.astype(np.int64) if mask.counts.size <= height * width + 1 else None
    if runs is None or not _cover_exactly(runs, height * width):
        raise SubmissionError(
            f"{prediction}: the RLE counts are not runs covering the {height * width} pixels of the image "
            "as pycocotools encodes them",
            where,
            RLE_FIX,
        )
    ends = np.cumsum(runs)
    starts, stops = (ends - runs)[1::2], ends[1::2]
    kept = stops > starts
    return PixelRuns(starts[kept], stops[kept], column_major=True)


def _cover_exactly(runs: np.ndarray, pixel_count: int) -> bool:
    return bool((runs >= 0).all()) and int(runs.sum()) == pixel_count


def compressed_runs(text: str, pixel_count: int | None = None) -> np.ndarray | None:
    """The run lengths pycocotools' ``rleFrString`` reads from ``text``, or None where it cannot read them as
    written (or where there are more runs than ``pixel_count`` pixels allow).

    Each run is a group of characters c - 48: five payload bits, bit 0x20 "more follows", and on the last
    character bit 0x10 the sign; from the fourth run on, each is added to the one two before it. Refused:
    characters outside the encoder's alphabet '0'..'o' (a NUL would end the C loop early), an unterminated
    last group (C would read past the string), and groups whose 32-bit int shift is undefined or overflows
    (the seventh character may only be '0' or '1'; no group has more than seven). Memory: a few bytes per
    character and a few integers per run, so that a hostile 100 MB string costs little before it is refused.
    """
    return compressed_runs_of([text], pixel_count)[0]


def compressed_runs_of(texts: Sequence[str], pixel_count: int | None = None) -> list[np.ndarray | None]:
    """``compressed_runs`` of each text, decoded together: numpy calls per batch, not per mask."""
    encoded = [_ascii(text) for text in texts]
    refused = np.array([data is None for data in encoded], bool)
    lengths = np.array([0 if data is None else len(data) for data in encoded], np.int64)
    joined = encoded[0] if len(encoded) == 1 and encoded[0] is not None else b"".join(d for d in encoded if d)
    chars = np.frombuffer(joined, np.uint8) - np.uint8(48)
    text_ends = np.cumsum(lengths)
    filled = np.flatnonzero(lengths)
    refused[filled] |= np.logical_or.reduceat(chars > 63, text_ends[filled] - lengths[filled])  # beyond 'o'
    last = (chars & 0x20) == 0  # the last character of each group
    refused[filled] |= ~last[text_ends[filled] - 1]  # an unterminated last group
    last[text_ends[filled] - 1] = True  # so that no group runs into the next text
    # Counted text by text: numpy's add.reduceat would first copy ``last`` as 8-byte integers.
    run_counts = np.array([np.count_nonzero(last[end - n : end]) for end, n in zip(text_ends, lengths, strict=True)])
    run_counts = run_counts.astype(np.int64).reshape(-1)
    if pixel_count is not None:
        refused |= run_counts > pixel_count + 1  # more runs than pixels
    if refused.any():
        # Refused before a few integers per run are spent on them (a hostile string can hold 256 MB of runs);
        # the others decoded alone.
        results: list[np.ndarray | None] = [None] * len(texts)
        rest = np.flatnonzero(~refused)
        for index, runs in zip(rest, compressed_runs_of([texts[i] for i in rest], pixel_count), strict=True):
            results[index] = runs
        return results
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    group_lengths = ends - starts + 1
    owner = np.repeat(np.arange(len(texts)), run_counts)  # each group's text
    # Undefined or overflowing 32-bit shifts: more than seven characters, or a seventh holding more than a bit.
    overflowing = group_lengths > 7
    overflowing[group_lengths == 7] = chars[starts[group_lengths == 7] + 6] > 1
    refused[owner[overflowing]] = True
    group_lengths = np.minimum(group_lengths, 7)  # the refused ones' values are never used
    values = np.zeros(len(ends), np.int64)
    for position in range(7):
        present = group_lengths > position
        payload = (chars[starts[present] + position] & 0x1F).astype(np.int64)
        values[present] |= payload << (5 * position)
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * group_lengths[negative])
    # Run m adds run m - 2 from m = 3 on: running sums of each text's odd runs and of its even runs from run 2.
    first_group = np.cumsum(run_counts) - run_counts
    rank = np.arange(len(ends)) - first_group[owner]
    for chain in (rank % 2 == 1, (rank % 2 == 0) & (rank >= 2)):
        members = np.flatnonzero(chain)
        sums = np.cumsum(values[members])
        starts_text = np.ones(len(members), bool)
        starts_text[1:] = owner[members[1:]] != owner[members[:-1]]
        before = np.concatenate(([0], sums[:-1]))[starts_text]  # the sum of the chains of earlier texts
        values[members] = sums - np.repeat(before, np.diff(np.append(np.flatnonzero(starts_text), len(members))))
    runs = np.split(values, np.cumsum(run_counts)[:-1])
    return [None if refused[index] else runs[index] for index in range(len(texts))]


def _ascii(text: str) -> bytes | None:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return None
