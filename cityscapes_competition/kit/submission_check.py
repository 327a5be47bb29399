"""The starting kit's checker: everything the platform will do with a submission, run locally on sample data.

``python starting_kit/check_submission.py SUBMISSION [--sample-data DIR] [--out DIR] [--phase N]``

SUBMISSION is a folder, or a zip (the checker's own ``submission.zip``, GitHub's "Download ZIP"), which is
checked as untrusted and unpacked into ``OUT/unpacked/`` for the check. OUT is ``SUBMISSION_check/`` beside
the submission unless ``--out`` says otherwise.

1. the ``metadata`` (strictly, the CodaLab URL trap included) and the one model file, loaded in the
   server's safe mode with its inputs and outputs checked;
2. the ingestion over the sample test images, into ``OUT/results/``;
3. the scores on the sample reference data, as the leaderboard shows them, into ``OUT/scores/``;
4. the time the ingestion and the scoring of 500 test images would each take, against the execution
   time limit (which applies to each step);
5. overlay pictures (input, prediction, ground truth) in ``OUT/overlays/``;
6. ``OUT/submission.zip``, the file to upload: ``metadata`` and the model at its root, nothing else,
   written only if every check passed.

The sample data is the starting kit's ``sample_data/``; in the repository, the same frames: the
competition data's sample (``data/competition/sample_data``), else those frames generated once.

Every problem is one line that says what to fix. The exit code is 0 only if every check passed
(warnings allowed), 1 if a check failed, 2 for a mistake in the command itself, 3 for an internal error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..core.atomic import atomic_stream
from ..core.challenge import ChallengeSettings, Phase, load_challenge
from ..core.errors import SubmissionError, UserFacingError, guarded

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.
from ..ingestion.model_files import (
    MODEL_SUFFIXES,
)
from ..ingestion.submission_metadata import METADATA_NAME, InferenceSettings, find_metadata, read_settings

if TYPE_CHECKING:
    from ..ingestion.inference import TestImage
from .check_log import CheckLog, attempt
from .folders import default_output, is_zip_path, prepare_output, unpack_submission
from .layout import (
    MAX_OVERLAYS,
    OUTPUT_SUFFIX,
    OVERLAYS_DIR,
    PROGRAM,
    RESULTS_DIR,
    SCORES_DIR,
    TEST_SET_IMAGES,
    UNPACKED_DIR,
    ZIP_NAME,
    CheckUsageError,
)
from .sample_data import SampleData, default_sample_data, sample_layout
from .time_projection import (
    TIMING_REPEATS,
    IngestionRun,
    TimeProjection,
    budget_warning,
    full_run_warmup,
    measured_on,
    steady_pace,
    time_findings,
)


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    model: Any
    seconds: float


def check_metadata(submission: Path, model: Path | None = None) -> tuple[Path, InferenceSettings]:
    """The metadata the platform's ingestion reads: at the root, in the one top-level folder, or beside
    ``model``."""
    path = find_metadata(submission, model)
    return path, read_settings(path, submission)


def describe_settings(settings: InferenceSettings) -> str:
    size = f"{settings.input_size[0]}x{settings.input_size[1]}" if settings.input_size else "model's own"
    return (
        f"input_size {size}, output {settings.output}, scores {settings.scores}, batch {settings.batch_size}, "
        f"instances {settings.instances.mode}"
    )


def load_model(path: Path) -> LoadedModel:
    """The model loaded as the server loads it: config checked, Keras safe mode, inputs and outputs checked."""
    from ..ingestion.model_loading import check_io, load_model_safely

    start = time.perf_counter()
    model = load_model_safely(path)
    check_io(model, path)
    return LoadedModel(path, model, time.perf_counter() - start)


def run_sample_ingestion(
    loaded: LoadedModel, settings: InferenceSettings, sample: SampleData, results: Path, stream: TextIO
) -> IngestionRun:
    """The server's ingestion over the sample images, then a longer timing run; both once every batch shape
    they make is warmed up (traced)."""
    from ..ingestion.inference import Progress, run_inference
    from ..ingestion.model_loading import check_activation_sizes
    from ..ingestion.run import discover_test_images, model_input_size

    images = discover_test_images(sample.input_data)
    input_size = model_input_size(settings, loaded.model)
    check_activation_sizes(loaded.model, input_size, settings.batch_size, loaded.path)  # as the server does
    timing = repeated(images, TIMING_REPEATS)
    traces = warm_up(loaded, [images, timing], input_size, settings.batch_size)
    progress = Progress(len(images), stream=stream)
    summary = run_inference(loaded.model, images, results, settings, loaded.path.name, input_size, progress)
    if (results / METADATA_NAME).exists():  # as the server: Codabench fails a run whose ingestion writes one
        raise SubmissionError("must not be written by ingestion", results / METADATA_NAME)
    print(f"Timing the steady pace: the sample {TIMING_REPEATS} times over ...", file=stream, flush=True)
    with tempfile.TemporaryDirectory(prefix="check_timing_") as thrown_away:
        longer = run_inference(loaded.model, timing, Path(thrown_away), settings, loaded.path.name, input_size)
    with _open_image(images[0].path) as picture:
        size = picture.size
    return IngestionRun(
        summary.images,
        summary.instances,
        summary.seconds,
        sum(traces.values()),
        size,
        steady_pace(summary.seconds, summary.images, longer.seconds, longer.images),
        full_run_warmup(traces, settings.batch_size),
    )


def repeated(images: list[TestImage], times: int) -> list[TestImage]:
    """``images`` ``times`` over, each copy under a name of its own (results never overwrite each other)."""
    from ..core.naming import FrameId
    from ..ingestion.inference import TestImage

    return [
        TestImage(FrameId(image.city, f"{index:06d}", "000019"), image.path, image.city)
        for index, image in enumerate(images * times)
    ]


def warm_up(
    loaded: LoadedModel, runs: list[list[TestImage]], input_size: tuple[int, int] | None, batch: int
) -> dict[tuple[int, int, int], float]:
    """One prediction of every batch shape the timed runs will make, so that none is traced inside them (the
    last, partial batch traces the model again, which would count a one-off second as per-image time); the
    seconds each took. A model that cannot run on them is one clear problem."""
    traces: dict[tuple[int, int, int], float] = {}
    for images in runs:
        sizes = [input_size] * len(images) if input_size else [_height_width(image.path) for image in images]
        for shape in batch_shapes(sizes, batch):
            if shape not in traces:
                count, height, width = shape
                traces[shape] = _predict_once(loaded, images[sizes.index((height, width))], input_size, count)
    return traces


def batch_shapes(sizes: list[tuple[int, int]], batch_size: int) -> list[tuple[int, int, int]]:
    """(images, height, width) of each distinct batch ``inference._batches`` makes of images of these
    (height, width): runs of one size, cut every ``batch_size`` images; in order of first appearance."""
    shapes: dict[tuple[int, int, int], None] = {}
    current, count = None, 0
    for size in [*sizes, None]:
        if current is not None and (size != current or count == batch_size):
            shapes[(count, *current)] = None
            count = 0
        current, count = size, count + 1
    return list(shapes)


def _predict_once(loaded: LoadedModel, image: TestImage, input_size: tuple[int, int] | None, batch: int) -> float:
    import numpy as np

    from ..ingestion.inference import load_test_image
    from ..ingestion.model_loading import short_reason

    pixels, _ = load_test_image(image, input_size)
    start = time.perf_counter()
    try:
        loaded.model.predict_on_batch(np.stack([pixels] * batch))
    except Exception as exc:  # the participant's model failed on a valid batch
        height, width = pixels.shape[:2]
        raise SubmissionError(
            f"fails on a batch of {batch} images of {height}x{width} (height x width): {short_reason(exc)}",
            loaded.path,
            "Make inference.input_size match the model's input shape (or remove it), and check the model runs "
            "on a batch of RGB images.",
        ) from None
    return time.perf_counter() - start


def _height_width(path: Path) -> tuple[int, int]:
    with _open_image(path) as picture:
        return picture.size[1], picture.size[0]


def _open_image(path: Path):
    from PIL import Image

    return Image.open(path)


def leaderboard_table(scores, challenge: ChallengeSettings) -> list[str]:
    """The leaderboard's columns, label and value, e.g. ``IoU class  0.4981``."""
    values = scores.leaderboard()
    width = max(len(column.label) for column in challenge.columns)
    lines = []
    for column in challenge.columns:
        value = values.get(column.key)
        if value is None:
            shown = "not computed (needs disparity and camera data)"
        elif math.isnan(value):
            shown = f"{0.0:.4f} (undefined on these few images; scores.txt says 0)"
        else:
            shown = f"{value:.4f}"
        lines.append(f"{column.label:<{width}}  {shown}")
    return lines


