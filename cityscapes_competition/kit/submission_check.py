"""The starting kit's checker: everything the platform will do with a submission, run locally on sample data.

``python starting_kit/check_submission.py SUBMISSION [--sample-data DIR] [--out check_output] [--phase N]``

1. the ``metadata`` (strictly, the CodaLab URL trap included) and the one model file, loaded in the
   server's safe mode with its inputs and outputs checked;
2. the ingestion over the sample test images, into ``OUT/results/``;
3. the scores on the sample reference data, as the leaderboard shows them, into ``OUT/scores/``;
4. the time 500 test images would take, against the phase's execution time limit;
5. overlay pictures (input, prediction, ground truth) in ``OUT/overlays/``;
6. ``OUT/submission.zip``, the file to upload: ``metadata`` and the model at its root, nothing else,
   written only if every check passed.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from ..core.atomic import atomic_stream, write_text_atomic
from ..core.challenge import ChallengeSettings, Phase, load_challenge
from ..core.errors import ReferenceDataError, SubmissionError, UserFacingError, guarded
from ..ingestion.submission_metadata import METADATA_NAME, InferenceSettings, find_metadata, read_settings

if TYPE_CHECKING:
    from ..ingestion.inference import TestImage

PROGRAM = "check_submission"
KIT_ROOT = Path(__file__).resolve().parents[2]  # the repository, or the unzipped starting kit
SAMPLE_DIR_NAME = "sample_data"
INPUT_DIR_NAME, REFERENCE_DIR_NAME = "input_data", "reference_data"
SYNTHETIC_SAMPLE_COUNT = 3
SYNTHETIC_SAMPLE_SEED = 20190211
GENERATED_MARKER = ".generated"
OUTPUT_MARKER = ".check_submission_output"
ZIP_NAME = "submission.zip"
RESULTS_DIR, SCORES_DIR, OVERLAYS_DIR = "results", "scores", "overlays"
TEST_SET_IMAGES = 500
TEST_IMAGE_SIZE = (2048, 1024)  # (width, height) of the test images
CODABENCH_DEFAULT_QUEUE_SECONDS = 600
MAX_OVERLAYS = 5

_SAMPLE_FIX = (
    "Give --sample-data a folder holding input_data/ (leftImg8bit/...) and reference_data/ (gtFine/...), "
    "or one folder holding both leftImg8bit/ and gtFine/, such as the starting kit's sample_data/."
)
_SPEED_FIX = "Use a smaller inference.input_size or a lighter model."
T = TypeVar("T")


class CheckUsageError(UserFacingError):
    """The checker's command line asks for something impossible (an output folder, a phase)."""


# --- the log of a check run ---------------------------------------------------------------------


