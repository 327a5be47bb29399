"""Bilinear upsampling of class scores, and the argmax of the result, without upsampling everything.

Bilinear interpolation (half-pixel centres, as ``tf.image.resize``) is separable: along rows, then
along columns. Along one axis every output pixel mixes two neighbouring score vectors L and R with
a weight w in [0, 1). If L and R have the same argmax, every mix has it too (a convex combination
keeps the winner), so only the gaps between disagreeing neighbours need work. In such a gap the
mixed scores of each class are lines in w; where L's winner ``a`` and R's winner ``b`` cross (w*),
the winner switches from a to b, unless a third class rises above both there, which is rare and
then decided pixel by pixel. So the work is per disagreeing pair of vectors, not per pixel per class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# A third class within this margin of the a/b crossing is decided pixel by pixel (float32 rounding).
_CROSSING_MARGIN = 1e-5


@dataclass(frozen=True)
class SourcePositions:
    """For every output index along one axis: the two source indices mixed and the weight of the upper."""

    lower: np.ndarray  # intp
    upper: np.ndarray  # intp
    weight: np.ndarray  # float32
    source_size: int

    @classmethod
    def along(cls, out_size: int, in_size: int) -> SourcePositions:
        position = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, in_size - 1)
        lower = np.floor(position).astype(np.intp)
        return cls(lower, np.minimum(lower + 1, in_size - 1), (position - lower).astype(np.float32), in_size)

    @cached_property
    def keys(self) -> np.ndarray:
        """lower + weight: non-decreasing along the axis."""
        return self.lower + self.weight.astype(np.float64)

    @cached_property
    def gap_starts(self) -> np.ndarray:
        """Per source index g: the first output index mixing g and g + 1 (or lying beyond g)."""
        return np.searchsorted(self.keys, np.arange(self.source_size + 1), "left")

    def gap_bounds(self, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output ranges [start, end) mixing source ``gap`` and ``gap + 1``."""
        return self.gap_starts[gaps], self.gap_starts[gaps + 1]

    def counts(self) -> np.ndarray:
        """How many output indices have each source index as their lower one (0 for skipped ones)."""
        return np.bincount(self.lower, minlength=self.source_size)

    @cached_property
    def _weight_prefixes(self) -> tuple[np.ndarray, np.ndarray]:
        """Prefix sums over output indices of the lower and the upper source's weight (float64)."""
        upper = self.weight.astype(np.float64)
        return np.concatenate(([0.0], np.cumsum(1 - upper))), np.concatenate(([0.0], np.cumsum(upper)))

    @cached_property
    def _spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per source index: the output range [first, stop) taking it as lower, and as upper."""
        sources = np.arange(self.source_size + 1)
        lower_edges, upper_edges = np.searchsorted(self.lower, sources), np.searchsorted(self.upper, sources)
        return lower_edges[:-1], lower_edges[1:], upper_edges[:-1], upper_edges[1:]

    def weights_within(self, source: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """The total weight the output indices in [start, stop) give each ``source`` index (float64)."""
        lower_first, lower_stop, upper_first, upper_stop = (span[source] for span in self._spans)
        lower_prefix, upper_prefix = self._weight_prefixes

        def within(edges: np.ndarray) -> np.ndarray:
            return np.minimum(np.maximum(edges, start), stop)

        lower_mass = lower_prefix[within(lower_stop)] - lower_prefix[within(lower_first)]
        return lower_mass + (upper_prefix[within(upper_stop)] - upper_prefix[within(upper_first)])


def upsampled_run_sums(
    values: np.ndarray,
    rows: SourcePositions,
    cols: SourcePositions,
    runs: tuple[np.ndarray, ...],
    normalise: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Per run of output pixels, the sum of ``values`` (h, w, channels) upsampled bilinearly, without
    upsampling: ``runs`` is (row, start, stop, channel), the run [start, stop) of one channel on one row.
    ``normalise`` (a softmax) maps the cells' vectors first, computed only on the cells the runs mix.

    Along a row, output pixel x mixes the row-interpolated values of cells lower(x) and upper(x) with
    weights 1 - w(x) and w(x). So the sum over a run is, per cell it touches, the cell's value times
    the weights the run's pixels give it, and those come from prefix sums: work per cell, not per pixel.
    """
    row, start, stop, channel = runs
    run, cell = expand_ranges(np.arange(len(row)), cols.lower[start], cols.upper[stop - 1] + 1)
    width = values.shape[1]
    lower, upper = rows.lower[row[run]] * width + cell, rows.upper[row[run]] * width + cell
    flat = values.reshape(-1, values.shape[-1])
    if normalise is not None:
        mixed = np.zeros(len(flat), bool)
        mixed[lower] = mixed[upper] = True
        mixed = np.flatnonzero(mixed)
        normalised = np.empty_like(flat)
        normalised[mixed] = normalise(flat[mixed])
        flat = normalised
    weight = rows.weight[row[run]]
    interpolated = flat[lower, channel[run]] * (1 - weight) + flat[upper, channel[run]] * weight  # float32
    mass = cols.weights_within(cell, start[run], stop[run])
    return np.bincount(run, weights=interpolated * mass, minlength=len(row))


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int], lookup: np.ndarray | None = None) -> np.ndarray:
    """argmax over classes of ``scores`` (h, w, classes) upsampled bilinearly to ``size`` (uint8).

    ``lookup`` (uint8, one entry per class) maps the winning channel to the value written, at no
    extra cost per pixel.
    """
    lookup = np.arange(scores.shape[-1], dtype=np.uint8) if lookup is None else lookup
    if scores.shape[:2] == tuple(size):
        return lookup[np.argmax(scores, axis=-1)]
    rows = SourcePositions.along(size[0], scores.shape[0])
    cols = SourcePositions.along(size[1], scores.shape[1])
    low = np.argmax(scores, axis=-1).astype(np.uint8)
    by_rows = _winners_along_rows(scores, low, rows)  # (height, low-res width)
    return _winners_along_columns(scores, by_rows, rows, cols, lookup)


