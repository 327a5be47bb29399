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
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from ..core.atomic import atomic_stream, write_text_atomic
from ..core.challenge import ChallengeSettings, Phase, load_challenge
from ..core.errors import ReferenceDataError, SubmissionError, UserFacingError, guarded, printable, shown
from ..core.processes import worker_pool

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.
from ..ingestion.model_files import (
    MAX_COMPRESSION_RATIO,
    MAX_ENTRIES,
    MAX_MODEL_BYTES,
    MODEL_SUFFIXES,
    RATIO_FLOOR_BYTES,
    check_member_name,
    copy_member,
)
from ..ingestion.submission_metadata import METADATA_NAME, InferenceSettings, find_metadata, read_settings

if TYPE_CHECKING:
    from ..core.naming import FrameId
    from ..ingestion.inference import TestImage

PROGRAM = "check_submission"
KIT_ROOT = Path(__file__).resolve().parents[2]  # the repository, or the unzipped starting kit
SAMPLE_DIR_NAME = "sample_data"
INPUT_DIR_NAME, REFERENCE_DIR_NAME = "input_data", "reference_data"
# The repository's competition data (make demo, make bundle): its sample_data/ is what the starting kit ships.
COMPETITION_DATA = Path("data") / "competition"
COMPETITION_MANIFEST = "competition_data.json"  # competition_data.MANIFEST_NAME: a complete build
# Without it, the kit's sample frames are generated: competition_data.build_competition_data's defaults
# (5 frames picked from the 500 synthetic test frames of seed 0), so the scores match the kit's.
KIT_SAMPLE_COUNT = 5
KIT_SAMPLE_SEED = 0
GENERATED_MARKER = ".generated"
OUTPUT_MARKER = ".check_submission_output"
OUTPUT_SUFFIX = "_check"  # the default output folder: SUBMISSION_check beside the submission
ZIP_NAME = "submission.zip"
RESULTS_DIR, SCORES_DIR, OVERLAYS_DIR, UNPACKED_DIR = "results", "scores", "overlays", "unpacked"
TEST_SET_IMAGES = 500
TEST_IMAGE_SIZE = (2048, 1024)  # (width, height) of the test images
CODABENCH_DEFAULT_QUEUE_SECONDS = 600
MAX_OVERLAYS = 5

_SAMPLE_FIX = (
    "Give --sample-data a folder holding input_data/ (leftImg8bit/...) and reference_data/ (gtFine/...), "
    "or one folder holding both leftImg8bit/ and gtFine/, such as the starting kit's sample_data/."
)
_SPEED_FIX = "Use a smaller inference.input_size or a lighter model."
_SCORING_FIX = "Fewer, larger instances score faster: raise inference.instances.min_area or lower max_per_image."
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
        # names from a zip may hold newlines and terminal escapes: one line each, escaped, never forged
        print(f"  {mark:<5} {printable(text)}", file=self.stream, flush=True)

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
    """The starting kit's ``sample_data/``; in the repository the same frames, so the sample scores agree:
    the competition data's sample if it is built, else the kit's frames generated once (``size``)."""
    shipped = kit_root / SAMPLE_DIR_NAME
    if shipped.is_dir():
        return shipped
    built = kit_root / COMPETITION_DATA
    if (built / COMPETITION_MANIFEST).is_file() and (built / SAMPLE_DIR_NAME).is_dir():
        return built / SAMPLE_DIR_NAME
    cache = kit_root / "data" / SAMPLE_DIR_NAME
    frames = kit_sample_frames()
    stamp = f"{' '.join(frame.stem for frame in frames)} {size[0]}x{size[1]} seed {KIT_SAMPLE_SEED}\n"
    if _read_marker(cache) != stamp:  # missing, unfinished, or an older sample
        log.note(f"generating the starting kit's {len(frames)} sample images ({size[0]}x{size[1]}) in {cache} ...")
        generate_synthetic_sample(cache, frames, size, stamp, workers)
    return cache


