"""The detailed results page's charts, drawn by the page itself in HTML and CSS: bars per class (IoU and iIoU,
AP and AP50%), and the row-normalized confusion matrix and AP by overlap threshold as tables whose cells are
coloured by their value. No pictures and no plotting library: drawing them with matplotlib cost ~0.75 s of CPU
per run (its import and the Agg rendering, a third of a 40-image run); as HTML they cost about a millisecond,
stay sharp at any zoom, and every number in them can be read and copied.

Every value is a fraction in [0, 1]; a missing one (NaN, None) is shown as "n/a" or "no ground truth", never as
a bar or a colour that would look like a score. Names come from the label table, but are escaped anyway."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from cityscapes_competition.core.labels import (
    EVAL_CLASS_IDS,
    INSTANCE_CLASS_NAMES,
    LABEL_NAMES,
    color_of,
)
from cityscapes_competition.scoring.scores import InstanceScores, PixelScores

Color = tuple[int, int, int]

FALLBACK_COLOR: Color = (128, 128, 128)
OVERLAPS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
NA_TOOLTIP = "undefined: no ground truth for this class in the evaluated images (denominator 0)"

_LABEL_ID_OF_NAME: dict[str, int] = {name: label_id for label_id, name in enumerate(LABEL_NAMES)}
EVAL_CLASS_NAMES: tuple[str, ...] = tuple(LABEL_NAMES[i] for i in EVAL_CLASS_IDS)


# --- formatting ---------------------------------------------------------------------------------


def is_missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def class_color(name: str) -> Color:
    label_id = _LABEL_ID_OF_NAME.get(name)
    return FALLBACK_COLOR if label_id is None else color_of(label_id)


def ordered(known: Sequence[str], present: Iterable[str]) -> list[str]:
    """The known names in their official order, then any other names found in the data."""
    present = list(present)
    return list(known) + [name for name in present if name not in known]


def hex_color(color: Color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def swatch(color: Color) -> str:
    return f'<span class="swatch" style="background:{hex_color(color)}"></span>'


def na_mark(tooltip: str = NA_TOOLTIP) -> str:
    return f'<span class="na" title="{escape(tooltip)}">n/a<sup>*</sup></span>'


def _get(values: Mapping[str, float], key: str) -> float:
    value = values.get(key)
    return math.nan if is_missing(value) else float(value)


# --- the colour scale ---------------------------------------------------------------------------

# matplotlib's "Blues" (ColorBrewer's nine classes), evenly spaced from 0 to 1: the scale of the former heatmap.
BLUES: tuple[Color, ...] = (
    (247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
    (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107),
)  # fmt: skip
# From here on the cells are dark enough for white text: 40 % in the confusion matrix, as the heatmap had it.
_DARK_FROM = math.sqrt(0.4)


def _mix(low: Color, high: Color, share: float) -> Color:
    """The colour ``share`` of the way from ``low`` to ``high``."""
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(low, high, strict=True))
    return red, green, blue


def blues(position: float) -> Color:
    """The scale's colour at ``position`` in [0, 1] (clipped), interpolated linearly between its stops."""
    scaled = min(max(position, 0.0), 1.0) * (len(BLUES) - 1)
    low = min(int(scaled), len(BLUES) - 2)
    return _mix(BLUES[low], BLUES[low + 1], scaled - low)


def _heat_cell(position: float, text: str, title: str) -> str:
    """A table cell coloured by ``position`` on the scale, with white text where the colour is dark."""
    dark = ' class="dark"' if position >= _DARK_FROM else ""
    return f'<td{dark} style="background:{hex_color(blues(position))}" title="{escape(title)}">{text}</td>'


