"""Cityscapes file naming: ``<city>_<seq6>_<frame6>_<suffix>``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ReferenceDataError

_STEM = re.compile(r"^(?P<city>[^_/\\]+)_(?P<sequence>\d{6})_(?P<frame>\d{6})(?P<rest>.*)$")

GT_LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
GT_INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
GT_COLOR_SUFFIX = "_gtFine_color.png"
GT_POLYGONS_SUFFIX = "_gtFine_polygons.json"
IMAGE_SUFFIX = "_leftImg8bit.png"
DISPARITY_SUFFIX = "_disparity.png"
CAMERA_SUFFIX = "_camera.json"


@dataclass(frozen=True, order=True)
class FrameId:
    """One frame of the dataset, e.g. ``frankfurt_000000_000294``."""

    city: str
    sequence: str
    frame: str

    @property
    def stem(self) -> str:
        return f"{self.city}_{self.sequence}_{self.frame}"

    def __str__(self) -> str:
        return self.stem


def parse_frame_id(file_name: str) -> FrameId | None:
    """The frame a file name belongs to, or None if it does not follow Cityscapes naming."""
    match = _STEM.match(Path(file_name).name)
    if match is None:
        return None
    return FrameId(match["city"], match["sequence"], match["frame"])


def frame_id_from_stem(stem: str) -> FrameId | None:
    """A bare stem such as ``frankfurt_000000_000294`` (nothing after it)."""
    frame = parse_frame_id(stem)
    if frame is None or frame.stem != stem:
        return None
    return frame


def index_by_frame(root: Path, suffix: str, fix: str) -> dict[FrameId, Path]:
    """Every file named ``<stem><suffix>`` under ``root``, by frame; a frame found twice is an organiser error."""
    index: dict[FrameId, Path] = {}
    for path in root.rglob("*" + suffix):
        frame_id = parse_frame_id(path.name)
        if frame_id is None or path.name != frame_id.stem + suffix:
            continue
        if frame_id in index:
            raise ReferenceDataError(f"appears twice (also {index[frame_id]})", path, fix)
        index[frame_id] = path
    return index


def pick_samples(frames: Sequence[FrameId], count: int) -> list[FrameId]:
    """``count`` frames taken in turn from each city (sorted), so the sample spans the cities: the sample data
    of the starting kit, chosen the same way by the data builder and by the checker."""
    by_city: dict[str, list[FrameId]] = {}
    for frame in sorted(frames):
        by_city.setdefault(frame.city, []).append(frame)
    picked: list[FrameId] = []
    depth = 0
    while len(picked) < min(count, len(frames)):
        picked += [city[depth] for city in by_city.values() if depth < len(city)][: count - len(picked)]
        depth += 1
    return sorted(picked)