# --- the zip --------------------------------------------------------------------------------------


def write_submission_zip(metadata: Path, model: Path, target: Path) -> list[str]:
    """``metadata`` and the model at the zip's root, nothing else; written atomically. Returns the names."""
    names = [METADATA_NAME, model.name]
    with atomic_stream(target) as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(metadata, METADATA_NAME, compresslevel=6)
        archive.write(model, model.name, compresslevel=1)  # weights barely compress; keep it quick
    return names


def left_out(metadata: Path, model: Path, limit: int = 5) -> list[str]:
    """What sits beside the metadata and is not in the zip (names only, at most ``limit``, then '...')."""
    others = sorted(
        entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else "")
        for entry in metadata.parent.iterdir()
        if entry.absolute() != metadata.absolute() and not model.absolute().is_relative_to(entry.absolute())
    )  # names only, links not followed: a link loop or a link out of the folder is just a name here
    return others[:limit] + (["..."] if len(others) > limit else [])


# --- the whole check ------------------------------------------------------------------------------


@dataclass
class CheckResult:
    log: CheckLog
    zip_path: Path | None
    projection: TimeProjection | None = None

    @property
    def passed(self) -> bool:
        return not self.log.problems


def pick_phase(challenge: ChallengeSettings, number: int | None, now: dt.datetime | None = None) -> Phase:
    """Phase ``number``; by default the phase open now, else the next one, else the last."""
    if number is not None:
        known = [phase.number for phase in challenge.phases]
        if number not in known:
            raise CheckUsageError(
                f"--phase {number}: there is no such phase", None, f"Give one of {', '.join(map(str, known))}."
            )
        return challenge.phase(number)
    now = now or dt.datetime.now(challenge.time_zone)
    current = challenge.phase_at(now)
    if current is not None:
        return current
    upcoming = [phase for phase in challenge.phases if phase.start > now]
    return upcoming[0] if upcoming else challenge.phases[-1]