def color_scale(ticks: Sequence[tuple[float, str]], label: str) -> str:
    """The scale as a legend: its gradient, ``ticks`` (position in [0, 1], text) under it, and ``label``."""
    gradient = ",".join(hex_color(color) for color in BLUES)  # evenly spaced, as ``blues`` reads them
    marks = "".join(f'<span style="left:{100 * position:.2f}%">{escape(text)}</span>' for position, text in ticks)
    return (
        f'<div class="scale"><div class="scale-bar" style="background:linear-gradient(90deg,{gradient})"></div>'
        f'<div class="ticks">{marks}</div><div class="scale-label">{escape(label)}</div></div>'
    )


def _wrapped(table: str) -> str:
    """A table in a box of its own that scrolls when the window is narrower than the table."""
    return f'<div class="table-wrap">{table}</div>'


# --- bars per class -----------------------------------------------------------------------------

_AXIS_TOPS = (5.0, 10.0, 20.0, 25.0, 50.0, 100.0)


def axis_top(values: np.ndarray, headroom: float = 1.1) -> float:
    """The top of a 0..top % axis that holds ``values`` (%, NaN skipped) with some headroom: the smallest
    of 5, 10, 20, 25, 50, 100 that does, so a 2 % baseline is not a flat line under a 0-100 axis."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    peak = float(finite.max()) * headroom if finite.size else 0.0
    return next((top for top in _AXIS_TOPS if peak <= top), _AXIS_TOPS[-1])


def axis_ticks(top: float) -> list[float]:
    return [top * i / 5 for i in range(6)]  # steps of 1, 2, 4, 5, 10 or 20 %


def bar_width(value: float, top: float) -> float:
    """A bar's length, in % of the axis 0..``top`` % (``value`` a fraction)."""
    return min(max(100.0 * value / top, 0.0), 1.0) * 100.0


@dataclass(frozen=True)
class Bar:
    """One score of a class: ``value`` a fraction (NaN: undefined); ``note`` says why a 0 is a 0."""

    value: float
    note: str = ""


@dataclass(frozen=True)
class BarRow:
    """A class's two scores; ``second`` None where that score is not defined for the class (one bar)."""

    name: str
    first: Bar
    second: Bar | None


def paired_bars(rows: Sequence[BarRow], labels: tuple[str, str], axis_label: str) -> str:
    """Horizontal bars per class: the first score in the class colour, the second hatched and lighter, on an
    axis scaled to the data (``axis_top``); undefined scores are marked "n/a", not drawn."""
    values = [row.first.value for row in rows] + [row.second.value for row in rows if row.second is not None]
    top = axis_top(np.array(values, dtype=float) * 100)
    ticks = "".join(f'<span style="left:{100 * tick / top:g}%">{tick:g}</span>' for tick in axis_ticks(top))
    head = f'<th>class</th><th class="lanes-cell"><div class="axis">{ticks}</div></th>'
    body = []
    for row in rows:
        color = class_color(row.name)
        if row.second is None:
            lanes = _bar(row.first, labels[0], color, top, "single")
        else:
            lanes = _bar(row.first, labels[0], color, top, "first")
            lanes += _bar(row.second, labels[1], _lighter(color), top, "second")
        body.append(
            f'<tr><td>{swatch(color)}{escape(row.name)}</td><td class="lanes-cell"><div class="lanes">{lanes}'
            "</div></td></tr>"
        )
    table = f'<table class="bars"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    legend = (
        f'<p class="legend"><span class="key first"></span>{escape(labels[0])} '
        f'<span class="key second"></span>{escape(labels[1])} <span class="dim">&middot; {escape(axis_label)}, '
        f"axis 0&ndash;{top:g}</span></p>"
    )
    return _wrapped(table) + legend


def _lighter(color: Color) -> Color:
    """The colour at 45 % opacity on white, as the second bars were drawn."""
    return _mix((255, 255, 255), color, 0.45)