def kit_sample_frames() -> list[FrameId]:
    """The frames of the starting kit's synthetic sample, picked as the competition data picks them."""
    from ..core.naming import pick_samples
    from ..synthetic import scenes as synthetic

    return pick_samples(synthetic.split_spec("val", synthetic.DEFAULT_TEST_COUNT).frames, KIT_SAMPLE_COUNT)


def _read_marker(folder: Path) -> str | None:
    try:
        return (folder / GENERATED_MARKER).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def generate_synthetic_sample(
    target: Path, frames: list[FrameId], size: tuple[int, int], stamp: str, workers: int | None = None
) -> None:
    """Synthetic images and their ground truth in one root, built aside and moved into place."""
    from functools import partial

    from ..synthetic import scenes as synthetic

    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        building.chmod(0o755)
        generate = partial(synthetic.generate_frame, building, "val", seed=KIT_SAMPLE_SEED, size=size)
        workers = min(workers or os.cpu_count() or 1, len(frames))
        if workers > 1:
            with worker_pool(workers) as pool:
                list(pool.map(generate, frames))
        else:
            for frame in frames:
                generate(frame)
        (building / GENERATED_MARKER).write_text(stamp)
        if target.exists():
            shutil.rmtree(target)  # an earlier, unfinished or older sample
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


# --- the output folder ----------------------------------------------------------------------------


def default_output(submission: Path) -> Path:
    """``SUBMISSION_check`` beside the submission (``my_submission/`` -> ``my_submission_check/``,
    ``repo-main.zip`` -> ``repo-main_check/``): next to what it checks, not in the working directory."""
    named = submission if submission.name not in ("", ".", "..") else Path(os.path.abspath(submission))
    if not named.name:  # the file system's root
        return Path(f"submission{OUTPUT_SUFFIX}")
    return named.with_name(f"{named.stem if is_zip_path(named) else named.name}{OUTPUT_SUFFIX}")


