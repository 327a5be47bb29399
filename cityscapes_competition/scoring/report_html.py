"""The participant's detailed results: one self-contained HTML page (``detailed_results.html``).

CodaLab/Codabench show this page in an iframe, so it carries everything inline: CSS in a
``<style>`` element and the charts as base64 PNG data URIs; no scripts, fonts or links. Every
string that comes from data (warnings, class names, notes) is HTML-escaped.

Scores are fractions in [0, 1] (as the official scripts return them, and as the leaderboard, scores.txt and
scores.json hold them). The page shows them as percentages, and beside each leaderboard number its fraction,
so that both can be matched at a glance.
Charts are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas directly (no pyplot: no
global state). matplotlib is imported only when a chart is drawn (about 0.3 s, a third of a one-image
scoring run), so the scorer can import it in the background (``prefetch_chart_library``) and the pages
without charts never pay for it.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from cityscapes_competition.core.labels import (
    CATEGORIES,
    EVAL_CLASS_IDS,
    INSTANCE_CLASS_NAMES,
    LABEL_NAMES,
    color_of,
)
from cityscapes_competition.scoring.scores import InstanceScores, PixelScores, Scores

if TYPE_CHECKING:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

DPI = 100
NA_TOOLTIP = "undefined: no ground truth for this class in the evaluated images (denominator 0)"
NOT_DEFINED_TOOLTIP = "not defined for this class"
NOT_SUBMITTED = "not submitted (scored 0)"
UNITS_NOTE = (
    "Scores on this page are percentages; the leaderboard, scores.txt and scores.json hold the same "
    "scores as fractions in [0, 1] (49.50 % there is 0.4950)."
)
NO_GROUND_TRUTH_MARK = "&Dagger;"
FALLBACK_COLOR = (128, 128, 128)
OVERLAPS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_LABEL_ID_OF_NAME: dict[str, int] = {name: label_id for label_id, name in enumerate(LABEL_NAMES)}
EVAL_CLASS_NAMES: tuple[str, ...] = tuple(LABEL_NAMES[i] for i in EVAL_CLASS_IDS)


# --- formatting ---------------------------------------------------------------------------------


def _is_missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def format_percent(value: float | None, decimals: int = 2) -> str:
    """A fraction as a percentage without the sign; "n/a" for None and NaN."""
    if _is_missing(value):
        return "n/a"
    return f"{100.0 * float(value):.{decimals}f}"


def format_fraction(value: float | None) -> str:
    """A score as the leaderboard shows it: a fraction with 4 decimals; "n/a" for None and NaN."""
    return "n/a" if _is_missing(value) else f"{float(value):.4f}"


def _na(tooltip: str = NA_TOOLTIP) -> str:
    return f'<span class="na" title="{escape(tooltip)}">n/a<sup>*</sup></span>'


def _class_color(name: str) -> tuple[int, int, int]:
    label_id = _LABEL_ID_OF_NAME.get(name)
    return FALLBACK_COLOR if label_id is None else color_of(label_id)


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def _swatch(color: tuple[int, int, int]) -> str:
    r, g, b = color
    return f'<span class="swatch" style="background:rgb({r},{g},{b})"></span>'


def _ordered(known: Sequence[str], present: Iterable[str]) -> list[str]:
    """The known names in their official order, then any other names found in the data."""
    present = list(present)
    return list(known) + [name for name in present if name not in known]


def _score_cell(value: float | None, decimals: int = 1, bar: bool = True) -> str:
    """A table cell with a percentage and a faint in-cell bar; "n/a" with a tooltip for NaN."""
    if _is_missing(value):
        return f'<td class="num">{_na()}</td>'
    pct = min(max(100.0 * float(value), 0.0), 100.0)
    style = f' style="background:linear-gradient(90deg,#dbe7f5 {pct:.1f}%,transparent {pct:.1f}%)"' if bar else ""
    return f'<td class="num"{style}>{format_percent(value, decimals)}</td>'


def _leaderboard_cell(value: float | None) -> str:
    """A mean that is a leaderboard column: the percentage, and the fraction the leaderboard shows."""
    if _is_missing(value):
        return f'<td class="num">{_na()}</td>'
    return f'<td class="num">{format_percent(value)} <span class="fraction">({format_fraction(value)})</span></td>'


def _no_ground_truth_cell(value: float | None, false_positives: int) -> str:
    """The score of a class absent from the ground truth but predicted: 0, and why."""
    reason = (
        f"no ground truth of this class in the evaluated images, but {false_positives:,} pixels predicted as it "
        "(false positives): the score is 0 and counts in the mean, as in the official cityscapesScripts"
    )
    return (
        f'<td class="num" title="{escape(reason)}">{format_percent(value, 1)}<sup>{NO_GROUND_TRUTH_MARK}</sup> '
        f'<span class="dim">no GT, {false_positives:,} FP px</span></td>'
    )


def _not_defined_cell() -> str:
    return f'<td class="num dim" title="{NOT_DEFINED_TOOLTIP}">&ndash;</td>'


# --- charts -------------------------------------------------------------------------------------
# Fixed margins in inches rather than a layout engine: one draw per figure instead of two.

_CHART_MODULES = (
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "matplotlib.collections",
    "matplotlib.colors",
    "matplotlib.patches",
)
_prefetch: list[threading.Thread] = []


def prefetch_chart_library() -> None:
    """Start importing matplotlib in a background thread, to overlap the scoring's own work.

    Call it only when no process is forked before the charts are drawn: a child forked during an
    import inherits that module's lock, held by a thread it does not have, and hangs on its import.
    """
    if not _prefetch:
        _prefetch.append(threading.Thread(target=_import_quietly, name="import matplotlib"))
        _prefetch[0].start()  # not a daemon: the interpreter never exits in the middle of an import


def _import_quietly() -> None:
    with contextlib.suppress(Exception):  # the main thread imports again and reports the error
        load_chart_library()


def load_chart_library() -> None:
    """Import the parts of matplotlib the charts use (after the prefetch, if one runs, has finished)."""
    if threading.current_thread() is threading.main_thread():
        for thread in _prefetch:
            thread.join()
    for name in _CHART_MODULES:
        importlib.import_module(name)


def _png_data_uri(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself: savefig need not look the PNG backend up
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(uri: str | None, alt: str) -> str:
    return "" if uri is None else f'<img class="chart" src="{uri}" alt="{escape(alt)}">'


def _figure(width: float, height: float, left: float, right: float, top: float, bottom: float) -> Figure:
    """A figure with one axes inset by the given margins (inches)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)
    return fig


