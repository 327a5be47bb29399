"""The participant's detailed results: one self-contained HTML page (``detailed_results.html``).

CodaLab/Codabench show this page in an iframe, so it carries everything inline: CSS in a
``<style>`` element, and the charts drawn in HTML and CSS (report_charts.py); no pictures, scripts, fonts or
links. Every string that comes from data (warnings, class names, notes) is HTML-escaped.

Scores are fractions in [0, 1] (as the official scripts return them, and as the leaderboard, scores.txt and
scores.json hold them). The page shows them as percentages, and beside each leaderboard number its fraction,
so that both can be matched at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from cityscapes_competition.core.labels import (
    CATEGORIES,
    EVAL_CLASS_IDS,
    INSTANCE_CLASS_NAMES,
    LABEL_NAMES,
    color_of,
)
from cityscapes_competition.scoring.scores import InstanceScores, PixelScores, Scores

from .report_charts import (
    EVAL_CLASS_NAMES,
    FALLBACK_COLOR,
    NA_TOOLTIP,
    ap_overlap_table,
    class_color,
    confusion_table,
    instance_bars,
    is_missing,
    na_mark,
    ordered,
    pixel_bars,
    row_normalized_confusion,
    swatch,
    valid_confusion,
)

NOT_DEFINED_TOOLTIP = "not defined for this class"
NOT_SUBMITTED = "not submitted (scored 0)"
UNITS_NOTE = (
    "Scores on this page are percentages; the leaderboard, scores.txt and scores.json hold the same "
    "scores as fractions in [0, 1] (49.50 % there is 0.4950)."
)
NO_GROUND_TRUTH_MARK = "&Dagger;"


def format_percent(value: float | None, decimals: int = 2) -> str:
    """A fraction as a percentage without the sign; "n/a" for None and NaN."""
    if is_missing(value):
        return "n/a"
    return f"{100.0 * float(value):.{decimals}f}"


def format_fraction(value: float | None) -> str:
    """A score as the leaderboard shows it: a fraction with 4 decimals; "n/a" for None and NaN."""
    return "n/a" if is_missing(value) else f"{float(value):.4f}"


def _score_cell(value: float | None, decimals: int = 1, bar: bool = True) -> str:
    """A table cell with a percentage and a faint in-cell bar; "n/a" with a tooltip for NaN."""
    if is_missing(value):
        return f'<td class="num">{na_mark()}</td>'
    pct = min(max(100.0 * float(value), 0.0), 100.0)
    style = f' style="background:linear-gradient(90deg,#dbe7f5 {pct:.1f}%,transparent {pct:.1f}%)"' if bar else ""
    return f'<td class="num"{style}>{format_percent(value, decimals)}</td>'


def _leaderboard_cell(value: float | None) -> str:
    """A mean that is a leaderboard column: the percentage, and the fraction the leaderboard shows."""
    if is_missing(value):
        return f'<td class="num">{na_mark()}</td>'
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


def _card(label: str, value: float | None, absent_note: str | None = None) -> str:
    """One headline number; ``absent_note`` explains a None value (marked with a dagger)."""
    if value is None and absent_note is not None:
        body = f'<div class="value na" title="{escape(absent_note)}">n/a<sup>&dagger;</sup></div>'
    elif is_missing(value):
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
    unseen: dict[str, int],
) -> str:
    names = ordered(EVAL_CLASS_NAMES, pixel.class_iou)
    has_conf = matrix is not None
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
        cells = f"<td>{swatch(class_color(name))}{escape(name)}</td>"
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
    if false_positives is not None and not is_missing(value):
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
        return na_mark()
    row[i] = -1.0
    j = int(np.argmax(row))
    if row[j] <= 0:
        return '<span class="dim">&ndash;</span>'
    name = EVAL_CLASS_NAMES[j]
    return f"{swatch(class_color(name))}{escape(name)} <span class='dim'>({100 * row[j]:.1f}%)</span>"


def _category_table(pixel: PixelScores) -> str:
    known = [c.name for c in CATEGORIES if c.iou_label_ids]
    colors = {c.name: color_of(c.iou_label_ids[0]) for c in CATEGORIES if c.iou_label_ids}
    rows = []
    for name in ordered(known, pixel.category_iou):
        iiou = _score_cell(pixel.category_iiou[name]) if name in pixel.category_iiou else _not_defined_cell()
        mark = swatch(colors.get(name, FALLBACK_COLOR))
        rows.append(f"<tr><td>{mark}{escape(name)}</td>{_score_cell(pixel.category_iou.get(name))}{iiou}</tr>")
    mean = (
        f"<tr class='mean'><td>mean (leaderboard)</td>{_leaderboard_cell(pixel.iou_category)}"
        f"{_leaderboard_cell(pixel.iiou_category)}</tr>"
    )
    return _table("<th>category</th><th>IoU (%)</th><th>iIoU (%)</th>", [*rows, mean])


def pixel_section(pixel: PixelScores | None) -> str:
    title = "<h2>Pixel-level semantic labeling</h2>"
    if pixel is None:
        return f'<section id="pixel">{title}<p class="missing">Task {NOT_SUBMITTED}.</p></section>'
    matrix = ignored = prior = None
    unseen: dict[str, int] = {}
    if valid_confusion(pixel.confusion_matrix):
        matrix, ignored, prior = row_normalized_confusion(pixel.confusion_matrix)
        unseen = predicted_without_ground_truth(pixel.confusion_matrix)
    parts = [
        title,
        "<h3>Per class</h3>",  # the full width: its six columns do not fit half of a 1280 px window
        _pixel_class_table(pixel, matrix, ignored, prior, unseen),
        '<div class="two-col"><div><h3>Per category</h3>',
        _category_table(pixel),
        "</div><div><h3>IoU and iIoU per class</h3>",
        pixel_bars(pixel, unseen),
        "</div></div>",
    ]
    if matrix is not None:
        parts += [
            "<h3>Confusion matrix</h3>",
            '<p class="explain">Rows are ground truth, columns predictions; each row is divided by all '
            "ground-truth pixels of its class (as the official script prints it), so a row sums to less "
            "than 100% when pixels were predicted as an ignored label (see &ldquo;&rarr; ignored&rdquo; "
            "above). Cells are percentages, coloured on the scale below; values under 0.5% are left blank. "
            "Hover over a cell for its exact share.</p>",
            confusion_table(matrix),
        ]
    return f'<section id="pixel">{"".join(parts)}</section>'


def _instance_table(instance: InstanceScores) -> str:
    names = ordered(INSTANCE_CLASS_NAMES, instance.class_scores)
    distance = instance.ap100m is not None or any("ap100m" in instance.class_scores.get(n, {}) for n in names)
    keys = ["ap", "ap50"] + (["ap100m", "ap50m"] if distance else [])
    headers = {"ap": "AP", "ap50": "AP50%", "ap100m": "AP100m", "ap50m": "AP50m"}
    head = "<th>class</th>" + "".join(f"<th>{headers[k]} (%)</th>" for k in keys)
    rows = []
    for name in names:
        values = instance.class_scores.get(name, {})
        cells = "".join(_score_cell(values.get(k)) for k in keys)
        rows.append(f"<tr><td>{swatch(class_color(name))}{escape(name)}</td>{cells}</tr>")
    means = {"ap": instance.ap, "ap50": instance.ap50, "ap100m": instance.ap100m, "ap50m": instance.ap50m}
    mean_cells = "".join(_leaderboard_cell(means[k]) for k in keys)
    mean = f"<tr class='mean'><td>mean (leaderboard)</td>{mean_cells}</tr>"
    return _table(head, [*rows, mean])


def instance_section(instance: InstanceScores | None) -> str:
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
        instance_bars(instance),
        "</div></div>",
    ]
    overlap_table = ap_overlap_table(instance.ap_matrix)
    if overlap_table is not None:
        parts += [
            "<h3>AP by overlap threshold</h3>",
            '<p class="explain">AP is the mean over the ten thresholds 0.50, 0.55, &hellip;, 0.95; '
            "AP50% is the first column. The last row is the mean over the classes with ground truth. Cells "
            "are AP in %, coloured on the scale below.</p>",
            overlap_table,
        ]
    return f'<section id="instance">{"".join(parts)}</section>'


# The page's style sheet, inlined into every page (the platforms show it in an iframe: no links).
CSS = Path(__file__).with_name("report.css").read_text(encoding="utf-8")


def render_detailed_results(scores: Scores, title: str = "Cityscapes evaluation") -> str:
    """The whole page, as a string of self-contained HTML."""
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
            pixel_section(scores.pixel),
            instance_section(scores.instance),
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