def prepare_output(out: Path, submission: Path) -> None:
    """Create ``out`` (or reuse one this checker made), emptied of an earlier run's results."""
    if out.resolve().is_relative_to(submission.resolve()):
        raise CheckUsageError("is inside the submission folder", out, "Choose an output folder outside it with --out.")
    if submission.resolve().is_relative_to(out.resolve()):  # its results/, scores/... are emptied below
        raise CheckUsageError(
            f"holds the submission {submission}, and the checker empties its folders",
            out,
            "Move the submission out of it, or choose another output folder with --out.",
        )
    if out.is_symlink():  # emptied and written through: the folder it names could be anything
        raise CheckUsageError("is a symbolic link", out, "Choose a real folder with --out.")
    if out.exists() and not out.is_dir():
        raise CheckUsageError("exists and is not a folder", out, "Choose another output folder with --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARKER).is_file():
        raise CheckUsageError(
            "already exists and was not made by this checker",
            out,
            "Choose another output folder with --out, or delete this one.",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / OUTPUT_MARKER, "Written by the starting kit's check_submission.py; safe to delete.\n")
    except OSError as error:
        raise CheckUsageError(
            f"cannot be written ({error.strerror or type(error).__name__})", out, "Choose a folder with --out."
        ) from None
    for name in (RESULTS_DIR, SCORES_DIR, OVERLAYS_DIR, UNPACKED_DIR):
        shutil.rmtree(out / name, ignore_errors=True)


# --- a zipped submission --------------------------------------------------------------------------

# The zip is untrusted, and checked as model_files checks a .keras archive (its helpers, with room for a
# repository's other files): the central directory's size and count before it is read, then every member's
# name (no absolute path, no '..', no link), method, flags and compression ratio, and the total size, before
# anything is inflated. Folders are made only as the parents of checked files, and every file is written new
# (O_EXCL), never past its declared size (zipfile stops there and checks the CRC).
MAX_ZIP_MEMBERS = MAX_ENTRIES
MAX_ZIP_DIRECTORY_BYTES = 32 * 1024**2  # about 300 bytes an entry at the member cap
MAX_UNPACKED_BYTES = MAX_MODEL_BYTES + 1024**3  # the largest model accepted, and a repository's other files
# Stored and deflated only, what Git, GitHub, zip and Python write: LZMA's dictionary is the file's to choose
# (4 GiB), and its errors are others' than zlib's.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_MAX_ZIP_DEPTH = 64  # folders in a member's name: a 1,200-deep one made Path.mkdir recurse past Python's limit
_ZIP_FIX = (
    "Zip your submission folder again (or use the submission.zip this checker writes), or download the "
    "repository's archive from GitHub again."
)
_LINK_FIX = (
    "Replace the link by the file it points to (or remove it from the repository), or zip only 'metadata' and "
    "the model: the platform unpacks no link."
)


@dataclass(frozen=True)
class UnpackedZip:
    folder: Path
    files: int


def is_zip_path(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and not path.is_dir()


def unpack_submission(archive: Path, folder: Path) -> UnpackedZip:
    """The zip ``archive``, checked in full first, unpacked into the new folder ``folder``."""
    members = [info for info in zip_members(archive) if not info.is_dir()]  # folders: made as parents
    folder.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as opened:
            for info in members:
                target = folder / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                copy_member(opened, info, target)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error) as error:
        raise SubmissionError(f"cannot be unpacked ({_reason(error)})", archive, _ZIP_FIX) from None
    return UnpackedZip(folder, len(members))


def zip_members(archive: Path) -> list[zipfile.ZipInfo]:
    """The members of ``archive``, refused unless each is safe to unpack; only the directory is read."""
    try:
        if not stat.S_ISREG(os.stat(archive).st_mode):
            raise SubmissionError("is not a regular file", archive, "Give the zip file itself.")
        with archive.open("rb") as stream:
            end = zipfile._EndRecData(stream)  # the record zipfile reads the directory from, as in model_files
        if end is None:
            raise SubmissionError("is not a zip archive", archive, _ZIP_FIX)
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_MEMBERS or end[zipfile._ECD_SIZE] > MAX_ZIP_DIRECTORY_BYTES:
            raise SubmissionError(
                f"lists {end[zipfile._ECD_ENTRIES_TOTAL]} members in {end[zipfile._ECD_SIZE]} bytes; at most "
                f"{MAX_ZIP_MEMBERS} are unpacked",
                archive,
                "Zip only 'metadata' and the model.",
            )
        with zipfile.ZipFile(archive) as opened:
            members = opened.infolist()
        if len(members) > MAX_ZIP_MEMBERS:  # the end record may declare fewer than the directory lists
            raise SubmissionError(
                f"lists {len(members)} members; at most {MAX_ZIP_MEMBERS} are unpacked",
                archive,
                "Zip only 'metadata' and the model.",
            )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise SubmissionError(f"is not a readable zip archive ({_reason(error)})", archive, _ZIP_FIX) from None
    for info in members:
        _check_zip_member(info, archive)
    _check_zip_totals(members, archive)
    return members


def _check_zip_member(info: zipfile.ZipInfo, archive: Path) -> None:
    name = info.orig_filename
    if "\\" in name:
        raise SubmissionError(
            f"holds the member {shown(name, 100)}, which has a '\\' in its name: some Windows tools write it "
            "between folders, and the platform would unpack one file of that whole name",
            archive,
            "Zip the folder with another tool (or use the submission.zip this checker writes).",
        )
    is_link = info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)
    if info.is_dir() and not is_link:
        return  # never made as such: only as the parent of a checked file
    try:
        check_member_name(info, archive)  # NUL, absolute, '..', link: as in a .keras archive
    except SubmissionError as error:
        raise SubmissionError(error.detail, archive, _LINK_FIX if is_link else _ZIP_FIX) from None
    problem = None
    if name.count("/") > _MAX_ZIP_DEPTH:
        problem = f"lies more than {_MAX_ZIP_DEPTH} folders deep"
    elif info.flag_bits & 0x1:
        problem = "is encrypted"
    elif info.compress_type not in _ZIP_METHODS:
        problem = f"uses compression method {info.compress_type}; only stored or deflated members are unpacked"
    elif info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
        problem = (
            f"declares {info.file_size} bytes stored in {info.compress_size}, a compression ratio above "
            f"{MAX_COMPRESSION_RATIO}: a zip bomb, not a submission"
        )
    if problem:
        raise SubmissionError(f"holds the member {shown(name, 100)}, which {problem}", archive, _ZIP_FIX)


