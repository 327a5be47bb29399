"""The 8-connected components of the instance classes in a label map, found from its runs.

A label map upsampled from a model's scores is made of long runs of one label along each row. The
runs of instance classes come from one comparison per pixel. Two runs of the same label on
neighbouring rows are connected when they overlap or touch diagonally, and the components are the
connected components of that graph of runs (scipy's csgraph). Areas and boxes come from the runs;
only the components kept get a mask, painted from their runs. No pass per class or per component
goes over the pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..core.labels import INSTANCE_CLASS_IDS
from .upsampling import expand_ranges


@dataclass(frozen=True)
class Component:
    """One connected component of one label: its mask is ``mask`` placed at (top, left)."""

    label: int
    top: int
    left: int
    mask: np.ndarray  # bool, the component's bounding box
    area: int
    runs: tuple[np.ndarray, np.ndarray, np.ndarray]  # (row, start, stop) of its runs, in raster order

    @property
    def box(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.mask.shape[0]), slice(self.left, self.left + self.mask.shape[1])


@dataclass(frozen=True)
class _Runs:
    """Maximal runs of one label along the rows, in raster order: [start, stop) on ``row``."""

    row: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    label: np.ndarray


def instance_components(
    label_ids: np.ndarray, labels: Iterable[int] = INSTANCE_CLASS_IDS, min_area: int = 1
) -> list[Component]:
    """Every 8-connected component of each of ``labels`` with at least ``min_area`` pixels, in the
    order of their first pixel (raster order)."""
    runs = _runs_of(label_ids, labels)
    if not len(runs.row):
        return []
    component = _connected(runs, *label_ids.shape)
    area = np.bincount(component, weights=runs.stop - runs.start)
    return _kept(runs, component, area, min_area)


def _runs_of(label_ids: np.ndarray, labels: Iterable[int]) -> _Runs:
    height, width = label_ids.shape
    starts_run = np.empty((height, width), bool)
    starts_run[:, 0] = True  # no run crosses a row's end
    np.not_equal(label_ids[:, 1:], label_ids[:, :-1], out=starts_run[:, 1:])
    first = np.flatnonzero(starts_run)
    following = np.append(first[1:], height * width)
    label = label_ids.reshape(-1)[first]
    wanted = np.zeros(256, bool)
    wanted[list(labels)] = True
    keep = wanted[label]
    first, following, label = first[keep], following[keep], label[keep]
    row = first // width
    return _Runs(row, first - row * width, following - row * width, label)


def _connected(runs: _Runs, height: int, width: int) -> np.ndarray:
    """The component index of every run."""
    # A run's key orders it by label, then row, then column; the same label's row above is one row less.
    line = (runs.label.astype(np.int64) * (height + 1) + runs.row) * (width + 2)
    order = np.lexsort((runs.start, runs.row, runs.label))
    start_keys, stop_keys = (line + runs.start)[order], (line + runs.stop)[order]
    above = line - (width + 2)
    # Runs above, same label, touching [start - 1, stop]: their stop >= start and their start <= stop.
    first = np.searchsorted(stop_keys, above + runs.start, "left")
    below, touching = expand_ranges(
        np.arange(len(order)), first, np.searchsorted(start_keys, above + runs.stop, "right")
    )
    graph = coo_matrix((np.ones(len(below), np.int8), (order[touching], below)), shape=(len(order), len(order)))
    return connected_components(graph, directed=False)[1]


def _kept(runs: _Runs, component: np.ndarray, area: np.ndarray, min_area: int) -> list[Component]:
    kept_runs = np.flatnonzero(area[component] >= min_area)
    kept_runs = kept_runs[np.argsort(component[kept_runs], kind="stable")]  # grouped, raster order inside
    group_starts = np.flatnonzero(np.diff(component[kept_runs], prepend=-1))
    if not len(group_starts):
        return []
    row, start, stop = runs.row[kept_runs], runs.start[kept_runs], runs.stop[kept_runs]
    tops, bottoms = np.minimum.reduceat(row, group_starts), np.maximum.reduceat(row, group_starts) + 1
    lefts, rights = np.minimum.reduceat(start, group_starts), np.maximum.reduceat(stop, group_starts)
    group_ends = np.append(group_starts[1:], len(kept_runs))
    found = []
    for number in np.argsort(kept_runs[group_starts]):  # by first pixel: runs are indexed in raster order
        first, last = group_starts[number], group_ends[number]
        top, left = int(tops[number]), int(lefts[number])
        shape = (int(bottoms[number]) - top, int(rights[number]) - left)
        own = row[first:last], start[first:last], stop[first:last]
        mask = _painted(shape, own[0] - top, own[1] - left, own[2] - left)
        label = int(runs.label[kept_runs[first]])
        found.append(Component(label, top, left, mask, int(area[component[kept_runs[first]]]), own))
    return found


def _painted(shape: tuple[int, int], row: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """A mask of ``shape`` holding the runs (in raster order): alternate gaps and runs, repeated by length."""
    height, width = shape
    edges = np.empty(2 * len(row) + 2, np.int64)
    edges[0], edges[-1] = 0, height * width
    edges[1:-1:2] = row * width + start
    edges[2:-1:2] = row * width + stop
    alternating = np.arange(2 * len(row) + 1) % 2 == 1
    return np.repeat(alternating, np.diff(edges)).reshape(shape)