def _winners_along_rows(scores: np.ndarray, low: np.ndarray, rows: SourcePositions) -> np.ndarray:
    """The argmax of the row-interpolated scores, at every output row and low-res column."""
    winners = low[rows.lower]
    gap, column = np.nonzero(low[:-1] != low[1:])
    if len(gap):
        left, right = scores[gap, column], scores[gap + 1, column]
        pair, position, value = _gap_switches(left, right, low[gap, column], low[gap + 1, column], gap, rows)
        winners[position, column[pair]] = value
    return winners


def _winners_along_columns(
    scores: np.ndarray, by_rows: np.ndarray, rows: SourcePositions, cols: SourcePositions, lookup: np.ndarray
) -> np.ndarray:
    winners = np.repeat(lookup[by_rows], cols.counts(), axis=1)  # lower is non-decreasing: a repeat, not a take
    row, gap = np.nonzero(by_rows[:, :-1] != by_rows[:, 1:])
    if len(gap):
        lower, upper, weight = rows.lower[row], rows.upper[row], rows.weight[row][:, None]
        left = scores[lower, gap] * (1 - weight) + scores[upper, gap] * weight
        right = scores[lower, gap + 1] * (1 - weight) + scores[upper, gap + 1] * weight
        pair, position, value = _gap_switches(left, right, by_rows[row, gap], by_rows[row, gap + 1], gap, cols)
        winners[row[pair], position] = lookup[value]
    return winners


def _gap_switches(
    left: np.ndarray, right: np.ndarray, a: np.ndarray, b: np.ndarray, gap: np.ndarray, axis: SourcePositions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where, in each pair's gap, the winner is not the left one: (pair, output position, winner)."""
    start, end = axis.gap_bounds(gap)
    pair = np.arange(len(gap))
    left_a, left_b = left[pair, a], left[pair, b]
    right_a, right_b = right[pair, a], right[pair, b]
    lead, trail = left_a - left_b, right_b - right_a  # both >= 0, not both 0
    crossing = lead / (lead + trail)
    at_crossing = left * (1 - crossing)[:, None] + right * crossing[:, None]
    top = at_crossing[pair, a]
    at_crossing[pair, a] = at_crossing[pair, b] = -np.inf
    simple = at_crossing.max(axis=1) < top - _CROSSING_MARGIN * (1 + np.abs(top))
    # Simple pairs: b wins from the crossing on (at the crossing itself the lower class index wins).
    split = np.clip(_first_position_after(axis.keys, gap + crossing, at_or_after=b < a), start, end)
    simple_pairs, simple_positions = expand_ranges(pair[simple], split[simple], end[simple])
    values = [b[simple_pairs]]
    hard_pairs, hard_positions = expand_ranges(pair[~simple], start[~simple], end[~simple])
    if len(hard_pairs):
        weight = axis.weight[hard_positions][:, None]
        mixed = left[hard_pairs] * (1 - weight) + right[hard_pairs] * weight
        values.append(np.argmax(mixed, axis=1).astype(np.uint8))
    return (
        np.concatenate([simple_pairs, hard_pairs]),
        np.concatenate([simple_positions, hard_positions]),
        np.concatenate(values),
    )


def _first_position_after(keys: np.ndarray, values: np.ndarray, at_or_after: np.ndarray) -> np.ndarray:
    """Per value: the first index whose key is >= it (where ``at_or_after``), else > it."""
    first = np.searchsorted(keys, values, "left")
    inside = np.minimum(first, len(keys) - 1)
    equal = np.flatnonzero(~at_or_after & (first < len(keys)) & (keys[inside] == values))  # an exact tie: rare
    first[equal] = np.searchsorted(keys, values[equal], "right")
    return first


def expand_ranges(items: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (item, position) with start <= position < end, for each item: ranges flattened, no loop."""
    lengths = np.maximum(end - start, 0)
    total = int(lengths.sum())
    owners = np.repeat(np.arange(len(items)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return items[owners], start[owners] + offsets
