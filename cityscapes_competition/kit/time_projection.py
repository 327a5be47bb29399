"""The time a submission will take on the platform: the steady per-image pace measured on the sample,
projected to the test set's 500 images, against the phase's limit and Codabench's default queue."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.
from ..ingestion.submission_metadata import InferenceSettings

if TYPE_CHECKING:
    pass
from .layout import CODABENCH_DEFAULT_QUEUE_SECONDS, SCORING_FIX, SPEED_FIX, TEST_IMAGE_SIZE, TEST_SET_IMAGES


@dataclass(frozen=True)
class IngestionRun:
    images: int
    instances: int
    seconds: float  # the whole run, warm-up excluded
    warmup_seconds: float  # the first prediction of each batch shape (TensorFlow builds its graph), paid once
    image_size: tuple[int, int]  # (width, height) of the first sample image
    per_image: float = math.nan  # the steady pace (steady_pace), else seconds / images
    full_run_warmup: float = math.nan  # the warm-up the test set's own batch shapes take (full_run_warmup)


# The timing run: the sample TIMING_REPEATS times over (under other names, into a folder thrown away). A run pays
# once for its pipeline's fill (the first decodes before the model starts) and drain (the last writes after it
# ends): on 5 images that was 0.05 s an image of the baseline's 0.08 s. The difference of the two runs leaves
# the steady pace.
TIMING_REPEATS = 3


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
    fix = SPEED_FIX if step == "ingestion" else SCORING_FIX
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
