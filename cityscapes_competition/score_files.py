"""The scoring program's outputs: scores.txt, scores.json and detailed_results.html."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from .atomic import write_text_atomic
from .errors import ReferenceDataError
from .labels import LABEL_NAMES
from .report_html import render_detailed_results, render_failure
from .scores import LEADERBOARD_KEYS, Scores, finite_or_none

SCORES_TXT = "scores.txt"
SCORES_JSON = "scores.json"
DETAILED_RESULTS = "detailed_results.html"


def leaderboard_lines(scores: Scores) -> str:
    """``key: value`` lines; CodaLab splits on ':' and calls float(), Codabench reads YAML.

    An undefined score (no ground truth at all) is written as 0: 'nan' would be a string in YAML.
    """
    values = scores.leaderboard()
    lines = []
    for key in LEADERBOARD_KEYS:
        if key in values:
            value = values[key]
            lines.append(f"{key}: {0.0 if math.isnan(value) else float(value)!r}")
    return "\n".join(lines) + "\n"


def scores_document(scores: Scores) -> dict:
    document: dict = {key: finite_or_none(value) for key, value in scores.leaderboard().items()}
    document["classes"] = _class_details(scores)
    document["categories"] = _category_details(scores)
    if scores.pixel is not None:
        document["confusion_matrix"] = {
            "label_names": list(LABEL_NAMES),
            "rows_ground_truth_columns_prediction": scores.pixel.confusion_matrix.tolist(),
        }
    if scores.instance is not None:
        document["ap_matrix"] = [
            [[finite_or_none(v) for v in row] for row in setting] for setting in scores.instance.ap_matrix
        ]
    document["images"] = scores.image_count
    document["warnings"] = list(scores.warnings)
    return document


def _class_details(scores: Scores) -> dict[str, dict[str, float | None]]:
    classes: dict[str, dict[str, float | None]] = {}
    if scores.pixel is not None:
        for name, value in scores.pixel.class_iou.items():
            classes.setdefault(name, {})["iou"] = finite_or_none(value)
        for name, value in scores.pixel.class_iiou.items():
            classes.setdefault(name, {})["iiou"] = finite_or_none(value)
    if scores.instance is not None:
        for name, values in scores.instance.class_scores.items():
            classes.setdefault(name, {}).update({key: finite_or_none(v) for key, v in values.items()})
    return classes


def _category_details(scores: Scores) -> dict[str, dict[str, float | None]]:
    categories: dict[str, dict[str, float | None]] = {}
    if scores.pixel is not None:
        for name, value in scores.pixel.category_iou.items():
            categories.setdefault(name, {})["iou"] = finite_or_none(value)
        for name, value in scores.pixel.category_iiou.items():
            categories.setdefault(name, {})["iiou"] = finite_or_none(value)
    return categories


def write_score_files(output_dir: Path, scores: Scores) -> None:
    """scores.txt last, so that its presence means everything was written."""
    write_text_atomic(output_dir / DETAILED_RESULTS, render_detailed_results(scores))
    write_text_atomic(output_dir / SCORES_JSON, json.dumps(scores_document(scores), indent=1, allow_nan=False))
    write_text_atomic(output_dir / SCORES_TXT, leaderboard_lines(scores))


def prepare_output(output_dir: Path) -> None:
    """The output folder, created if needed, without the scores of an earlier run (a failed re-run into a
    reused folder must not leave them looking current)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ReferenceDataError("is a file, not a folder", output_dir, "Give the folder that receives the scores.")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (SCORES_TXT, SCORES_JSON):
            (output_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        raise ReferenceDataError(
            f"cannot be written ({exc.strerror})", output_dir, "Give a folder the scorer may write in."
        ) from None


def write_failure_page(output_dir: Path, message: str) -> None:
    """detailed_results.html saying why nothing was scored (the platforms show the page); best effort."""
    with contextlib.suppress(OSError):  # the message still reaches standard error
        write_text_atomic(output_dir / DETAILED_RESULTS, render_failure(message))
