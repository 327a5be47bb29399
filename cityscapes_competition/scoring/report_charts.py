"""The detailed results page's charts: bar charts of the class scores, the confusion matrix, AP by overlap,
each a base64 PNG data URI. Drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas directly (no
pyplot: no global state); matplotlib is imported only when a chart is drawn (``load_chart_library``: ~0.3 s,
with a font list of its own, see there), so the pages without
charts never pay for it, and score.py imports it in a process of its own from the start (program.py), or in the
background (``prefetch_chart_library``). Fixed margins in inches rather than a layout engine: one draw per
figure instead of two."""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cityscapes_competition.core.labels import (
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


FALLBACK_COLOR = (128, 128, 128)
OVERLAPS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_LABEL_ID_OF_NAME: dict[str, int] = {name: label_id for label_id, name in enumerate(LABEL_NAMES)}
EVAL_CLASS_NAMES: tuple[str, ...] = tuple(LABEL_NAMES[i] for i in EVAL_CLASS_IDS)


# --- formatting ---------------------------------------------------------------------------------


def is_missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def class_color(name: str) -> tuple[int, int, int]:
    label_id = _LABEL_ID_OF_NAME.get(name)
    return FALLBACK_COLOR if label_id is None else color_of(label_id)


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def ordered(known: Sequence[str], present: Iterable[str]) -> list[str]:
    """The known names in their official order, then any other names found in the data."""
    present = list(present)
    return list(known) + [name for name in present if name not in known]


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
    if "matplotlib" not in sys.modules:
        with _chart_fonts():
            for name in _CHART_MODULES:
                importlib.import_module(name)
    for name in _CHART_MODULES:
        importlib.import_module(name)


# The fonts the charts are drawn in: matplotlib's own DejaVu Sans (its default), as its font list (cache)
# names them. matplotlib reads that list at import, or builds it by opening every font of the system and its
# own (~0.15-0.3 s) and saves it in its cache folder, which does not last on the platforms: each run starts in
# a fresh container (and where HOME cannot be written, matplotlib warns on stderr and builds it in a temporary
# folder). So the scorer hands it this list in a folder of its own: no build, and the same fonts everywhere, so
# the charts do not depend on the fonts the machine has. A list of another matplotlib (FONT_LIST_VERSION is its
# FontManager.__version__) is rebuilt by matplotlib, as without this list.
FONT_LIST_VERSION = "3.11.0"
CHART_FONTS = (  # file in matplotlib's mpl-data/fonts/ttf, style, weight: as font_manager.ttfFontProperty reads them
    ("DejaVuSans.ttf", "normal", 400),
    ("DejaVuSans-Bold.ttf", "normal", 700),
    ("DejaVuSans-Oblique.ttf", "oblique", 400),
    ("DejaVuSans-BoldOblique.ttf", "oblique", 700),
)


def chart_font_list() -> dict:
    """matplotlib's font list (its fontlist-v*.json) holding only ``CHART_FONTS``."""
    entries = [
        {"fname": f"fonts/ttf/{name}", "index": 0, "name": "DejaVu Sans", "style": style, "variant": "normal",
         "weight": weight, "stretch": "normal", "size": "scalable", "__class__": "FontEntry"}
        for name, style, weight in CHART_FONTS
    ]  # fmt: skip
    return {
        "_version": FONT_LIST_VERSION,
        "_FontManager__default_weight": "normal",
        "default_size": None,
        "defaultFamily": {"ttf": "DejaVu Sans", "afm": "Helvetica"},
        "afmlist": [],
        "ttflist": entries,
        "__class__": "FontManager",
    }


@contextlib.contextmanager
def _chart_fonts() -> Iterator[None]:
    """matplotlib's import (MPLCONFIGDIR) pointed at a new temporary folder holding ``chart_font_list``, removed
    after it: matplotlib reads the list, and its other settings there (none), at import. Unless MPLCONFIGDIR is
    set already (the user's choice) or no folder can be made (then matplotlib finds its cache or builds one).
    Removed on any exception too: the chart process is stopped by one (SIGTERM) when scoring fails."""
    if os.environ.get("MPLCONFIGDIR"):
        yield
        return
    folder = ""
    try:
        with contextlib.suppress(OSError):  # matplotlib's own ways then
            folder = tempfile.mkdtemp(prefix="cityscapes-matplotlib-")
            Path(folder, f"fontlist-v{FONT_LIST_VERSION}.json").write_text(json.dumps(chart_font_list()))
            os.environ["MPLCONFIGDIR"] = folder
        yield
    finally:
        if folder:
            if os.environ.get("MPLCONFIGDIR") == folder:
                del os.environ["MPLCONFIGDIR"]  # matplotlib keeps the name; processes started later find theirs
            shutil.rmtree(folder, ignore_errors=True)


def _png_data_uri(fig: Figure) -> str:
    """The figure drawn on a white background, as a PNG data URI: RGB (it is opaque: the alpha channel would be
    a quarter of the data to compress), zlib level 1 (twice as fast as Pillow's default 6, and with RGB still
    smaller than matplotlib's RGBA PNG). The pixels are savefig's; so is the resolution it records (pHYs)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    fig.patch.set_facecolor("white")
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    rgba.convert("RGB").save(buffer, format="PNG", compress_level=1, dpi=(DPI, DPI))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img(uri: str | None, alt: str) -> str:
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
    return np.nan if is_missing(value) else float(value)


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
    colors = [_rgb(class_color(n)) for n in names]
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
    names = ordered(EVAL_CLASS_NAMES, pixel.class_iou)
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
    names = ordered(INSTANCE_CLASS_NAMES, instance.class_scores)
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
            ax.plot(overlaps, row * 100, color=_rgb(class_color(name)), lw=1.1, alpha=0.85, label=name)
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
    cost: float  # milliseconds to draw it, measured (40 images): lets the caller share the charts out evenly

    def run(self) -> str | None:
        return self.draw(*self.args)


def chart_jobs(scores: Scores) -> list[ChartJob]:
    """The charts of the page of ``scores``; draw them with ``draw_charts`` (here or in other processes)."""
    jobs = []
    if scores.pixel is not None:
        jobs.append(ChartJob(PIXEL_BARS, pixel_bar_chart, (scores.pixel,), 115))
        if valid_confusion(scores.pixel.confusion_matrix):
            matrix = row_normalized_confusion(scores.pixel.confusion_matrix)[0]
            jobs.append(ChartJob(CONFUSION, confusion_heatmap, (matrix,), 200))
    if scores.instance is not None:
        jobs.append(ChartJob(INSTANCE_BARS, instance_bar_chart, (scores.instance,), 65))
        jobs.append(ChartJob(AP_OVERLAP, ap_overlap_chart, (scores.instance.ap_matrix,), 60))
    return jobs


def draw_charts(jobs: Iterable[ChartJob]) -> dict[str, str | None]:
    """The pictures of ``jobs``, by key."""
    load_chart_library()
    return {job.key: job.run() for job in jobs}


# --- page sections ------------------------------------------------------------------------------


def valid_confusion(confusion: np.ndarray | None) -> bool:
    if confusion is None:
        return False
    conf = np.asarray(confusion)
    return conf.ndim == 2 and conf.shape[0] == conf.shape[1] and conf.shape[0] > max(EVAL_CLASS_IDS)