@dataclass(frozen=True)
class Schedule:
    """Where ``now`` falls in the competition's schedule, for the heading and the summary."""

    open: bool  # the phase accepts submissions now
    text: str  # e.g. "open until 2019-03-14 23:59:00 (Europe/Moscow)"


def schedule(challenge: ChallengeSettings, phase: Phase, now: dt.datetime) -> Schedule:
    """The phase's state at ``now``: open, not open yet, closed, or the whole competition over."""
    zone = challenge.time_zone.key
    last = challenge.phases[-1]
    if now >= last.deadline:
        return Schedule(False, f"the competition is over; its last deadline was {_when(last.deadline)} ({zone})")
    if now < phase.start:
        return Schedule(False, f"{phase.name} opens on {_when(phase.start)} ({zone})")
    if not phase.accepts(now):
        current = challenge.phase_at(now)
        if current is None:
            return Schedule(False, f"{phase.name} closed on {_when(phase.deadline)} ({zone})")
        return Schedule(True, f"{phase.name} closed on {_when(phase.deadline)} ({zone}); {current.name} is open")
    return Schedule(True, f"open until {_when(phase.deadline)} ({zone})")


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def check_submission(
    submission: Path,
    sample_data: Path | None = None,
    out: Path | None = None,
    phase_number: int | None = None,
    stream: TextIO | None = None,
    now: dt.datetime | None = None,
) -> CheckResult:
    """Run every check on a submission folder or zip; the command's own mistakes (a missing submission, a bad
    output folder, an unknown phase) raise a UserFacingError. ``out``: by default ``SUBMISSION_check``."""
    log = CheckLog(stream or sys.stdout)
    _check_given(submission)
    out = out if out is not None else default_output(submission)
    challenge = load_challenge()
    phase = pick_phase(challenge, phase_number, now)
    when = schedule(challenge, phase, now or dt.datetime.now(challenge.time_zone))
    prepare_output(out, submission)
    log.heading(f"Checking {submission} for {challenge.title}, {phase.name}: {when.text}")
    try:
        folder = _unpacked(log, submission, out / UNPACKED_DIR) if is_zip_path(submission) else submission
        if folder is None:
            for step in ("metadata", "model", "ingestion", "scores", "time", "overlays"):
                log.skip(step, "needs the zip above")
            result = CheckResult(log, _zip_step(log, None, None, out / ZIP_NAME))
        else:
            result = _check_folder(log, folder, challenge, phase, sample_data, out)
    finally:
        shutil.rmtree(out / UNPACKED_DIR, ignore_errors=True)  # a copy of the zip's files: not kept
    _summary(log, result.zip_path, when)
    return result