def _values(scores: dict[str, float], names: Sequence[str]) -> np.ndarray:
    return np.array([_get(scores, n) for n in names], dtype=float)


def _get(values: dict[str, float], key: str) -> float:
    value = values.get(key)
    return np.nan if _is_missing(value) else float(value)


_AXIS_TOPS = (5.0, 10.0, 20.0, 25.0, 50.0, 100.0)


def axis_top(values: np.ndarray, headroom: float = 1.1) -> float:
    """The top of a 0..top % axis that holds ``values`` (%, NaN skipped) with some headroom: the smallest
    of 5, 10, 20, 25, 50, 100 that does, so a 2 % baseline is not a flat line under a 0-100 axis."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    peak = float(finite.max()) * headroom if finite.size else 0.0
    return next((top for top in _AXIS_TOPS if peak <= top), _AXIS_TOPS[-1])


def _axis_ticks(top: float) -> np.ndarray:
    return np.linspace(0.0, top, 6)  # steps of 1, 2, 4, 5, 10 or 20 %


def _paired_bar_chart(
    names: Sequence[str],
    first: np.ndarray,
    second: np.ndarray,
    labels: tuple[str, str],
    xlabel: str,
    second_defined: Sequence[bool] | None = None,
) -> Figure:
    """Horizontal bars per class: the first score in the class color, the second hatched and lighter.

    NaN bars are left out and marked "n/a"; a class whose second score is not defined at all
    gets a single centred bar.
    """
    from matplotlib.patches import Patch

    defined = [True] * len(names) if second_defined is None else list(second_defined)
    fig = _figure(5.5, 0.75 + 0.3 * len(names), left=1.05, right=0.15, top=0.1, bottom=0.5)
    ax = fig.add_subplot()
    rows = np.arange(len(names), dtype=float)
    colors = [_rgb(_class_color(n)) for n in names]
    bar_h = 0.4
    second_rows = [i for i, shown in enumerate(defined) if shown]
    top = axis_top(np.concatenate([first, second[second_rows]]) * 100)
    first_y = np.where(defined, rows - bar_h / 2, rows)
    first_h = np.where(defined, bar_h, 0.6)
    ax.barh(first_y, np.nan_to_num(first * 100), first_h, color=colors, edgecolor="#333", lw=0.5)
    ax.barh(
        rows[second_rows] + bar_h / 2,
        np.nan_to_num(second[second_rows] * 100),
        bar_h,
        color=[colors[i] for i in second_rows],
        alpha=0.45,
        hatch="////",
        edgecolor="#333",
        lw=0.5,
    )
    bars = [(y, v) for y, v in zip(first_y, first, strict=True)]
    bars += [(rows[i] + bar_h / 2, second[i]) for i in second_rows]
    for y, value in bars:
        if np.isnan(value):
            ax.text(top / 100, y, "n/a", va="center", fontsize=7, color="#777")
        else:
            ax.text(100 * value + top / 100, y, f"{100 * value:.1f}", va="center", fontsize=7)
    ax.set_yticks(rows, names, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, top * 1.09)  # room for the value written after a full bar
    ax.set_xticks(_axis_ticks(top))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(axis="x", color="#ddd", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(
        handles=[
            Patch(facecolor="#999", edgecolor="#333", label=labels[0]),
            Patch(facecolor="#999", alpha=0.45, hatch="////", edgecolor="#333", label=labels[1]),
        ],
        loc="lower right",
        fontsize=8,
        framealpha=0.95,
    )
    return fig


def pixel_bar_chart(pixel: PixelScores) -> str:
    """IoU and iIoU per class (iIoU only for the instance classes), as a PNG data URI."""
    names = _ordered(EVAL_CLASS_NAMES, pixel.class_iou)
    defined = [name in pixel.class_iiou for name in names]
    fig = _paired_bar_chart(
        names,
        _values(pixel.class_iou, names),
        _values(pixel.class_iiou, names),
        ("IoU", "iIoU"),
        "score (%)",
        defined,
    )
    return _png_data_uri(fig)


def instance_bar_chart(instance: InstanceScores) -> str:
    """AP and AP50% per class, as a PNG data URI."""
    names = _ordered(INSTANCE_CLASS_NAMES, instance.class_scores)
    ap = np.array([_get(instance.class_scores.get(n, {}), "ap") for n in names], dtype=float)
    ap50 = np.array([_get(instance.class_scores.get(n, {}), "ap50") for n in names], dtype=float)
    fig = _paired_bar_chart(names, ap, ap50, ("AP", "AP50%"), "average precision (%)")
    return _png_data_uri(fig)


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


def _blues() -> Colormap:
    from matplotlib import colormaps

    return colormaps["Blues"].with_extremes(bad="#eeeeee")


def confusion_heatmap(matrix: np.ndarray) -> str:
    """The row-normalized 19x19 matrix as an annotated heatmap (PNG data URI)."""
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    names = EVAL_CLASS_NAMES
    n = len(names)
    side, left, bottom, top, right = 6.2, 1.25, 1.2, 0.15, 1.05
    width, height = left + side + right, bottom + side + top
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(
        ((left + side + 0.15) / width, (bottom + side * 0.2) / height, 0.15 / width, side * 0.6 / height)
    )
    image = ax.imshow(np.ma.masked_invalid(matrix * 100), cmap=_blues(), norm=PowerNorm(0.5, vmin=0, vmax=100))
    for i in range(n):
        if np.isnan(matrix[i]).all():
            ax.text(n / 2 - 0.5, i, "no ground truth", ha="center", va="center", fontsize=7, color="#555")
            continue
        for j in np.flatnonzero(matrix[i] >= 0.005):
            pct = 100 * matrix[i, j]
            color = "white" if pct > 40 else "#222"
            ax.text(j, i, f"{pct:.0f}", ha="center", va="center", fontsize=6.5, color=color)
    ax.set_xticks(range(n), names, rotation=55, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("prediction", fontsize=9)
    ax.set_ylabel("ground truth", fontsize=9)
    ax.add_collection(_cell_grid(n), autolim=False)
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.set_label("% of the row's ground-truth pixels", fontsize=8)
    colorbar.set_ticks([0, 1, 5, 10, 25, 50, 75, 100])
    colorbar.ax.tick_params(labelsize=7)
    return _png_data_uri(fig)


def _cell_grid(n: int) -> LineCollection:
    """White lines between the cells of an n x n image, as the minor-tick grid draws them: one
    collection instead of 2(n+1) minor ticks, which cost a quarter of the heatmap's time."""
    from matplotlib.collections import LineCollection

    edges = np.arange(n + 1) - 0.5
    low, high = np.full(n + 1, -0.5), np.full(n + 1, n - 0.5)
    rows = np.stack([np.column_stack([low, edges]), np.column_stack([high, edges])], axis=1)
    return LineCollection([*rows, *rows[:, :, ::-1]], colors="white", linewidths=0.5, zorder=1.5)


