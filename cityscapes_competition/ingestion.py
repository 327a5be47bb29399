"""The ingestion run: a participant's metadata and Keras model, over the test images, to result files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .errors import ReferenceDataError, SubmissionError
from .groundtruth import index_by_frame
from .inference import Progress, RunSummary, TestImage, run_inference
from .naming import IMAGE_SUFFIX
from .submission_metadata import InferenceSettings, find_metadata, read_settings

_DATA_FIX = "The input data must hold leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png images."


def discover_test_images(input_data: Path) -> list[TestImage]:
    """Every ``*_leftImg8bit.png`` under ``input_data``, in frame order."""
    if not input_data.is_dir():
        raise ReferenceDataError("the input data folder does not exist", input_data, _DATA_FIX)
    images = index_by_frame(input_data, IMAGE_SUFFIX, _DATA_FIX)
    if not images:
        raise ReferenceDataError(f"holds no test image (*{IMAGE_SUFFIX})", input_data, _DATA_FIX)
    return [TestImage(frame, images[frame], frame.city) for frame in sorted(images)]


def model_input_size(settings: InferenceSettings, model) -> tuple[int, int] | None:
    """The metadata's input_size, else the model's fixed input shape, else None (each image's own size)."""
    if settings.input_size is not None:
        return settings.input_size
    shape = tuple(model.inputs[0].shape)
    if len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return shape[1], shape[2]
    return None


# Of the phase's execution time limit, what the scoring run and the start-up need after and before inference.
SCORING_ALLOWANCE_SECONDS = 120.0


def time_budget(settings: InferenceSettings, execution_time_limit: float, spent: float) -> float:
    """Seconds inference may take: the metadata's budget, capped so that scoring still fits in the limit."""
    platform_budget = max(execution_time_limit - SCORING_ALLOWANCE_SECONDS - spent, 0.0)
    if settings.time_budget_seconds is None:
        return platform_budget
    return min(settings.time_budget_seconds, platform_budget)


def run_ingestion(
    input_data: Path, output: Path, submission: Path, stream=None, execution_time_limit: float | None = None
) -> RunSummary:
    """The whole run; inference stops early if it would not fit in the execution time limit (challenge.yaml's)."""
    from .challenge import load_challenge
    from .model_files import find_model_file
    from .model_loading import check_activation_sizes, check_io, load_model_safely

    started = time.perf_counter()
    stream = stream or sys.stdout
    if output.exists() and not output.is_dir():
        raise ReferenceDataError("is a file, not a folder", output, "Give the folder that receives the results.")
    if execution_time_limit is None:
        execution_time_limit = load_challenge().execution_time_limit
    settings = read_settings(find_metadata(submission), submission)
    model_path = find_model_file(submission)
    images = discover_test_images(input_data)
    print(f"Loading {model_path.name} ...", file=stream, flush=True)
    model = load_model_safely(model_path)
    check_io(model)
    input_size = model_input_size(settings, model)
    check_activation_sizes(model, input_size, settings.batch_size)  # shapes only: nothing runs yet
    shown_size = f"{input_size[0]}x{input_size[1]}" if input_size else "each image's own size"
    print(
        f"Running {model_path.name} on {len(images)} images at {shown_size}, batch {settings.batch_size}, "
        f"output {settings.output}",
        file=stream,
        flush=True,
    )
    output.mkdir(parents=True, exist_ok=True)
    budget = time_budget(settings, execution_time_limit, time.perf_counter() - started)
    summary = run_inference(
        model, images, output, settings, model_path.name, input_size, Progress(len(images), stream=stream), budget
    )
    if (output / "metadata").exists():  # Codabench fails a submission whose ingestion output holds one
        raise SubmissionError("must not be written by ingestion", output / "metadata")
    print(
        f"Done: {summary.images} images, {summary.instances} instances, {summary.seconds:.1f} s "
        f"({summary.model_seconds:.1f} s in the model, {summary.seconds / summary.images:.3f} s per image).",
        file=stream,
        flush=True,
    )
    return summary