def _check_given(submission: Path) -> None:
    if is_zip_path(submission) and submission.is_file():
        return
    if submission.is_dir():
        return
    fix = "Give the folder holding 'metadata' and your model, or a zip of it (such as GitHub's Download ZIP)."
    if not os.path.lexists(submission):
        raise SubmissionError("the submission does not exist", submission, fix)
    if submission.name.lower().endswith(MODEL_SUFFIXES) or submission.name == METADATA_NAME:
        fix = f"Give the folder that holds it with the other file: check_submission.py {submission.parent}"
    raise SubmissionError("the submission is neither a folder nor a .zip file", submission, fix)


def _unpacked(log: CheckLog, archive: Path, folder: Path) -> Path | None:
    unpacked = attempt(log, "zip", lambda: unpack_submission(archive, folder))
    if unpacked is None:
        return None
    log.ok("zip", f"{unpacked.files} files unpacked into {folder} for the check (removed afterwards)")
    return folder


def _check_folder(
    log: CheckLog,
    submission: Path,
    challenge: ChallengeSettings,
    phase: Phase,
    sample_data: Path | None,
    out: Path,
) -> CheckResult:
    """Every check of an unpacked submission, then the zip to upload."""
    model_path, model_problem = _found_model(submission)
    metadata = attempt(log, "metadata", lambda: check_metadata(submission, model_path))
    if metadata is not None:
        log.ok("metadata", f"{metadata[0]} ({describe_settings(metadata[1])})")
        warning = budget_warning(metadata[1], challenge.execution_time_limit, phase.name, challenge.codabench_queue)
        if warning:
            log.warn("metadata", warning)
        sub_folder = _below_the_top_folder(submission, metadata[0])
        if sub_folder is not None:
            log.note(
                f"the metadata is in a sub-folder ({sub_folder}/): the ingestion "
                f"finds it beside the model, but CodaLab v1.5 looks only at the root and in a top-level folder, "
                f"and would take a zip laid out so as a results submission. Upload the {ZIP_NAME} this check writes: "
                "metadata and the model at its root"
            )
    loaded = None
    if model_problem is not None:
        log.fail("model file", model_problem)
    elif model_path is not None:
        log.ok("model file", f"{_near(model_path)} ({model_path.stat().st_size / 1024**2:.1f} MB)")
        loaded = attempt(log, "model", lambda: load_model(model_path))
    if loaded is not None:
        log.ok("model", f"loads in the server's safe mode in {loaded.seconds:.1f} s, {_io_text(loaded)}")
    fits = metadata is not None and loaded is not None and _input_size_fits(log, metadata, loaded)
    sample = attempt(log, "sample data", lambda: sample_layout(sample_data or default_sample_data(log)))
    if sample is not None:
        log.ok("sample data", f"test images in {sample.input_data}, ground truth in {sample.reference}")

    projection = None
    if metadata is not None and loaded is not None and fits and sample is not None:
        projection = _check_run(log, challenge, phase, metadata[1], loaded, sample, out)
    else:
        for step in ("ingestion", "scores", "time", "overlays"):
            log.skip(step, "needs the metadata, the model and the sample data above")
    zip_path = _zip_step(log, metadata[0] if metadata else None, model_path, out / ZIP_NAME)
    return CheckResult(log, zip_path, projection)


