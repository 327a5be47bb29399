"""The ingestion run: a participant's metadata and Keras model, over the test images, to result files."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from ..core.errors import ReferenceDataError, SubmissionError
from ..core.naming import IMAGE_SUFFIX, index_by_frame
from .inference import Progress, RunSummary, TestImage, run_inference
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


def model_input_size(settings: InferenceSettings, model, metadata: Path | str = "metadata") -> tuple[int, int] | None:
    """The metadata's input_size, else the model's fixed input shape, else None (each image's own size).

    An input_size the model's fixed input cannot take is refused here, before anything runs: predicting
    would fail on the first batch with TensorFlow's long shape message."""
    shape = tuple(model.inputs[0].shape)
    fixed = (shape[1], shape[2]) if len(shape) == 4 else (None, None)
    if settings.input_size is None:
        return fixed if all(isinstance(side, int) for side in fixed) else None
    if any(isinstance(side, int) and side != wanted for side, wanted in zip(fixed, settings.input_size, strict=True)):
        height, width = settings.input_size
        raise SubmissionError(
            f"'inference.input_size' is [{height}, {width}] but the model's input is fixed at "
            f"{_side(fixed[0])}x{_side(fixed[1])} (height x width; its input shape is "
            f"({', '.join(_side(d) for d in shape)}))",
            metadata,
            f"Remove input_size from the metadata (the model's own size is then used), or export the model for "
            f"[{height}, {width}].",
        )
    return settings.input_size


def _side(dimension: object) -> str:
    return "None" if dimension is None else str(dimension)


# The phase's execution_time_limit is per step on both platforms, and its clock starts before this process does:
# - CodaLab v1.5 (competitions-v1-compute-worker worker.py `run`): `startTime = time.time()` once the image is
#   pulled and the bundles are fetched, then `docker run` of the ingestion, then
#   `signal.alarm(ceil(execution_time_limit - (time.time() - startTime)))` around a `time.sleep(1)` poll of its exit:
#   the container's start, the whole run and its removal (`--rm`) count, and the exit is seen up to 1 s late.
#   (`--stop-timeout` only applies to `docker stop`; the worker uses `docker kill`.)
# - Codabench (compute_worker.py `Run.start`): `signal.alarm(execution_time_limit)` around the gathered
#   `_run_program_directory` tasks (image pulled and bundles fetched in `prepare`): creating and starting the
#   container, the run, and after the exit the container's removal and the log upload before `signal.alarm(0)`.
# Scoring is a later step with its own clock: nothing is kept for it.
#
# The stop's own tail, measured from the budget check raising to this process's exit as its parent sees it, every
# result file written and closed (writers drained, failure reason written): 0.12-0.54 s, median 0.27 s, over 32 runs
# of the entry point with the reference model (benchmarks/reference_model.py, batch 2) and the baseline (batch 4) on
# 2048x1024 images, a shared 2-core machine at load 4-6; 0.05-0.17 s after a complete run (20 runs). About 4x:
STOP_TO_EXIT_SECONDS = 2.0
# Outside this process, not measurable here (no Docker daemon): the container's start before it (about a second
# for a docker run, an estimate), v1.5's 1 s poll, the container's removal and Codabench's log upload.
PLATFORM_SECONDS = 4.0
EXIT_MARGIN_SECONDS = STOP_TO_EXIT_SECONDS + PLATFORM_SECONDS


def start_watchdog(deadline: float, output: Path, stream) -> threading.Timer:
    """Stop this process at ``deadline`` (a ``time.perf_counter()`` value), whatever runs then: the budget is
    checked between batches, and a model's single batch can run for longer than the whole limit (one conv
    called 850 times, 0.8 MB: still in its first batch after 100 s). The reason goes where the budget's stop
    puts it, then the process exits 2, before the platform kills it without a word."""
    message = (
        "the model was still predicting when the time limit was about to end (one batch alone takes longer "
        "than the time left); make the model faster or use a smaller input_size or batch_size"
    )

    def stop() -> None:
        from ..core.ingestion_status import write_failure_reason

        with contextlib.suppress(OSError):
            write_failure_reason(output, f"submission: {message}")
        print(f"ingestion.py: error: submission: {message}", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            stream.flush()
        os._exit(2)  # TensorFlow's kernels cannot be interrupted; only leaving the process stops them

    timer = threading.Timer(max(deadline - time.perf_counter(), 0.0), stop)
    timer.daemon = True
    timer.start()
    return timer


def process_age_seconds() -> float | None:
    """Seconds since the OS started this process (Linux), so Python's start-up and imports count; else None."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime: clock ticks after boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def process_start_counter() -> float:
    """``time.perf_counter()``'s value when the OS started this process: where the platform's clock is, at the
    earliest, for a program it started (the entry point's); else now."""
    return time.perf_counter() - (process_age_seconds() or 0.0)


def time_budget(settings: InferenceSettings, execution_time_limit: float, spent: float) -> float:
    """Seconds inference may take: what the limit leaves after ``spent`` and the stop's margin, or the
    metadata's budget if that is smaller."""
    platform_budget = max(execution_time_limit - spent - EXIT_MARGIN_SECONDS, 0.0)
    if settings.time_budget_seconds is None:
        return platform_budget
    return min(settings.time_budget_seconds, platform_budget)


def run_ingestion(
    input_data: Path,
    output: Path,
    submission: Path,
    stream=None,
    execution_time_limit: float | None = None,
    clock_started: float | None = None,
) -> RunSummary:
    """The whole run; inference stops early if it would not fit in the execution time limit (challenge.yaml's).

    ``clock_started``: ``time.perf_counter()`` when the limit's clock started (the entry point passes its
    process's start, ``process_start_counter``); by default when this function is called (a library call in a
    process that may have lived long before it)."""
    from ..core.challenge import load_challenge
    from .model_files import find_model_file
    from .model_loading import check_activation_sizes, check_io, load_model_safely

    own_process = clock_started is not None  # the platform's program: this process ends with the run
    clock_started = time.perf_counter() if clock_started is None else clock_started
    stream = stream or sys.stdout
    if output.exists() and not output.is_dir():
        raise ReferenceDataError("is a file, not a folder", output, "Give the folder that receives the results.")
    if execution_time_limit is None:
        execution_time_limit = load_challenge().execution_time_limit
    model_path = find_model_file(submission)
    metadata = find_metadata(submission, model_path)  # also beside the model, as the checker looks
    settings = read_settings(metadata, submission)
    images = discover_test_images(input_data)
    print(f"Loading {model_path.name} ...", file=stream, flush=True)
    model = load_model_safely(model_path)
    check_io(model)
    input_size = model_input_size(settings, model, metadata)
    check_activation_sizes(model, input_size, settings.batch_size)  # shapes only: nothing runs yet
    shown_size = f"{input_size[0]}x{input_size[1]}" if input_size else "each image's own size"
    print(
        f"Running {model_path.name} on {len(images)} images at {shown_size}, batch {settings.batch_size}, "
        f"output {settings.output}",
        file=stream,
        flush=True,
    )
    output.mkdir(parents=True, exist_ok=True)
    budget = time_budget(settings, execution_time_limit, time.perf_counter() - clock_started)
    if own_process:  # a hard stop for a batch that outruns the budget: its stop's tail after the budget's end
        start_watchdog(clock_started + execution_time_limit - PLATFORM_SECONDS, output, stream)
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
