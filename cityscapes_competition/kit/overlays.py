"""Overlay pictures of a check run: the input image, the prediction and the ground truth, in Cityscapes colours.

One PNG per image: three panels stacked (downscaled to at most ``panel_width`` pixels wide), the
predicted and ground-truth instances outlined in white, and a legend of the classes shown. Drawn on a
``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no display needed) and written atomically.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from ..core.atomic import write_bytes_atomic
from ..core.labels import EVAL_CLASS_IDS, NUM_LABEL_IDS, color_of, name_of
from ..core.naming import IMAGE_SUFFIX, FrameId, index_by_frame
from ..png.png_io import read_single_channel
from ..scoring.groundtruth import GroundTruthFrame, discover_ground_truth
from ..scoring.results_format import MaskFile, parse_instance_txt

_FIX = "Regenerate the sample data, or check the Cityscapes download it was built from."

PANEL_WIDTH = 1024
DPI = 100
FIRST_INSTANCE_VALUE = 1000  # instanceIds values from here on are single instances (labelId * 1000 + k)
PALETTE = np.array([color_of(label_id) for label_id in range(NUM_LABEL_IDS)], np.uint8)
_SCORED = np.isin(np.arange(NUM_LABEL_IDS), EVAL_CLASS_IDS)
_OUTLINE = np.array([255, 255, 255], np.uint8)
_TITLE_INCHES = 0.3
_LEGEND_INCHES = 1.6  # per legend column
_LEGEND_ROW_INCHES = 0.17


@dataclass(frozen=True)
class OverlaySources:
    """The files one overlay picture is drawn from."""

    frame: FrameId
    image: Path
    prediction: Path  # the ingestion's labelIds PNG
    instances_txt: Path | None  # the ingestion's instance txt, if it wrote one
    instance_root: Path | None  # the results' instance/ folder (mask paths are checked against it)
    ground_truth: GroundTruthFrame | None


@dataclass(frozen=True)
class Panels:
    """The three pictures of one overlay, at panel size, plus what their titles say."""

    image: np.ndarray  # (h, w, 3) uint8
    prediction: np.ndarray  # (h, w, 3) uint8, colours with instance outlines
    ground_truth: np.ndarray | None
    labels_shown: tuple[int, ...]
    predicted_instances: int
    true_instances: int
    accuracy: float | None  # share of scored ground-truth pixels predicted right, at full resolution


def save_overlays(
    input_data: Path, results: Path, reference: Path, out_dir: Path, limit: int = 5, panel_width: int = PANEL_WIDTH
) -> list[Path]:
    """One ``<stem>_overlay.png`` per image (the first ``limit`` in frame order); returns their paths."""
    written = []
    for sources in find_overlay_sources(input_data, results, reference)[:limit]:
        target = out_dir / f"{sources.frame.stem}_overlay.png"
        write_bytes_atomic(target, render_overlay(sources, panel_width), durable=False)
        written.append(target)
    return written


def find_overlay_sources(input_data: Path, results: Path, reference: Path) -> list[OverlaySources]:
    """Every test image that has a pixel prediction, with its instances and ground truth where they exist."""
    images = index_by_frame(input_data, IMAGE_SUFFIX, _FIX)
    predictions = _by_frame(results / "pixel", "_labelIds.png")
    instance_root = results / "instance"
    txts = _by_frame(instance_root, ".txt")
    truth = {gt.frame: gt for gt in discover_ground_truth(reference)} if reference.is_dir() else {}
    return [
        OverlaySources(
            frame,
            images[frame],
            predictions[frame],
            txts.get(frame),
            instance_root if frame in txts else None,
            truth.get(frame),
        )
        for frame in sorted(images)
        if frame in predictions
    ]


def _by_frame(root: Path, suffix: str) -> dict[FrameId, Path]:
    return index_by_frame(root, suffix, _FIX) if root.is_dir() else {}


def render_overlay(sources: OverlaySources, panel_width: int = PANEL_WIDTH) -> bytes:
    """The overlay picture of one image, as PNG bytes."""
    return _figure_png(sources.frame, build_panels(sources, panel_width))


def build_panels(sources: OverlaySources, panel_width: int = PANEL_WIDTH) -> Panels:
    with Image.open(sources.image) as picture:
        rgb = picture.convert("RGB")
    width, height = rgb.size
    panel = _panel_size(width, height, panel_width)
    rows, cols = _nearest_indices(height, panel[1]), _nearest_indices(width, panel[0])
    prediction = read_single_channel(sources.prediction, (width, height)).astype(np.intp)
    predicted_instances = _predicted_instance_map(sources, (height, width))
    shown = set(np.unique(prediction).tolist())
    truth_panel, true_count, accuracy = None, 0, None
    if sources.ground_truth is not None:
        labels = read_single_channel(sources.ground_truth.label_ids, (width, height)).astype(np.intp)
        instances = read_single_channel(sources.ground_truth.instance_ids, (width, height)).astype(np.int64)
        instances = np.where(instances >= FIRST_INSTANCE_VALUE, instances, 0)
        truth_panel = _coloured(labels[np.ix_(rows, cols)], instances[np.ix_(rows, cols)])
        true_count = int(np.count_nonzero(np.unique(instances)))
        accuracy = _accuracy(prediction, labels)
        shown |= set(np.unique(labels).tolist())
    return Panels(
        image=np.asarray(rgb.resize(panel, Image.Resampling.BILINEAR)),
        prediction=_coloured(prediction[np.ix_(rows, cols)], predicted_instances[np.ix_(rows, cols)]),
        ground_truth=truth_panel,
        labels_shown=tuple(sorted(label for label in shown if 0 <= label < NUM_LABEL_IDS)),
        predicted_instances=int(predicted_instances.max(initial=0)),
        true_instances=true_count,
        accuracy=accuracy,
    )


def _panel_size(width: int, height: int, panel_width: int) -> tuple[int, int]:
    """(width, height) of a panel: the image scaled down to ``panel_width`` if it is wider."""
    scale = min(1.0, panel_width / width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _nearest_indices(size: int, panel: int) -> np.ndarray:
    """Source rows (or columns) sampled at the panel's pixel centres: a nearest-neighbour downscale of labels."""
    return np.minimum(((np.arange(panel) + 0.5) * (size / panel)).astype(np.intp), size - 1)