def _below_the_top_folder(submission: Path, metadata: Path) -> Path | None:
    """The folder of ``metadata`` in ``submission`` if it is deeper than a top-level folder (found beside the
    model only; the model's path, and so this one, is resolved), else None."""
    inside = Path(os.path.realpath(metadata)).relative_to(os.path.realpath(submission))
    return inside.parent if len(inside.parts) > 2 else None


def _near(path: Path) -> Path:
    """``path`` relative to the working directory when it lies under it (the model file is found resolved)."""
    return path.relative_to(Path.cwd()) if path.is_absolute() and path.is_relative_to(Path.cwd()) else path


def _found_model(submission: Path) -> tuple[Path | None, str | None]:
    """The model file, or the problem that says why there is none (logged in its own step)."""
    try:
        return _find_model(submission), None
    except UserFacingError as error:
        return None, str(error)


def _input_size_fits(log: CheckLog, metadata: tuple[Path, InferenceSettings], loaded: LoadedModel) -> bool:
    """The metadata's input_size against the model's fixed input, as the ingestion checks it before predicting."""
    from ..ingestion.run import model_input_size

    try:
        model_input_size(metadata[1], loaded.model, metadata[0])
    except UserFacingError as error:
        log.fail("metadata", str(error))
        return False
    return True


def _find_model(submission: Path) -> Path:
    from ..ingestion.model_files import find_model_file

    return find_model_file(submission)


def _io_text(loaded: LoadedModel) -> str:
    from ..ingestion.model_loading import describe_io

    input_shape, output_shapes = describe_io(loaded.model)
    return f"input {_shape(input_shape)}, output {', '.join(_shape(shape) for shape in output_shapes)}"


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _check_run(
    log: CheckLog,
    challenge: ChallengeSettings,
    phase: Phase,
    settings: InferenceSettings,
    loaded: LoadedModel,
    sample: SampleData,
    out: Path,
) -> TimeProjection | None:
    """Ingestion, scores, time and overlays on the sample; the time projection, if it could be made."""
    results = out / RESULTS_DIR
    log.heading(f"Running {loaded.path.name} on the sample images, as the server's ingestion does ...")
    run = attempt(log, "ingestion", lambda: run_sample_ingestion(loaded, settings, sample, results, log.stream))
    if run is None:
        for step in ("scores", "time", "overlays"):
            log.skip(step, "needs the ingestion above")
        return None
    log.ok(
        "ingestion",
        f"{run.images} images of {run.image_size[0]}x{run.image_size[1]}, {run.instances} instances, "
        f"{run.seconds:.1f} s (after a {run.warmup_seconds:.1f} s warm-up), results in {results}",
    )
    scored = attempt(log, "scores", lambda: _score(sample, results, out / SCORES_DIR))
    projection = None
    if scored is not None:
        scores, score_seconds = scored
        log.heading(
            f"Scores on the {run.images} sample images (the leaderboard uses the {TEST_SET_IMAGES} test images):"
        )
        for line in leaderboard_table(scores, challenge):
            log.heading(f"    {line}")
        for warning in scores.warnings:
            log.note(f"scoring: {warning}")
        log.ok("scores", f"scores.txt, scores.json and detailed_results.html in {out / SCORES_DIR}")
        projection = _time_step(log, challenge, phase, loaded, run, score_seconds)
    else:
        log.skip("time", "needs the scores above")
    overlays = attempt(
        log,
        "overlays",
        lambda: _save_overlays(sample, results, out / OVERLAYS_DIR),
    )
    if overlays is not None:
        log.ok("overlays", f"{len(overlays)} pictures (input, prediction, ground truth) in {out / OVERLAYS_DIR}")
    return projection


def _score(sample: SampleData, results: Path, scores_dir: Path):
    from ..scoring.evaluation import evaluate
    from ..scoring.score_files import write_score_files

    start = time.perf_counter()
    scores = evaluate(sample.reference, results)
    seconds = time.perf_counter() - start
    write_score_files(scores_dir, scores)
    return scores, seconds