def _check_zip_totals(members: list[zipfile.ZipInfo], archive: Path) -> None:
    names = Counter(info.filename.rstrip("/") for info in members)
    twice = [name for name, count in names.items() if count > 1]
    if twice:
        raise SubmissionError(f"holds {shown(twice[0], 100)} {names[twice[0]]} times", archive, _ZIP_FIX)
    unpacked = sum(info.file_size for info in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise SubmissionError(
            f"would unpack to {unpacked / 1024**3:.1f} GB, more than the {MAX_UNPACKED_BYTES / 1024**3:.0f} GB "
            "a submission may hold",
            archive,
            "Zip only 'metadata' and the model.",
        )
    compressed = sum(info.compress_size for info in members)
    if compressed > archive.stat().st_size:
        raise SubmissionError(
            f"has members whose compressed sizes add up to more than the file's {archive.stat().st_size} bytes: "
            "they overlap (a zip bomb?)",
            archive,
            _ZIP_FIX,
        )


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


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
    warmup_seconds: float  # the first prediction of each batch shape (TensorFlow builds its graph), paid once
    image_size: tuple[int, int]  # (width, height) of the first sample image
    per_image: float = math.nan  # the steady pace (steady_pace), else seconds / images
    full_run_warmup: float = math.nan  # the warm-up the test set's own batch shapes take (full_run_warmup)


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


# The timing run: the sample TIMING_REPEATS times over (under other names, into a folder thrown away). A run pays
# once for its pipeline's fill (the first decodes before the model starts) and drain (the last writes after it
# ends): on 5 images that was 0.05 s an image of the baseline's 0.08 s. The difference of the two runs leaves
# the steady pace.
TIMING_REPEATS = 3


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


def steady_pace(short_seconds: float, short_images: int, long_seconds: float, long_images: int) -> float:
    """Seconds per image once the pipeline runs: the difference of a short and a long run, which cancels what
    each run pays once; a load burst that makes it meaningless leaves the long run's own average."""
    extra = long_seconds - short_seconds
    if long_images <= short_images or extra <= 0:
        return long_seconds / long_images
    return extra / (long_images - short_images)


def full_run_warmup(traces: dict[tuple[int, int, int], float], batch: int) -> float:
    """The warm-up the test set's run pays: a trace for each of its batch shapes (a full batch, and the last,
    partial one if 500 is not a multiple of the batch size), each as long as the sample's traces took."""
    if not traces:
        return 0.0
    shapes = 1 if TEST_SET_IMAGES % batch == 0 else 2
    return shapes * sum(traces.values()) / len(traces)


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


# --- time -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeProjection:
    """The time the platform would take for the whole test set, from times measured on the sample.

    The execution time limit applies to each step on both platforms (challenge.yaml): the ingestion and the
    scoring are projected, and compared with it, one by one."""

    load_seconds: float  # loading the model and its first predictions (one per batch shape), once per run
    ingest_per_image: float  # the steady pace: measured with every batch shape already traced
    score_per_image: float
    measured_on: str = ""  # e.g. "5 sample images of 2048x1024"
    images: int = TEST_SET_IMAGES

    @property
    def ingestion(self) -> float:
        return self.load_seconds + self.images * self.ingest_per_image

    @property
    def scoring(self) -> float:
        return self.images * self.score_per_image

    def longest_step(self) -> tuple[str, float]:
        return ("ingestion", self.ingestion) if self.ingestion >= self.scoring else ("scoring", self.scoring)

    def describe(self) -> str:
        measured = f", measured on {self.measured_on}" if self.measured_on else ""
        return (
            f"for {self.images} test images, ingestion about {self.ingestion:.0f} s ({self.load_seconds:.1f} s "
            f"loading + {self.images} x {self.ingest_per_image:.3f} s per image), scoring about {self.scoring:.0f} s "
            f"({self.images} x {self.score_per_image:.3f} s){measured}"
        )


def time_findings(
    projection: TimeProjection, limit: int, phase_name: str, codabench_queue: str | None
) -> tuple[bool, str]:
    """(fits, the line to print): each step against the execution time limit and Codabench's default queue."""
    head = projection.describe()
    step, longest = projection.longest_step()
    fix = _SPEED_FIX if step == "ingestion" else _SCORING_FIX
    capped = codabench_queue is None  # the competition runs on Codabench's default queue
    cap = CODABENCH_DEFAULT_QUEUE_SECONDS
    if longest > limit:
        queue = f"; Codabench's default queue even stops every run at {cap} s" if capped and limit > cap else ""
        return False, (
            f"{head}: the {step} would not fit: it is more than the execution time limit of {limit} s ({phase_name}), "
            f"so the platform would stop it{queue}. {fix}"
        )
    if capped and longest > cap:
        return False, (
            f"{head}: the {step} would not fit: it is within the execution time limit of {limit} s ({phase_name}) but "
            f"more than the {cap} s at which Codabench's default queue stops every run. {fix}"
        )
    queue = f" and the {cap} s cap of Codabench's default queue" if capped and limit > cap else ""
    return True, f"{head}; each step is within the execution time limit of {limit} s ({phase_name}){queue}"


def budget_warning(settings: InferenceSettings, limit: int, phase_name: str, codabench_queue: str | None) -> str | None:
    """Why the metadata's time_budget_seconds cannot work as written, if it cannot: above the limit, the
    platform stops the run before the budget does."""
    budget = settings.time_budget_seconds
    cap = CODABENCH_DEFAULT_QUEUE_SECONDS
    if budget is not None and budget > limit:
        return (
            f"inference.time_budget_seconds is {budget:g} s, more than the execution time limit of {limit} s "
            f"({phase_name}), so it has no effect: the ingestion stops a run that would not fit in the limit anyway. "
            f"Set it below {limit} s, or remove it"
        )
    if budget is not None and codabench_queue is None and budget > cap:
        return (
            f"inference.time_budget_seconds is {budget:g} s, more than the {cap} s at which Codabench's default "
            f"queue kills every run. Set it below {cap} s, so that a slow run stops with its time per image"
        )
    return None


def measured_on(run: IngestionRun) -> str:
    width, height = run.image_size
    text = f"{run.images} sample images of {width}x{height} (and {TIMING_REPEATS} times over, for the steady pace)"
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
    unpacked = _attempt(log, "zip", lambda: unpack_submission(archive, folder))
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
    metadata = _attempt(log, "metadata", lambda: check_metadata(submission, model_path))
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
        loaded = _attempt(log, "model", lambda: load_model(model_path))
    if loaded is not None:
        log.ok("model", f"loads in the server's safe mode in {loaded.seconds:.1f} s, {_io_text(loaded)}")
    fits = metadata is not None and loaded is not None and _input_size_fits(log, metadata, loaded)
    sample = _attempt(log, "sample data", lambda: sample_layout(sample_data or default_sample_data(log)))
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
    run = _attempt(log, "ingestion", lambda: run_sample_ingestion(loaded, settings, sample, results, log.stream))
    if run is None:
        for step in ("scores", "time", "overlays"):
            log.skip(step, "needs the ingestion above")
        return None
    log.ok(
        "ingestion",
        f"{run.images} images of {run.image_size[0]}x{run.image_size[1]}, {run.instances} instances, "
        f"{run.seconds:.1f} s (after a {run.warmup_seconds:.1f} s warm-up), results in {results}",
    )
    scored = _attempt(log, "scores", lambda: _score(sample, results, out / SCORES_DIR))
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
    overlays = _attempt(
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
