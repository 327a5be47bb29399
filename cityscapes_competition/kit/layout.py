"""The checker's fixed names and numbers: where it reads the sample data and writes its output, the test
set's size, and the usage error for a command line that asks for the impossible."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..core.errors import UserFacingError

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.

if TYPE_CHECKING:
    pass


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

SAMPLE_FIX = (
    "Give --sample-data a folder holding input_data/ (leftImg8bit/...) and reference_data/ (gtFine/...), "
    "or one folder holding both leftImg8bit/ and gtFine/, such as the starting kit's sample_data/."
)
SPEED_FIX = "Use a smaller inference.input_size or a lighter model."
SCORING_FIX = "Fewer, larger instances score faster: raise inference.instances.min_area or lower max_per_image."
T = TypeVar("T")


class CheckUsageError(UserFacingError):
    """The checker's command line asks for something impossible (an output folder, a phase)."""