def _time_step(
    log: CheckLog, challenge: ChallengeSettings, phase: Phase, loaded: LoadedModel, run: IngestionRun, scoring: float
) -> TimeProjection:
    projection = TimeProjection(
        load_seconds=loaded.seconds + (run.warmup_seconds if math.isnan(run.full_run_warmup) else run.full_run_warmup),
        ingest_per_image=run.seconds / run.images if math.isnan(run.per_image) else run.per_image,
        score_per_image=scoring / run.images,
        measured_on=measured_on(run),
    )
    fits, line = time_findings(projection, challenge.execution_time_limit, phase.name, challenge.codabench_queue)
    (log.ok if fits else log.warn)("time", line)
    return projection


def _save_overlays(sample: SampleData, results: Path, folder: Path) -> list[Path]:
    from .overlays import save_overlays

    return save_overlays(sample.input_data, results, sample.reference, folder, MAX_OVERLAYS)


def _zip_step(log: CheckLog, metadata: Path | None, model: Path | None, target: Path) -> Path | None:
    if log.problems or metadata is None or model is None:
        if target.exists():
            target.unlink()
            log.note(f"removed the {ZIP_NAME} of an earlier run")
        log.skip(ZIP_NAME, "not written, because of the problems above")
        return None
    names = write_submission_zip(metadata, model, target)
    log.ok(ZIP_NAME, f"{target} ({' + '.join(names)}, {target.stat().st_size / 1024**2:.1f} MB)")
    extra = left_out(metadata, model)
    if extra:
        log.note(f"left out of {ZIP_NAME} (the platform needs only metadata and the model): {', '.join(extra)}")
    return target


def _summary(log: CheckLog, zip_path: Path | None, when: Schedule) -> None:
    counts = f"{len(log.passed)} passed, {_plural(len(log.warnings), 'warning')}, {len(log.skipped)} skipped"
    if log.problems:
        log.heading(
            f"Summary: {_plural(len(log.problems), 'problem')} ({counts}). Fix the FAIL lines above and run the "
            "check again; no submission.zip was written."
        )
        return
    passed = "every check passed" + (f" ({counts}); read the WARN lines" if log.warnings else f" ({counts})")
    if when.open:
        log.heading(f"Summary: {passed}, then upload {zip_path} on the competition's Participate tab.")
    else:
        log.heading(f"Summary: {passed}. {zip_path} is ready, but no submission can be made now: {when.text}.")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# --- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The checker's options (also ``python -m cityscapes_competition check``)."""
    parser.add_argument(
        "submission",
        type=Path,
        help="the folder holding 'metadata' and your model (.keras, .h5 or .hdf5), or a zip of it "
        "(such as submission.zip, or a repository's archive from GitHub's Download ZIP)",
    )
    parser.add_argument(
        "--sample-data",
        type=Path,
        default=None,
        help="sample test data: input_data/ + reference_data/, or one folder with leftImg8bit/ and gtFine/ "
        "(default: the starting kit's sample_data/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where results, scores, overlays and submission.zip go (default: SUBMISSION{OUTPUT_SUFFIX}/ beside "
        "the submission, e.g. my_submission_check/)",
    )
    parser.add_argument("--phase", type=int, default=None, help="the phase whose limits apply (default: the current)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="check_submission.py",
        description="Check a submission folder or zip as the platform would, on sample data, and write submission.zip.",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """0: every check passed; 1: a check failed; 2: a mistake in the command; 3: an internal error."""
    return run_parsed(build_parser().parse_args(argv))


def run_parsed(args: argparse.Namespace) -> int:
    """The check of parsed arguments (``add_arguments``), with ``main``'s exit codes."""
    out = args.out if args.out is not None else default_output(args.submission)
    outcome: list[CheckResult] = []

    def run() -> None:
        outcome.append(check_submission(args.submission, args.sample_data, out, args.phase))

    code = guarded(run, PROGRAM, out)
    if code:
        return code
    return 0 if outcome and outcome[0].passed else 1
