"""Synthetic frames as files, in the layout of the Cityscapes dataset: one frame, a split, a dataset.

The package's docstring says what the scenes hold; this module is what the rest of the project calls."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.atomic import write_bytes_atomic, write_text_atomic
from ..core.naming import (
    CAMERA_SUFFIX,
    DISPARITY_SUFFIX,
    GT_COLOR_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    IMAGE_SUFFIX,
    FrameId,
)
from ..core.processes import worker_pool
from ..png.png_write import encode_png
from .dataset import (
    DEFAULT_SIZE,
    DEFAULT_TEST_COUNT,
    DEFAULT_TRAIN_COUNT,
    DISPARITY_PNG_LEVEL,
    FRAME_NUMBER,
    LABEL_PNG_LEVEL,
    PALETTE,
    PHOTO_PNG_LEVEL,
    SPLIT_CITIES,
    camera_parameters,
    frame_seed,
    split_spec,
)
from .render import FrameData, build_scene, render

__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_TEST_COUNT",
    "DEFAULT_TRAIN_COUNT",
    "FRAME_NUMBER",
    "SPLIT_CITIES",
    "FrameData",
    "camera_parameters",
    "frame_paths",
    "generate_dataset",
    "generate_frame",
    "generate_split",
    "render_frame",
    "split_spec",
]


def frame_paths(root: Path, split: str, frame: FrameId) -> dict[str, Path]:
    city = frame.city
    gt = root / "gtFine" / split / city
    return {
        "image": root / "leftImg8bit" / split / city / f"{frame.stem}{IMAGE_SUFFIX}",
        "label_ids": gt / f"{frame.stem}{GT_LABEL_IDS_SUFFIX}",
        "instance_ids": gt / f"{frame.stem}{GT_INSTANCE_IDS_SUFFIX}",
        "color": gt / f"{frame.stem}{GT_COLOR_SUFFIX}",
        "disparity": root / "disparity" / split / city / f"{frame.stem}{DISPARITY_SUFFIX}",
        "camera": root / "camera" / split / city / f"{frame.stem}{CAMERA_SUFFIX}",
    }


def render_frame(split: str, frame: FrameId, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> FrameData:
    """The arrays of one frame (no files)."""
    scene_seed, texture_seed = frame_seed(seed, split, frame).spawn(2)
    scene, env = build_scene(size, np.random.default_rng(scene_seed))
    return render(scene, env, np.random.default_rng(texture_seed))


def generate_frame(root: Path, split: str, frame: FrameId, seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> None:
    """Write the six files of one frame under ``root``."""
    data = render_frame(split, frame, seed, size)
    paths = frame_paths(Path(root), split, frame)
    write_bytes_atomic(paths["image"], encode_png(data.image, PHOTO_PNG_LEVEL, up_filter=False))
    write_bytes_atomic(paths["label_ids"], encode_png(data.label_ids, LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["instance_ids"], encode_png(data.instance_ids, LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["color"], encode_png(np.take(PALETTE, data.label_ids, axis=0), LABEL_PNG_LEVEL))
    write_bytes_atomic(paths["disparity"], encode_png(data.disparity, DISPARITY_PNG_LEVEL))
    write_text_atomic(paths["camera"], json.dumps(camera_parameters(size), indent=4, sort_keys=True) + "\n")


def _generate_one(root: Path, split: str, seed: int, size: tuple[int, int], frame: FrameId) -> FrameId:
    generate_frame(root, split, frame, seed, size)
    return frame


def generate_split(
    root: Path,
    split: str,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    workers: int | None = None,
    progress: bool = False,
) -> list[FrameId]:
    """Generate frames 0..count-1 of ``split`` (train, val or test); returns their ids in order.

    ``workers`` processes share the frames (default: one per CPU); each frame is seeded from
    (seed, split, frame name) alone, so the files do not depend on the workers or on ``count``.
    """
    frames = split_spec(split, count).frames
    work = partial(_generate_one, Path(root), split, seed, (int(size[0]), int(size[1])))
    workers = (os.cpu_count() or 1) if workers is None else workers
    with tqdm(total=len(frames), desc=split, unit="frame", disable=not progress) as bar:
        if workers <= 1 or len(frames) <= 1:
            for frame in frames:
                work(frame)
                bar.update(1)
        else:
            with worker_pool(min(workers, len(frames))) as pool:
                for _ in pool.map(work, frames, chunksize=1):
                    bar.update(1)
    return frames


def generate_dataset(
    root: Path,
    test_count: int = DEFAULT_TEST_COUNT,
    train_count: int = DEFAULT_TRAIN_COUNT,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    workers: int | None = None,
    progress: bool = False,
) -> None:
    """The competition's data: ``val`` (the evaluation set, ``test_count`` frames) and ``train``."""
    generate_split(root, "val", test_count, seed, size, workers, progress)
    generate_split(root, "train", train_count, seed, size, workers, progress)
