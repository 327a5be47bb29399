"""The scoring program's outputs: scores.txt, scores.json and detailed_results.html."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from ..core.atomic import write_text_atomic
from ..core.errors import ReferenceDataError
from ..core.labels import LABEL_NAMES
from .report_html import render_detailed_results, render_failure, render_in_progress
from .scores import LEADERBOARD_KEYS, Scores, finite_or_none

SCORES_TXT = "scores.txt"
SCORES_JSON = "scores.json"
DETAILED_RESULTS = "detailed_results.html"


def leaderboard_lines(scores: Scores) -> str:
    """``key: value`` lines; CodaLab splits on ':' and calls float(), Codabench reads YAML.

    An undefined score (no ground truth at all) is written as 0 (``Scores.leaderboard_numbers``).
    """
    values = scores.leaderboard_numbers()
    return "".join(f"{key}: {values[key]!r}\n" for key in LEADERBOARD_KEYS if key in values)


def scores_document(scores: Scores) -> dict:
    """scores.json: the leaderboard columns as numbers (Codabench reads this file first and stores each
    column's value in a non-null field), then the details, where an undefined score is null."""
    document: dict = dict(scores.leaderboard_numbers())
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
    document["warnings"] = scores.reported_warnings()
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


# CodaLab v1.5 uploads detailed_results.html from a watcher (competitions-v1-compute-worker
# detailed_result_put.sh: `while sleep 1; do echo FILE | entr -d python detailed_result_put.py URL FILE; done`),
# which worker.py creates empty before starting the scorer and kills (SIGKILL to the loop's bash) once its
# poll, every second, finds the scorer gone; at the end it uploads the file itself only if it is still empty.
# An atomic write adds a file to the folder, so entr -d exits, and the loop runs it again (uploading at
# start) only after `sleep 1`: the scorer stays that second, entr's start and a margin for a loaded machine.
WATCHER_SECONDS = 3.0


def watched_by_platform(output_dir: Path) -> bool:
    """Whether a watcher waits for detailed_results.html: CodaLab v1.5 creates it empty before the scorer starts."""
    try:
        return (output_dir / DETAILED_RESULTS).stat().st_size == 0
    except OSError:
        return False


def await_watcher() -> None:
    """Stay long enough for CodaLab v1.5's watcher to upload the last page written (see WATCHER_SECONDS)."""
    time.sleep(WATCHER_SECONDS)


def prepare_output(output_dir: Path) -> None:
    """The output folder, created if needed, without the scores of an earlier run (a failed re-run into a
    reused folder must not leave them looking current), and a page that says scoring is under way."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ReferenceDataError("is a file, not a folder", output_dir, "Give the folder that receives the scores.")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (SCORES_TXT, SCORES_JSON):
            (output_dir / name).unlink(missing_ok=True)
        write_text_atomic(output_dir / DETAILED_RESULTS, render_in_progress())
    except OSError as exc:
        raise ReferenceDataError(
            f"cannot be written ({exc.strerror})", output_dir, "Give a folder the scorer may write in."
        ) from None


def write_failure_page(output_dir: Path, message: str) -> None:
    """detailed_results.html saying why nothing was scored (the platforms show the page); best effort."""
    with contextlib.suppress(OSError):  # the message still reaches standard error
        write_text_atomic(output_dir / DETAILED_RESULTS, render_failure(message))