def _bar(bar: Bar, label: str, color: Color, top: float, kind: str) -> str:
    if is_missing(bar.value):
        return f'<div class="lane {kind}">{na_mark(f"{label}: {NA_TOOLTIP}")}</div>'
    percent = 100.0 * bar.value
    note = f' <span class="dim">{escape(bar.note)}</span>' if bar.note else ""
    return (
        f'<div class="lane {kind}" title="{escape(label)}: {percent:.2f} %">'
        f'<div class="bar" style="width:{bar_width(bar.value, top):.2f}%;--c:{hex_color(color)}"></div>'
        f'<span class="value">{percent:.1f}{note}</span></div>'
    )


def _no_ground_truth_note(false_positives: int | None) -> str:
    return "" if false_positives is None else f"no GT, {false_positives:,} FP px"


def pixel_bars(pixel: PixelScores, unseen: Mapping[str, int]) -> str:
    """IoU and iIoU per class (iIoU only for the instance classes); ``unseen``: the false-positive pixels of the
    classes absent from the ground truth but predicted, whose 0 is written with why."""
    rows = []
    for name in ordered(EVAL_CLASS_NAMES, pixel.class_iou):
        note = _no_ground_truth_note(unseen.get(name))
        second = Bar(_get(pixel.class_iiou, name), note) if name in pixel.class_iiou else None
        rows.append(BarRow(name, Bar(_get(pixel.class_iou, name), note), second))
    return paired_bars(rows, ("IoU", "iIoU"), "score (%)")


def instance_bars(instance: InstanceScores) -> str:
    """AP and AP50% per class."""
    rows = []
    for name in ordered(INSTANCE_CLASS_NAMES, instance.class_scores):
        values = instance.class_scores.get(name, {})
        rows.append(BarRow(name, Bar(_get(values, "ap")), Bar(_get(values, "ap50"))))
    return paired_bars(rows, ("AP", "AP50%"), "average precision (%)")


# --- the confusion matrix -----------------------------------------------------------------------


def valid_confusion(confusion: np.ndarray | None) -> bool:
    if confusion is None:
        return False
    conf = np.asarray(confusion)
    return conf.ndim == 2 and conf.shape[0] == conf.shape[1] and conf.shape[0] > max(EVAL_CLASS_IDS)


