"""The sample data the checker runs a submission on: the starting kit's sample_data/, the repository's
competition data, or the same frames generated once."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ReferenceDataError
from ..core.processes import worker_pool

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.

if TYPE_CHECKING:
    from ..core.naming import FrameId
from .check_log import CheckLog
from .layout import (
    COMPETITION_DATA,
    COMPETITION_MANIFEST,
    GENERATED_MARKER,
    INPUT_DIR_NAME,
    KIT_ROOT,
    KIT_SAMPLE_COUNT,
    KIT_SAMPLE_SEED,
    REFERENCE_DIR_NAME,
    SAMPLE_DIR_NAME,
    SAMPLE_FIX,
    TEST_IMAGE_SIZE,
)


@dataclass(frozen=True)
class SampleData:
    input_data: Path  # holds leftImg8bit/...
    reference: Path  # holds gtFine/... (and disparity/, camera/)


def sample_layout(folder: Path) -> SampleData:
    """``input_data/`` + ``reference_data/`` (the starting kit's layout), or one root holding both."""
    if not folder.is_dir():
        raise ReferenceDataError("the sample data folder does not exist", folder, SAMPLE_FIX)
    split = folder / INPUT_DIR_NAME, folder / REFERENCE_DIR_NAME
    if split[0].is_dir() and split[1].is_dir():
        return SampleData(*split)
    if (folder / "leftImg8bit").is_dir() and (folder / "gtFine").is_dir():
        return SampleData(folder, folder)
    raise ReferenceDataError(
        f"holds neither {INPUT_DIR_NAME}/ and {REFERENCE_DIR_NAME}/ nor leftImg8bit/ and gtFine/", folder, SAMPLE_FIX
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