def _nanmean_columns(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column has no value (without a RuntimeWarning)."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=0)
    sums = np.where(valid, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def ap_overlap_chart(ap_matrix: np.ndarray) -> str | None:
    """AP against the overlap threshold from ``ap_matrix[0]`` (all distances), per class and mean.

    None when the matrix is not (distances, classes, overlaps) shaped or empty.
    """
    matrix = np.asarray(ap_matrix, dtype=float)
    if matrix.ndim != 3 or 0 in matrix.shape:
        return None
    per_class = matrix[0]
    count = per_class.shape[1]
    overlaps = np.array(OVERLAPS) if count == len(OVERLAPS) else np.linspace(0.5, 0.95, count)
    names = (
        INSTANCE_CLASS_NAMES
        if per_class.shape[0] == len(INSTANCE_CLASS_NAMES)
        else tuple(f"class {i}" for i in range(per_class.shape[0]))
    )
    fig = _figure(7.0, 3.2, left=0.65, right=1.15, top=0.1, bottom=0.55)
    ax = fig.add_subplot()
    for name, row in zip(names, per_class, strict=True):
        if not np.isnan(row).all():
            ax.plot(overlaps, row * 100, color=_rgb(_class_color(name)), lw=1.1, alpha=0.85, label=name)
    mean = _nanmean_columns(per_class)
    ax.plot(overlaps, mean * 100, color="black", lw=2.4, marker="o", ms=3.5, label="mean")
    ax.set_xticks(overlaps, [f"{o:.2f}" for o in overlaps], fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlim(overlaps[0] - 0.01, overlaps[-1] + 0.01)
    top = axis_top(np.concatenate([per_class.ravel(), mean]) * 100, headroom=1.05)
    ax.set_ylim(0, top)
    ax.set_yticks(_axis_ticks(top))
    ax.set_xlabel("overlap threshold", fontsize=9)
    ax.set_ylabel("AP (%)", fontsize=9)
    ax.grid(color="#ddd", lw=0.6)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png_data_uri(fig)


PIXEL_BARS, CONFUSION, INSTANCE_BARS, AP_OVERLAP = "pixel_bars", "confusion", "instance_bars", "ap_overlap"


@dataclass(frozen=True)
class ChartJob:
    """One picture of the page: ``draw(*args)`` gives its PNG data URI (None: nothing to show)."""

    key: str
    draw: Callable[..., str | None]
    args: tuple
    cost: float  # milliseconds to draw it, measured: lets the caller share the charts out evenly

    def run(self) -> str | None:
        return self.draw(*self.args)


def chart_jobs(scores: Scores) -> list[ChartJob]:
    """The charts of the page of ``scores``; draw them with ``draw_charts`` (here or in other processes)."""
    jobs = []
    if scores.pixel is not None:
        jobs.append(ChartJob(PIXEL_BARS, pixel_bar_chart, (scores.pixel,), 110))
        if _valid_confusion(scores.pixel.confusion_matrix):
            matrix = row_normalized_confusion(scores.pixel.confusion_matrix)[0]
            jobs.append(ChartJob(CONFUSION, confusion_heatmap, (matrix,), 170))
    if scores.instance is not None:
        jobs.append(ChartJob(INSTANCE_BARS, instance_bar_chart, (scores.instance,), 70))
        jobs.append(ChartJob(AP_OVERLAP, ap_overlap_chart, (scores.instance.ap_matrix,), 60))
    return jobs


def draw_charts(jobs: Iterable[ChartJob]) -> dict[str, str | None]:
    """The pictures of ``jobs``, by key."""
    load_chart_library()
    return {job.key: job.run() for job in jobs}


# --- page sections ------------------------------------------------------------------------------


def _card(label: str, value: float | None, absent_note: str | None = None) -> str:
    """One headline number; ``absent_note`` explains a None value (marked with a dagger)."""
    if value is None and absent_note is not None:
        body = f'<div class="value na" title="{escape(absent_note)}">n/a<sup>&dagger;</sup></div>'
    elif _is_missing(value):
        body = f'<div class="value na" title="{escape(NA_TOOLTIP)}">n/a<sup>*</sup></div>'
    else:
        body = (
            f'<div class="value">{format_percent(value)}<span class="unit">%</span></div>'
            f'<div class="fraction" title="the leaderboard, scores.txt and scores.json hold fractions">'
            f"leaderboard: {format_fraction(value)}</div>"
        )
    return f'<div class="card"><div class="label">{escape(label)}</div>{body}</div>'


def _summary_group(title: str, cards: list[str] | None, note: str = "") -> str:
    if cards is None:
        inner = f'<div class="card missing"><div class="value">{NOT_SUBMITTED}</div></div>'
    else:
        inner = "".join(cards)
    note_html = f'<p class="group-note">{note}</p>' if note else ""
    return f'<div class="group"><h3>{escape(title)}</h3><div class="cards">{inner}</div>{note_html}</div>'


def _distance_note(instance: InstanceScores) -> str | None:
    """Why AP100m/AP50m are absent, or None when both are there."""
    if instance.ap100m is not None and instance.ap50m is not None:
        return None
    return instance.distance_note or "not computed"


def summary_html(scores: Scores) -> str:
    """The leaderboard numbers of both tasks, as cards."""
    pixel_cards = None
    if scores.pixel is not None:
        p = scores.pixel
        pixel_cards = [
            _card("IoU class", p.iou_class),
            _card("iIoU class", p.iiou_class),
            _card("IoU category", p.iou_category),
            _card("iIoU category", p.iiou_category),
        ]
    instance_cards = None
    instance_note = ""
    if scores.instance is not None:
        inst = scores.instance
        note = _distance_note(inst)
        instance_cards = [
            _card("AP", inst.ap),
            _card("AP50%", inst.ap50),
            _card("AP100m", inst.ap100m, note),
            _card("AP50m", inst.ap50m, note),
        ]
        if note is not None:
            instance_note = f"<sup>&dagger;</sup> AP100m and AP50m are not available: {escape(note)}"
    return (
        f'<p class="units">{escape(UNITS_NOTE)}</p><section class="summary">'
        + _summary_group("Pixel-level semantic labeling", pixel_cards)
        + _summary_group("Instance-level semantic labeling", instance_cards, instance_note)
        + "</section>"
    )


def warnings_html(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(str(w))}</li>" for w in warnings)
    count = len(warnings)
    return (
        '<section class="warnings" role="alert">'
        f"<h2>&#9888; {count} warning{'s' if count != 1 else ''}</h2><ul>{items}</ul></section>"
    )


def _table(head: str, rows: Sequence[str]) -> str:
    """A score table (head: the header cells; rows: whole <tr> elements), scrollable when narrow."""
    return (
        f'<div class="table-wrap"><table class="scores"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _pixel_class_table(
    pixel: PixelScores,
    matrix: np.ndarray | None,
    ignored: np.ndarray | None,
    prior: np.ndarray | None,
) -> str:
    names = _ordered(EVAL_CLASS_NAMES, pixel.class_iou)
    has_conf = matrix is not None
    unseen = predicted_without_ground_truth(pixel.confusion_matrix) if has_conf else {}
    head = "<th>class</th><th>IoU (%)</th><th>iIoU (%)</th>"
    if has_conf:
        head += (
            '<th title="the class\'s share of all ground-truth pixels of the evaluated images, in %">'
            "GT share (%)</th>"
            '<th title="ground-truth pixels of the class predicted as an ignored (void) label, in % of the class">'
            "&rarr; ignored (%)</th>"
            "<th>most confused with</th>"
        )
    rows = []
    for name in names:
        cells = f"<td>{_swatch(_class_color(name))}{escape(name)}</td>"
        cells += _class_score_cell(pixel.class_iou.get(name), unseen.get(name))
        iiou = _class_score_cell(pixel.class_iiou[name], unseen.get(name)) if name in pixel.class_iiou else None
        cells += iiou or _not_defined_cell()
        if matrix is not None and ignored is not None and prior is not None:
            if name in EVAL_CLASS_NAMES:
                i = EVAL_CLASS_NAMES.index(name)
                cells += _score_cell(prior[i], 2, bar=False)
                cells += _score_cell(ignored[i], 1, bar=False)
                cells += f"<td>{_most_confused(matrix, i)}</td>"
            else:
                cells += "<td></td>" * 3
        rows.append(f"<tr>{cells}</tr>")
    mean = (
        f"<tr class='mean'><td>mean (leaderboard)</td>{_leaderboard_cell(pixel.iou_class)}"
        f"{_leaderboard_cell(pixel.iiou_class)}{'<td></td>' * (3 if has_conf else 0)}</tr>"
    )
    return _table(head, [*rows, mean])


def _class_score_cell(value: float | None, false_positives: int | None) -> str:
    if false_positives is not None and not _is_missing(value):
        return _no_ground_truth_cell(value, false_positives)
    return _score_cell(value)


def predicted_without_ground_truth(confusion: np.ndarray) -> dict[str, int]:
    """Evaluated classes with no ground-truth pixel but some predicted ones: their false-positive pixels.

    Counted as the official getIouScoreForLabel counts FP: predictions on ground truth of the other
    evaluated classes (not on ignored labels). Officially such a class has IoU 0 (tp + fn = 0 but fp > 0),
    which counts in the mean; a class neither present nor predicted is NaN and left out.
    """
    conf = np.asarray(confusion, dtype=np.int64)
    ids = np.array(EVAL_CLASS_IDS)
    absent = conf[ids].sum(axis=1) == 0
    false_positives = conf[np.ix_(ids, ids)].sum(axis=0) - np.diagonal(conf)[ids]
    return {
        LABEL_NAMES[label_id]: int(fp)
        for label_id, missing, fp in zip(ids, absent, false_positives, strict=True)
        if missing and fp > 0
    }


def _most_confused(matrix: np.ndarray, i: int) -> str:
    row = matrix[i].copy()
    if np.isnan(row).all():
        return _na()
    row[i] = -1.0
    j = int(np.argmax(row))
    if row[j] <= 0:
        return '<span class="dim">&ndash;</span>'
    name = EVAL_CLASS_NAMES[j]
    return f"{_swatch(_class_color(name))}{escape(name)} <span class='dim'>({100 * row[j]:.1f}%)</span>"


def _category_table(pixel: PixelScores) -> str:
    known = [c.name for c in CATEGORIES if c.iou_label_ids]
    colors = {c.name: color_of(c.iou_label_ids[0]) for c in CATEGORIES if c.iou_label_ids}
    rows = []
    for name in _ordered(known, pixel.category_iou):
        iiou = _score_cell(pixel.category_iiou[name]) if name in pixel.category_iiou else _not_defined_cell()
        swatch = _swatch(colors.get(name, FALLBACK_COLOR))
        rows.append(f"<tr><td>{swatch}{escape(name)}</td>{_score_cell(pixel.category_iou.get(name))}{iiou}</tr>")
    mean = (
        f"<tr class='mean'><td>mean (leaderboard)</td>{_leaderboard_cell(pixel.iou_category)}"
        f"{_leaderboard_cell(pixel.iiou_category)}</tr>"
    )
    return _table("<th>category</th><th>IoU (%)</th><th>iIoU (%)</th>", [*rows, mean])


def _valid_confusion(confusion: np.ndarray | None) -> bool:
    if confusion is None:
        return False
    conf = np.asarray(confusion)
    return conf.ndim == 2 and conf.shape[0] == conf.shape[1] and conf.shape[0] > max(EVAL_CLASS_IDS)


def pixel_section(pixel: PixelScores | None, charts: Mapping[str, str | None]) -> str:
    title = "<h2>Pixel-level semantic labeling</h2>"
    if pixel is None:
        return f'<section id="pixel">{title}<p class="missing">Task {NOT_SUBMITTED}.</p></section>'
    matrix = ignored = prior = None
    if _valid_confusion(pixel.confusion_matrix):
        matrix, ignored, prior = row_normalized_confusion(pixel.confusion_matrix)
    parts = [
        title,
        "<h3>Per class</h3>",  # the full width: its six columns do not fit half of a 1280 px window
        _pixel_class_table(pixel, matrix, ignored, prior),
        '<div class="two-col"><div><h3>Per category</h3>',
        _category_table(pixel),
        "</div><div><h3>IoU and iIoU per class</h3>",
        _img(charts.get(PIXEL_BARS), "IoU and iIoU per class"),
        "</div></div>",
    ]
    if matrix is not None:
        parts += [
            "<h3>Confusion matrix</h3>",
            '<p class="explain">Rows are ground truth, columns predictions; each row is divided by all '
            "ground-truth pixels of its class (as the official script prints it), so a row sums to less "
            "than 100% when pixels were predicted as an ignored label (see &ldquo;&rarr; ignored&rdquo; "
            "above). Cells are percentages; values under 0.5% are left blank.</p>",
            _img(charts.get(CONFUSION), "Row-normalized confusion matrix"),
        ]
    return f'<section id="pixel">{"".join(parts)}</section>'


def _instance_table(instance: InstanceScores) -> str:
    names = _ordered(INSTANCE_CLASS_NAMES, instance.class_scores)
    distance = instance.ap100m is not None or any("ap100m" in instance.class_scores.get(n, {}) for n in names)
    keys = ["ap", "ap50"] + (["ap100m", "ap50m"] if distance else [])
    headers = {"ap": "AP", "ap50": "AP50%", "ap100m": "AP100m", "ap50m": "AP50m"}
    head = "<th>class</th>" + "".join(f"<th>{headers[k]} (%)</th>" for k in keys)
    rows = []
    for name in names:
        values = instance.class_scores.get(name, {})
        cells = "".join(_score_cell(values.get(k)) for k in keys)
        rows.append(f"<tr><td>{_swatch(_class_color(name))}{escape(name)}</td>{cells}</tr>")
    means = {"ap": instance.ap, "ap50": instance.ap50, "ap100m": instance.ap100m, "ap50m": instance.ap50m}
    mean_cells = "".join(_leaderboard_cell(means[k]) for k in keys)
    mean = f"<tr class='mean'><td>mean (leaderboard)</td>{mean_cells}</tr>"
    return _table(head, [*rows, mean])


def instance_section(instance: InstanceScores | None, charts: Mapping[str, str | None]) -> str:
    title = "<h2>Instance-level semantic labeling</h2>"
    if instance is None:
        return f'<section id="instance">{title}<p class="missing">Task {NOT_SUBMITTED}.</p></section>'
    parts = [
        title,
        '<div class="two-col"><div><h3>Per class</h3>',
        _instance_table(instance),
    ]
    note = _distance_note(instance)
    if note is not None:
        parts.append(f'<p class="explain">AP100m and AP50m: n/a &mdash; {escape(note)}</p>')
    parts += [
        "</div><div><h3>AP and AP50% per class</h3>",
        _img(charts.get(INSTANCE_BARS), "AP and AP50% per class"),
        "</div></div>",
    ]
    overlap_chart = charts.get(AP_OVERLAP)
    if overlap_chart is not None:
        parts += [
            "<h3>AP by overlap threshold</h3>",
            '<p class="explain">AP is the mean over the ten thresholds 0.50, 0.55, &hellip;, 0.95; '
            "AP50% is the first point. The black line is the mean over classes with ground truth.</p>",
            _img(overlap_chart, "AP against the overlap threshold"),
        ]
    return f'<section id="instance">{"".join(parts)}</section>'


CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --accent:#0b5cad; --bg:#ffffff; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1180px; margin:0 auto; padding:20px 24px 40px; }
h1 { font-size:22px; margin:0 0 2px; }
h2 { font-size:18px; margin:32px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:14px; margin:16px 0 6px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.meta { color:var(--muted); margin:0 0 12px; }
.warnings { background:#fff8e6; border:1px solid #e3b341; border-left:6px solid #d29922;
  border-radius:6px; padding:8px 16px; margin:14px 0; }
.warnings h2 { border:0; margin:4px 0; font-size:16px; color:#7d4e00; }
.warnings ul { margin:4px 0 6px; padding-left:20px; }
.warnings li, .warnings p { margin:2px 0; word-break:break-word; }
.summary { display:flex; flex-wrap:wrap; gap:12px 28px; }
.group { flex:1 1 460px; }
.cards { display:grid; grid-template-columns:repeat(4,minmax(0,1fr)); gap:8px; }
.card { border:1px solid var(--line); border-radius:8px; padding:8px 10px; background:#f6f8fa; }
.card .label { font-size:12px; color:var(--muted); }
.card .value { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .value.na { color:var(--muted); }
.card .unit { font-size:13px; font-weight:400; color:var(--muted); margin-left:1px; }
.card .fraction { font-size:12px; color:var(--muted); font-variant-numeric:tabular-nums; }
.fraction { color:var(--muted); font-weight:400; }
.units { color:var(--muted); font-size:12.5px; margin:0 0 8px; }
.group-note { font-size:12px; color:var(--muted); margin:6px 0 0; word-break:break-word; }
.card.missing { grid-column:1 / -1; }
.card.missing .value { font-size:16px; color:#a40e26; }
.missing { color:#a40e26; }
.table-wrap { overflow-x:auto; }
.two-col { display:flex; flex-wrap:wrap; gap:8px 32px; align-items:flex-start; }
.two-col > div { flex:1 1 420px; min-width:0; }
table.scores { border-collapse:collapse; font-size:13px; width:100%; }
table.scores th { text-align:left; font-weight:600; border-bottom:2px solid var(--line);
  padding:4px 8px; white-space:nowrap; }
table.scores td { border-bottom:1px solid #eef1f4; padding:3px 8px; white-space:nowrap; }
table.scores td.num, table.scores th:not(:first-child) { text-align:right; }
table.scores td.num { font-variant-numeric:tabular-nums; }
table.scores tr.mean td { font-weight:600; border-top:2px solid var(--line); border-bottom:0; }
.swatch { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:6px;
  vertical-align:-1px; border:1px solid rgba(0,0,0,.25); }
.na { color:var(--muted); cursor:help; }
.dim { color:var(--muted); }
.explain { color:var(--muted); font-size:12.5px; max-width:900px; margin:4px 0 8px; }
img.chart { max-width:100%; height:auto; display:block; }
footer { margin-top:32px; padding-top:8px; border-top:1px solid var(--line); color:var(--muted);
  font-size:12px; }
"""


def render_detailed_results(
    scores: Scores, title: str = "Cityscapes evaluation", charts: Mapping[str, str | None] | None = None
) -> str:
    """The whole page, as a string of self-contained HTML; ``charts``: the pictures of ``chart_jobs(scores)``
    if they were drawn already (drawn here otherwise)."""
    if charts is None:
        charts = draw_charts(chart_jobs(scores))
    images = f"{scores.image_count} image{'s' if scores.image_count != 1 else ''} evaluated"
    footer = (
        "<footer><p><sup>*</sup> n/a: the score is undefined because the class has no ground truth in "
        "the evaluated images (for IoU and iIoU: nor any prediction; the denominator is 0); it is left out "
        "of the averages. "
        "&ndash; : the score is not defined for this class (iIoU exists only for classes with "
        f"instances). <sup>{NO_GROUND_TRUTH_MARK}</sup> no GT: the class has no ground truth in the evaluated "
        "images but was predicted; those pixels are false positives (FP px), so its score is 0 and counts "
        "in the mean, as in the official evaluation.</p>"
        f"<p>{escape(UNITS_NOTE)} The scores are computed as by the official cityscapesScripts "
        "evaluation.</p></footer>"
    )
    body = "".join(
        [
            f"<header><h1>{escape(title)}</h1><p class='meta'>{images}</p></header>",
            warnings_html(scores.reported_warnings()),
            summary_html(scores),
            pixel_section(scores.pixel, charts),
            instance_section(scores.instance, charts),
            footer,
        ]
    )
    return _page(title, body)


def render_failure(message: str, title: str = "Cityscapes evaluation") -> str:
    """The page of a submission that could not be scored: the one message that says why."""
    body = (
        f"<header><h1>{escape(title)}</h1><p class='meta'>not scored</p></header>"
        '<section class="warnings" role="alert"><h2>&#9888; This submission could not be scored</h2>'
        f"<p>{escape(message)}</p></section>"
    )
    return _page(title, body)


def render_in_progress(title: str = "Cityscapes evaluation") -> str:
    """The page while scoring runs (the platforms show it live), replaced by the results or the failure."""
    body = (
        f"<header><h1>{escape(title)}</h1><p class='meta'>scoring under way</p></header>"
        "<p>The submission is being scored; this page shows the results when scoring ends.</p>"
    )
    return _page(title, body)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
