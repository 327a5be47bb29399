"""What the prediction step leaves for the scoring step: the worker's status and the ingestion's reason.

Codabench runs the scoring step even after the ingestion failed (``compute_worker.py``: ``start`` marks
a prediction run "Scoring" whatever the ingestion's exit code; ``push_output`` then writes the
worker's ``metadata`` into the prediction output, ``ingestionExitCode`` among its keys, and uploads it
as the scoring run's ``input/res``). The scorer would then report missing predictions. Instead it reads
that status file, which the participant cannot forge (``push_output`` refuses an output that already
holds ``metadata``, and this ingestion never writes one), and fails with the ingestion's own reason,
which the ingestion program writes beside its results when it fails.

CodaLab v1.5 (``worker.py``) stops at a failed ingestion and never scores; its status file there
always says 0.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import write_text_atomic
from .errors import SubmissionError, printable
from .safe_yaml import YamlError, load_yaml
from .untrusted_files import UntrustedFileError, read_untrusted, sent_folder

WORKER_STATUS = "metadata"  # written by both workers into the prediction output
FAILURE_REASON = "ingestion_failure.txt"  # written by the ingestion program when it fails
_MAX_STATUS_BYTES = 64 * 1024
_MAX_REASON_CHARS = 1500


def write_failure_reason(output: Path, message: str) -> None:
    """Leave the ingestion's one-line failure message in its output folder, for the scorer to quote."""
    write_text_atomic(output / FAILURE_REASON, printable(message)[:_MAX_REASON_CHARS] + "\n")


def refuse_failed_ingestion(results: Path) -> None:
    """SubmissionError naming the ingestion's reason when the worker's status says the ingestion failed."""
    code = ingestion_exit_code(results)
    if code in (None, 0):
        return
    reason = _failure_reason(results)
    raise SubmissionError(
        f"the ingestion program failed (exit code {code}), so there are no predictions to score: "
        + (reason or "see the ingestion program's error log"),
        results,
        "Fix what the ingestion program reported and submit again.",
    )


def ingestion_exit_code(results: Path) -> int | None:
    """``ingestionExitCode`` of the worker's status file in ``results``; None where there is none."""
    try:
        data = read_untrusted(results / WORKER_STATUS, _MAX_STATUS_BYTES, sent_folder(results))
        status = load_yaml(data.decode("utf-8"), scalars_as_text=True)
    except (UntrustedFileError, UnicodeDecodeError, YamlError):
        return None  # not the worker's file: locally, or a results submission without one
    code = status.get("ingestionExitCode") if isinstance(status, dict) else None
    if not isinstance(code, str) or not code.lstrip("-").isdigit() or len(code) > 10:
        return None  # "null" (no ingestion ran) or not written by a worker
    return int(code)


def _failure_reason(results: Path) -> str:
    try:
        data = read_untrusted(results / FAILURE_REASON, 4 * _MAX_REASON_CHARS, sent_folder(results))
    except UntrustedFileError:
        return ""
    return printable(data.decode("utf-8", errors="replace").strip())[:_MAX_REASON_CHARS]