def _predicted_instance_map(sources: OverlaySources, size: tuple[int, int]) -> np.ndarray:
    """1..n where the n predicted instances are (the most confident drawn on top), 0 elsewhere."""
    instance_map = np.zeros(size, np.int32)
    if sources.instances_txt is None or sources.instance_root is None:
        return instance_map
    lines = parse_instance_txt(sources.instances_txt, sources.instance_root.parent)
    ranked = sorted(lines, key=lambda line: line.confidence)
    for number, line in enumerate(ranked, start=1):
        if isinstance(line.mask, MaskFile):
            mask = read_single_channel(line.mask.path, (size[1], size[0])) != 0
            instance_map[mask] = number
    return instance_map


def _coloured(labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Cityscapes colours of ``labels``, with the borders of the nonzero regions of ``instances`` in white."""
    picture = PALETTE[np.clip(labels, 0, NUM_LABEL_IDS - 1)]
    picture[outline(instances)] = _OUTLINE
    return picture


def outline(instances: np.ndarray) -> np.ndarray:
    """Pixels on the border of an instance: a neighbour (right or below, either way) holds another value."""
    border = np.zeros(instances.shape, bool)
    down = instances[1:] != instances[:-1]
    right = instances[:, 1:] != instances[:, :-1]
    border[1:] |= down & (instances[1:] != 0)
    border[:-1] |= down & (instances[:-1] != 0)
    border[:, 1:] |= right & (instances[:, 1:] != 0)
    border[:, :-1] |= right & (instances[:, :-1] != 0)
    return border


def _accuracy(prediction: np.ndarray, labels: np.ndarray) -> float | None:
    scored = _SCORED[labels]
    total = int(np.count_nonzero(scored))
    if total == 0:
        return None
    return float(np.count_nonzero((prediction == labels) & scored)) / total


def _figure_png(frame: FrameId, panels: Panels) -> bytes:
    height, width = panels.image.shape[:2]
    pictures = [(panels.image, f"Input: {frame.stem}"), (panels.prediction, _prediction_title(panels))]
    if panels.ground_truth is not None:
        pictures.append((panels.ground_truth, f"Ground truth, {panels.true_instances} instances outlined"))
    panel_w, panel_h = width / DPI, height / DPI
    fig_h = len(pictures) * (panel_h + _TITLE_INCHES)
    rows = max(1, int(fig_h / _LEGEND_ROW_INCHES))
    columns = max(1, math.ceil(len(panels.labels_shown) / rows))
    fig_w = panel_w + columns * _LEGEND_INCHES
    fig = Figure(figsize=(fig_w, fig_h), dpi=DPI)
    FigureCanvasAgg(fig)
    for index, (picture, title) in enumerate(pictures):
        bottom = fig_h - (index + 1) * (panel_h + _TITLE_INCHES)
        axes = fig.add_axes((0, bottom / fig_h, panel_w / fig_w, panel_h / fig_h))
        axes.imshow(picture, interpolation="nearest", aspect="auto")
        axes.set_axis_off()
        axes.set_title(title, fontsize=9, pad=3, loc="left")
    handles = [Patch(color=PALETTE[label] / 255.0, label=name_of(label)) for label in panels.labels_shown]
    if handles:
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(panel_w / fig_w, 1.0),
            ncols=columns,
            fontsize=7,
            frameon=False,
            borderaxespad=0.3,
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


def _prediction_title(panels: Panels) -> str:
    title = f"Prediction, {panels.predicted_instances} instances outlined"
    if panels.accuracy is not None:
        title += f", {100 * panels.accuracy:.1f}% of scored pixels right"
    return title
