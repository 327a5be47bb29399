"""The organiser's ground truth, in the Cityscapes dataset layout, found by recursive search."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ReferenceDataError
from ..core.labels import INSTANCE_CLASS_IDS, NUM_LABEL_IDS
from ..core.naming import (
    CAMERA_SUFFIX,
    DISPARITY_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    FrameId,
    index_by_frame,
)
from ..png.png_io import PngReadError, Size, decode_single_channel, decode_top_rows

GROUND_TRUTH_FIX = "Regenerate the reference data or check the Cityscapes download it was built from."


@dataclass(frozen=True)
class Camera:
    baseline: float  # metres
    fx: float  # pixels


@dataclass(frozen=True)
class GroundTruthFrame:
    frame: FrameId
    label_ids: Path
    instance_ids: Path
    disparity: Path | None = None
    camera: Path | None = None

    @property
    def has_distances(self) -> bool:
        return self.disparity is not None and self.camera is not None


# instanceIds values from here on are instance classes (24..33), their groups and their instances.
FIRST_INSTANCE_CLASS_ID = min(INSTANCE_CLASS_IDS)


@dataclass
class InstanceClassPixels:
    """The pixels of instance classes: all that the iIoU, AP and distance computations look at."""

    index: np.ndarray  # flat pixel indices
    value: np.ndarray  # instanceIds values there
    counts: np.ndarray  # pixels per instanceIds value (index = value)


@dataclass
class GroundTruthImage:
    """The decoded ground truth of one frame."""

    label_ids: np.ndarray  # uint8, label ids 0..33
    instance_ids: np.ndarray  # uint16, labelId*1000+k for instances, else the label id
    instance_pixels: InstanceClassPixels = field(repr=False)
    disparity: np.ndarray | None = None  # uint16 raw disparity, its rows down to the lowest instance-class pixel
    camera: Camera | None = None

    @property
    def size(self) -> Size:
        height, width = self.label_ids.shape
        return width, height


def discover_ground_truth(ref_root: Path) -> list[GroundTruthFrame]:
    """Every ``*_gtFine_labelIds.png`` under ``ref_root``, with its companions, in frame order."""
    if not ref_root.is_dir():
        raise ReferenceDataError("the reference data folder does not exist", ref_root, GROUND_TRUTH_FIX)
    label_files = index_by_frame(ref_root, GT_LABEL_IDS_SUFFIX, GROUND_TRUTH_FIX)
    if not label_files:
        raise ReferenceDataError(
            f"holds no ground truth (no file named *{GT_LABEL_IDS_SUFFIX} in any sub-folder)",
            ref_root,
            GROUND_TRUTH_FIX,
        )
    disparities = index_by_frame(ref_root, DISPARITY_SUFFIX, GROUND_TRUTH_FIX)
    cameras = index_by_frame(ref_root, CAMERA_SUFFIX, GROUND_TRUTH_FIX)
    frames = []
    for frame_id, label_path in sorted(label_files.items()):
        instance_path = label_path.with_name(frame_id.stem + GT_INSTANCE_IDS_SUFFIX)
        if not instance_path.is_file():
            raise ReferenceDataError(f"is missing; it belongs with {label_path.name}", instance_path, GROUND_TRUTH_FIX)
        frames.append(
            GroundTruthFrame(frame_id, label_path, instance_path, disparities.get(frame_id), cameras.get(frame_id))
        )
    return frames


def decode_ground_truth(frame: GroundTruthFrame, label_bytes: bytes, instance_bytes: bytes) -> GroundTruthImage:
    """Decode and check a frame's labelIds and instanceIds, given the files' bytes (or those of the reference
    index's copies of them)."""
    label_ids = _decode(label_bytes, frame.label_ids, None)
    if label_ids.size and (int(label_ids.max()) >= NUM_LABEL_IDS or _has_negative(label_ids)):
        raise ReferenceDataError(
            f"holds label ids {int(label_ids.min())}..{int(label_ids.max())}; ids are 0..33",
            frame.label_ids,
            GROUND_TRUTH_FIX,
        )
    label_ids = label_ids.astype(np.uint8, copy=False)
    size = (label_ids.shape[1], label_ids.shape[0])
    instance_ids = _decode(instance_bytes, frame.instance_ids, size)
    instance_pixels = _instance_class_pixels(instance_ids, frame.instance_ids)
    return GroundTruthImage(label_ids, instance_ids.astype(np.uint16, copy=False), instance_pixels)


def add_disparity(image: GroundTruthImage, frame: GroundTruthFrame) -> None:
    """Decode the frame's disparity and camera, if it has them: the disparity's rows down to the lowest
    instance-class pixel, all the distances read (``distances.region_distances``)."""
    if frame.disparity is not None and frame.camera is not None:
        width = image.size[0]
        rows = int(image.instance_pixels.index[-1]) // width + 1 if len(image.instance_pixels.index) else 0
        try:
            disparity = decode_top_rows(read_file(frame.disparity), rows, image.size)
        except PngReadError as exc:
            raise ReferenceDataError(str(exc), frame.disparity, GROUND_TRUTH_FIX) from None
        image.disparity = disparity.astype(np.uint16, copy=False)
        image.camera = read_camera(frame.camera)


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReferenceDataError(f"cannot be read ({exc.strerror})", path, GROUND_TRUTH_FIX) from None


def _instance_class_pixels(instance_ids: np.ndarray, path: Path) -> InstanceClassPixels:
    """Select the instance-class pixels once, checking every value names a label 0..33."""
    flat = instance_ids.ravel()
    if _has_negative(flat):
        raise ReferenceDataError(_bad_instance_value(int(flat.min())), path, GROUND_TRUTH_FIX)
    index = np.flatnonzero(flat >= FIRST_INSTANCE_CLASS_ID)
    value = flat[index].astype(np.int64)
    if flat.dtype.itemsize > 2 and len(value) and int(value.max()) >= NUM_LABEL_IDS * 1000:
        # before bincount sizes by it
        raise ReferenceDataError(_bad_instance_value(int(value.max())), path, GROUND_TRUTH_FIX)
    counts = np.bincount(value)
    if len(counts) > NUM_LABEL_IDS * 1000:  # the largest value is len(counts) - 1
        raise ReferenceDataError(_bad_instance_value(len(counts) - 1), path, GROUND_TRUTH_FIX)
    present = np.flatnonzero(counts)
    bad = present[(present >= NUM_LABEL_IDS) & (present < 1000)]
    if len(bad):
        raise ReferenceDataError(_bad_instance_value(int(bad[0])), path, GROUND_TRUTH_FIX)
    return InstanceClassPixels(index, value, counts)


def _has_negative(values: np.ndarray) -> bool:
    """Only a signed image (Pillow's 32-bit mode) can hold one: skips a pass over uint8/uint16 images."""
    return values.dtype.kind == "i" and values.size > 0 and int(values.min()) < 0


def _bad_instance_value(value: int) -> str:
    return f"holds value {value}, which is neither a label id 0..33 nor labelId*1000+k"


def read_camera(path: Path) -> Camera:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        camera = Camera(float(data["extrinsic"]["baseline"]), float(data["intrinsic"]["fx"]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ReferenceDataError(
            f"is not a Cityscapes camera file with extrinsic.baseline and intrinsic.fx ({exc})", path, GROUND_TRUTH_FIX
        ) from None
    if not (math.isfinite(camera.baseline) and math.isfinite(camera.fx) and camera.baseline > 0 and camera.fx > 0):
        raise ReferenceDataError("has a baseline or fx that is not a positive number", path, GROUND_TRUTH_FIX)
    return camera


def _decode(data: bytes, path: Path, size: Size | None) -> np.ndarray:
    try:
        return decode_single_channel(data, size, trusted=True)  # the organiser's files
    except PngReadError as exc:
        raise ReferenceDataError(str(exc), path, GROUND_TRUTH_FIX) from None