@dataclass
class CheckLog:
    """What the checker prints, one line per finding, and the tally for the summary."""

    stream: TextIO
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def _print(self, mark: str, text: str) -> None:
        print(f"  {mark:<5} {text}", file=self.stream, flush=True)

    def ok(self, step: str, text: str) -> None:
        self.passed.append(step)
        self._print("ok", f"{step}: {text}")

    def fail(self, step: str, text: str) -> None:
        self.problems.append(f"{step}: {text}")
        self._print("FAIL", f"{step}: {text}")

    def warn(self, step: str, text: str) -> None:
        self.warnings.append(f"{step}: {text}")
        self._print("WARN", f"{step}: {text}")

    def skip(self, step: str, reason: str) -> None:
        self.skipped.append(step)
        self._print("skip", f"{step}: {reason}")

    def note(self, text: str) -> None:
        self._print("note", text)

    def heading(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def _attempt(log: CheckLog, step: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None after logging its one-line problem."""
    try:
        return action()
    except UserFacingError as error:
        log.fail(step, str(error))
        return None


# --- sample data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleData:
    input_data: Path  # holds leftImg8bit/...
    reference: Path  # holds gtFine/... (and disparity/, camera/)


def sample_layout(folder: Path) -> SampleData:
    """``input_data/`` + ``reference_data/`` (the starting kit's layout), or one root holding both."""
    if not folder.is_dir():
        raise ReferenceDataError("the sample data folder does not exist", folder, _SAMPLE_FIX)
    split = folder / INPUT_DIR_NAME, folder / REFERENCE_DIR_NAME
    if split[0].is_dir() and split[1].is_dir():
        return SampleData(*split)
    if (folder / "leftImg8bit").is_dir() and (folder / "gtFine").is_dir():
        return SampleData(folder, folder)
    raise ReferenceDataError(
        f"holds neither {INPUT_DIR_NAME}/ and {REFERENCE_DIR_NAME}/ nor leftImg8bit/ and gtFine/", folder, _SAMPLE_FIX
    )


def default_sample_data(
    log: CheckLog, kit_root: Path = KIT_ROOT, size: tuple[int, int] = TEST_IMAGE_SIZE, workers: int | None = None
) -> Path:
    """The starting kit's ``sample_data/``; in the repository, a small synthetic sample generated once."""
    shipped = kit_root / SAMPLE_DIR_NAME
    if shipped.is_dir():
        return shipped
    cache = kit_root / "data" / SAMPLE_DIR_NAME
    if not (cache / GENERATED_MARKER).is_file():
        log.note(f"generating {SYNTHETIC_SAMPLE_COUNT} synthetic sample images ({size[0]}x{size[1]}) in {cache} ...")
        generate_synthetic_sample(cache, SYNTHETIC_SAMPLE_COUNT, size, workers)
    return cache


def generate_synthetic_sample(target: Path, count: int, size: tuple[int, int], workers: int | None = None) -> None:
    """Synthetic images and their ground truth in one root, built aside and moved into place."""
    from ..synthetic import scenes as synthetic

    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        building.chmod(0o755)
        synthetic.generate_split(building, "val", count, seed=SYNTHETIC_SAMPLE_SEED, size=size, workers=workers)
        (building / GENERATED_MARKER).write_text(f"{count} {size[0]}x{size[1]} seed {SYNTHETIC_SAMPLE_SEED}\n")
        if target.exists():
            shutil.rmtree(target)  # an earlier, unfinished sample
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


# --- the output folder ----------------------------------------------------------------------------


def prepare_output(out: Path, submission: Path) -> None:
    """Create ``out`` (or reuse one this checker made), emptied of an earlier run's results."""
    if out.resolve().is_relative_to(submission.resolve()):
        raise CheckUsageError("is inside the submission folder", out, "Choose an output folder outside it with --out.")
    if out.exists() and not out.is_dir():
        raise CheckUsageError("exists and is not a folder", out, "Choose another output folder with --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARKER).is_file():
        raise CheckUsageError(
            "already exists and was not made by this checker",
            out,
            "Choose another output folder with --out, or delete this one.",
        )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / OUTPUT_MARKER, "Written by the starting kit's check_submission.py; safe to delete.\n")
    for name in (RESULTS_DIR, SCORES_DIR, OVERLAYS_DIR):
        shutil.rmtree(out / name, ignore_errors=True)


# --- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    model: Any
    seconds: float


@dataclass(frozen=True)
class IngestionRun:
    images: int
    instances: int
    seconds: float  # the whole run, warm-up excluded
    warmup_seconds: float  # the first prediction (TensorFlow builds its graph), paid once per run
    image_size: tuple[int, int]  # (width, height) of the first sample image


def check_metadata(submission: Path) -> tuple[Path, InferenceSettings]:
    path = find_metadata(submission)
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
    """The server's ingestion, over the sample images, timed without the one-off warm-up."""
    from ..ingestion.inference import Progress, run_inference
    from ..ingestion.model_loading import check_activation_sizes
    from ..ingestion.run import discover_test_images, model_input_size

    images = discover_test_images(sample.input_data)
    input_size = model_input_size(settings, loaded.model)
    check_activation_sizes(loaded.model, input_size, settings.batch_size, loaded.path)  # as the server does
    warmup = warm_up(loaded, images[0], input_size, min(settings.batch_size, len(images)))
    progress = Progress(len(images), stream=stream)
    summary = run_inference(loaded.model, images, results, settings, loaded.path.name, input_size, progress)
    if (results / METADATA_NAME).exists():  # as the server: Codabench fails a run whose ingestion writes one
        raise SubmissionError("must not be written by ingestion", results / METADATA_NAME)
    with _open_image(images[0].path) as picture:
        size = picture.size
    return IngestionRun(summary.images, summary.instances, summary.seconds, warmup, size)


def warm_up(loaded: LoadedModel, image: TestImage, input_size: tuple[int, int] | None, batch: int) -> float:
    """One prediction on a batch of the first image; a model that cannot run on it is one clear problem."""
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


def _open_image(path: Path):
    from PIL import Image

    return Image.open(path)


# --- time -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeProjection:
    """The time the platform would take for the whole test set, from times measured on the sample."""

    load_seconds: float  # loading the model and its first prediction, once per run
    ingest_per_image: float
    score_per_image: float
    measured_on: str = ""  # e.g. "3 sample images of 2048x1024"
    images: int = TEST_SET_IMAGES

    @property
    def total(self) -> float:
        return self.load_seconds + self.images * (self.ingest_per_image + self.score_per_image)

    def describe(self) -> str:
        measured = f", measured on {self.measured_on}" if self.measured_on else ""
        return (
            f"about {self.total:.0f} s for {self.images} test images ({self.load_seconds:.1f} s loading "
            f"+ {self.images} x {self.ingest_per_image:.3f} s per image + {self.images} x "
            f"{self.score_per_image:.3f} s scoring{measured})"
        )


def time_findings(
    projection: TimeProjection, limit: int, phase_name: str, codabench_queue: str | None
) -> tuple[bool, str]:
    """(fits, the line to print): the projection against the execution time limit and Codabench's default queue."""
    head, total = projection.describe(), projection.total
    capped = codabench_queue is None  # the competition runs on Codabench's default queue
    cap = CODABENCH_DEFAULT_QUEUE_SECONDS
    if total > limit:
        queue = f"; Codabench's default queue even stops every run at {cap} s" if capped and limit > cap else ""
        return False, (
            f"{head} would not fit: it is more than the execution time limit of {limit} s ({phase_name}), "
            f"so the platform would stop the run{queue}. {_SPEED_FIX}"
        )
    if capped and total > cap:
        return False, (
            f"{head} would not fit: it is within the execution time limit of {limit} s ({phase_name}) but more "
            f"than the {cap} s at which Codabench's default queue stops every run. {_SPEED_FIX}"
        )
    queue = f" and the {cap} s cap of Codabench's default queue" if capped and limit > cap else ""
    return True, f"{head}, within the execution time limit of {limit} s ({phase_name}){queue}"


def measured_on(run: IngestionRun) -> str:
    width, height = run.image_size
    text = f"{run.images} sample images of {width}x{height}"
    if (width, height) != TEST_IMAGE_SIZE:
        text += f"; the test images are {TEST_IMAGE_SIZE[0]}x{TEST_IMAGE_SIZE[1]}, so expect more"
    return text


# --- scores ---------------------------------------------------------------------------------------


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


def check_submission(
    submission: Path,
    sample_data: Path | None = None,
    out: Path = Path("check_output"),
    phase_number: int | None = None,
    stream: TextIO | None = None,
) -> CheckResult:
    """Run every check; the command's own mistakes (bad folders, unknown phase) raise a UserFacingError."""
    log = CheckLog(stream or sys.stdout)
    if not submission.is_dir():
        raise SubmissionError(
            "the submission folder does not exist", submission, "Give the folder holding 'metadata' and your model."
        )
    challenge = load_challenge()
    phase = pick_phase(challenge, phase_number)
    prepare_output(out, submission)
    log.heading(f"Checking {submission} for {challenge.title}, {phase.name}")

    metadata = _attempt(log, "metadata", lambda: check_metadata(submission))
    if metadata is not None:
        log.ok("metadata", f"{metadata[0]} ({describe_settings(metadata[1])})")
    model_path = _attempt(log, "model file", lambda: _find_model(submission))
    loaded = None
    if model_path is not None:
        log.ok("model file", f"{model_path} ({model_path.stat().st_size / 1024**2:.1f} MB)")
        loaded = _attempt(log, "model", lambda: load_model(model_path))
    if loaded is not None:
        log.ok("model", f"loads in the server's safe mode in {loaded.seconds:.1f} s, {_io_text(loaded)}")
    sample = _attempt(log, "sample data", lambda: sample_layout(sample_data or default_sample_data(log)))
    if sample is not None:
        log.ok("sample data", f"test images in {sample.input_data}, ground truth in {sample.reference}")

    if metadata is not None and loaded is not None and sample is not None:
        _check_run(log, challenge, phase, metadata[1], loaded, sample, out)
    else:
        for step in ("ingestion", "scores", "time", "overlays"):
            log.skip(step, "needs the metadata, the model and the sample data above")

    zip_path = _zip_step(log, metadata[0] if metadata else None, model_path, out / ZIP_NAME)
    _summary(log, zip_path)
    return CheckResult(log, zip_path)


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
) -> None:
    results = out / RESULTS_DIR
    log.heading(f"Running {loaded.path.name} on the sample images, as the server's ingestion does ...")
    run = _attempt(log, "ingestion", lambda: run_sample_ingestion(loaded, settings, sample, results, log.stream))
    if run is None:
        for step in ("scores", "time", "overlays"):
            log.skip(step, "needs the ingestion above")
        return
    log.ok(
        "ingestion",
        f"{run.images} images of {run.image_size[0]}x{run.image_size[1]}, {run.instances} instances, "
        f"{run.seconds:.1f} s (after a {run.warmup_seconds:.1f} s warm-up), results in {results}",
    )
    scored = _attempt(log, "scores", lambda: _score(sample, results, out / SCORES_DIR))
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
        _time_step(log, challenge, phase, loaded, run, score_seconds)
    else:
        log.skip("time", "needs the scores above")
    overlays = _attempt(
        log,
        "overlays",
        lambda: _save_overlays(sample, results, out / OVERLAYS_DIR),
    )
    if overlays is not None:
        log.ok("overlays", f"{len(overlays)} pictures (input, prediction, ground truth) in {out / OVERLAYS_DIR}")


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
) -> None:
    projection = TimeProjection(
        load_seconds=loaded.seconds + run.warmup_seconds,
        ingest_per_image=run.seconds / run.images,
        score_per_image=scoring / run.images,
        measured_on=measured_on(run),
    )
    fits, line = time_findings(projection, challenge.execution_time_limit, phase.name, challenge.codabench_queue)
    (log.ok if fits else log.warn)("time", line)


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


def _summary(log: CheckLog, zip_path: Path | None) -> None:
    counts = f"{len(log.passed)} passed, {_plural(len(log.warnings), 'warning')}, {len(log.skipped)} skipped"
    if log.problems:
        log.heading(
            f"Summary: {_plural(len(log.problems), 'problem')} ({counts}). Fix the FAIL lines above and run the "
            "check again; no submission.zip was written."
        )
    elif log.warnings:
        log.heading(f"Summary: every check passed ({counts}); read the WARN lines, then upload {zip_path}.")
    else:
        log.heading(f"Summary: every check passed ({counts}). Upload {zip_path}.")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# --- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="check_submission.py",
        description="Check a submission folder as the platform would, on sample data, and write submission.zip.",
    )
    parser.add_argument(
        "submission", type=Path, help="the folder holding 'metadata' and your model (.keras, .h5 or .hdf5)"
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
        default=Path("check_output"),
        help="where results, scores, overlays and submission.zip go (default: check_output)",
    )
    parser.add_argument("--phase", type=int, default=None, help="the phase whose limits apply (default: the current)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """0: every check passed; 1: a check failed; 2: a mistake in the command; 3: an internal error."""
    args = build_parser().parse_args(argv)
    outcome: list[CheckResult] = []

    def run() -> None:
        outcome.append(check_submission(args.submission, args.sample_data, args.out, args.phase))

    code = guarded(run, PROGRAM, args.out)
    if code:
        return code
    return 0 if outcome and outcome[0].passed else 1


if __name__ == "__main__":
    sys.exit(main())