def row_normalized_confusion(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 19x19 block over the evaluated classes, as the official script prints it normalized.

    Each ground-truth row is divided by its full sum over all 34 predicted label ids, so a row adds
    up to less than 1 when ground-truth pixels were predicted as ignored labels. Returns
    (matrix, share predicted as an ignored label, share of all ground-truth pixels in the row);
    rows without ground truth are NaN.
    """
    conf = np.asarray(confusion, dtype=np.float64)
    ids = np.array(EVAL_CLASS_IDS)
    rows = conf[ids]
    row_sums = rows.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = rows[:, ids] / row_sums[:, None]
        ignored = 1.0 - matrix.sum(axis=1)
        total = conf.sum()
        prior = row_sums / total if total > 0 else np.full(len(ids), np.nan)
    matrix[row_sums == 0] = np.nan
    ignored[row_sums == 0] = np.nan
    return matrix, np.clip(ignored, 0.0, 1.0), prior


def confusion_position(share: float) -> float:
    """Where a share sits on the colour scale: its square root (matplotlib's PowerNorm(0.5) over 0-100 %), so
    that the small confusions, the ones worth seeing, are not all near-white."""
    return math.sqrt(min(max(share, 0.0), 1.0))


_CONFUSION_TICKS = (0, 1, 5, 10, 25, 50, 75, 100)


def confusion_table(matrix: np.ndarray) -> str:
    """The row-normalized 19x19 matrix: rows ground truth, columns predictions, whole percentages in cells
    coloured by them (blank under 0.5 %), the exact share as each cell's tooltip."""
    names = EVAL_CLASS_NAMES
    head = '<th class="corner"><span>prediction &rarr;</span><span>ground truth &darr;</span></th>' + "".join(
        f'<th class="col" style="border-bottom-color:{hex_color(class_color(name))}" '
        f'title="predicted as {escape(name)}"><span>{escape(name)}</span></th>'
        for name in names
    )
    rows = []
    for i, truth in enumerate(names):
        label = f'<th class="row">{swatch(class_color(truth))}{escape(truth)}</th>'
        if np.isnan(matrix[i]).all():
            rows.append(f'<tr>{label}<td class="no-gt" colspan="{len(names)}">no ground truth</td></tr>')
            continue
        cells = "".join(_confusion_cell(truth, predicted, float(matrix[i, j])) for j, predicted in enumerate(names))
        rows.append(f"<tr>{label}{cells}</tr>")
    table = f'<table class="heat confusion"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    ticks = [(confusion_position(tick / 100), str(tick)) for tick in _CONFUSION_TICKS]
    return _wrapped(table) + color_scale(ticks, "% of the row's ground-truth pixels")


def _confusion_cell(truth: str, predicted: str, share: float) -> str:
    text = f"{100 * share:.0f}" if share >= 0.005 else ""
    title = f"{truth} predicted as {predicted}: {100 * share:.2f} %"
    return _heat_cell(confusion_position(share), text, title)


# --- AP by overlap threshold --------------------------------------------------------------------


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column has no value (without a RuntimeWarning)."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=0)
    sums = np.where(valid, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def ap_overlap_table(ap_matrix: np.ndarray) -> str | None:
    """AP per class (rows) by overlap threshold (columns) from ``ap_matrix[0]`` (all distances), and the mean
    over the classes with ground truth; cells coloured on a scale from 0 to ``axis_top`` of the values.

    None when the matrix is not (distances, classes, overlaps) shaped or empty.
    """
    matrix = np.asarray(ap_matrix, dtype=float)
    if matrix.ndim != 3 or 0 in matrix.shape:
        return None
    per_class = matrix[0]
    count = per_class.shape[1]
    overlaps = OVERLAPS if count == len(OVERLAPS) else tuple(np.linspace(0.5, 0.95, count))
    names = (
        INSTANCE_CLASS_NAMES
        if per_class.shape[0] == len(INSTANCE_CLASS_NAMES)
        else tuple(f"class {i}" for i in range(per_class.shape[0]))
    )
    mean = _nanmean_columns(per_class)
    top = axis_top(np.concatenate([per_class.ravel(), mean]) * 100, headroom=1.05)
    head = "<th>class</th>" + "".join(f"<th>{overlap:.2f}</th>" for overlap in overlaps)
    rows = []
    for name, row in zip(names, per_class, strict=True):
        label = f"<th>{swatch(class_color(name))}{escape(name)}</th>"
        if np.isnan(row).all():
            rows.append(f'<tr>{label}<td class="no-gt" colspan="{count}">no ground truth</td></tr>')
        else:
            rows.append(f"<tr>{label}{_ap_cells(name, row, overlaps, top)}</tr>")
    mean_cells = _ap_cells("mean", mean, overlaps, top)
    rows.append(f'<tr class="mean"><th title="over the classes with ground truth">mean</th>{mean_cells}</tr>')
    table = f'<table class="heat overlap"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    ticks = [(tick / top, f"{tick:g}") for tick in axis_ticks(top)]
    return _wrapped(table) + color_scale(ticks, "AP (%)")


def _ap_cells(name: str, values: np.ndarray, overlaps: Sequence[float], top: float) -> str:
    cells = []
    for value, overlap in zip(values, overlaps, strict=True):
        title = f"{name}, overlap {overlap:.2f}"
        if math.isnan(value):
            cells.append(f'<td class="na" title="{escape(title)}: {escape(NA_TOOLTIP)}">&ndash;</td>')
        else:
            percent = 100 * value
            cells.append(_heat_cell(bar_width(value, top) / 100, f"{percent:.1f}", f"{title}: AP {percent:.2f} %"))
    return "".join(cells)
