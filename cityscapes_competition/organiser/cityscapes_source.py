"""A Cityscapes download as the competition's source: its folders found (archives unpacked as they come, or
re-rooted), every file of the test split listed and checked to be inside it, frames matched across
gtFine, leftImg8bit, disparity and camera, and the sample frames picked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ReferenceDataError
from ..core.naming import (
    CAMERA_SUFFIX,
    DISPARITY_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    IMAGE_SUFFIX,
    FrameId,
    parse_frame_id,
)

SPLIT = "val"  # the competition's test set is the val split of Cityscapes


GT, IMAGES, DISPARITY, CAMERA = "gtFine", "leftImg8bit", "disparity", "camera"
ARCHIVES = {
    GT: "gtFine_trainvaltest.zip",
    IMAGES: "leftImg8bit_trainvaltest.zip",
    DISPARITY: "disparity_trainvaltest.zip",
    CAMERA: "camera_trainvaltest.zip",
}
REQUIRED_FILES = ((GT, GT_LABEL_IDS_SUFFIX), (GT, GT_INSTANCE_IDS_SUFFIX), (IMAGES, IMAGE_SUFFIX))
DISTANCE_FILES = ((DISPARITY, DISPARITY_SUFFIX), (CAMERA, CAMERA_SUFFIX))
_FRAME_FILES = (*REQUIRED_FILES, *DISTANCE_FILES)
_SHOWN_MISSING = 5

# (city folder, file name) -> path of the file in the source, not yet checked for links
Listing = dict[tuple[str, str], Path]


@dataclass(frozen=True)
class SourceFile:
    relative: Path  # where it goes: <kind>/val/<city>/<name>, in reference_data/ or input_data/
    real: Path  # the file itself in the source, links resolved


@dataclass(frozen=True)
class SourceFrame:
    frame: FrameId
    reference: tuple[SourceFile, ...]
    image: SourceFile


@dataclass(frozen=True)
class Source:
    root: Path  # resolved
    description: str
    frames: tuple[SourceFrame, ...]
    has_distances: bool
    warnings: tuple[str, ...]


# ------------------------------------------------------------------------------------ the source


def scan_cityscapes(root: Path) -> Source:
    """The val frames of a Cityscapes root (zips unpacked into it, or each into its own sub-folder)."""
    root_real = _source_root(root)
    warnings: list[str] = []
    folders = {kind: _split_folder(root, root_real, kind, warnings) for kind in ARCHIVES}
    _require_folders(root, folders)
    listings = {kind: _list_split(folder, root_real) for kind, folder in folders.items() if folder is not None}
    frames = _frame_ids(root, listings)
    has_distances = DISPARITY in listings and CAMERA in listings
    if not has_distances:
        absent = " and ".join(f"{kind}/{SPLIT}" for kind in (DISPARITY, CAMERA) if kind not in listings)
        warnings.append(
            f"{root}: no {absent}, so AP100m and AP50m cannot be computed and the leaderboard will lack them. "
            f"Unzip {' and '.join(ARCHIVES[k] for k in (DISPARITY, CAMERA) if k not in listings)} into {root} "
            "to score them."
        )
    wanted = _FRAME_FILES if has_distances else REQUIRED_FILES
    _require_files(root, frames, listings, wanted)
    source_frames = tuple(_source_frame(frame, listings, root_real, has_distances) for frame in frames)
    description = f"Cityscapes {SPLIT} split in {root_real}"
    return Source(root_real, description, source_frames, has_distances, tuple(warnings))


def _source_root(root: Path) -> Path:
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ReferenceDataError(
            what, root, f"Pass the folder into which the Cityscapes zips ({ARCHIVES[GT]}, ...) were unpacked."
        )
    return root.resolve()


def _split_folder(root: Path, root_real: Path, kind: str, warnings: list[str]) -> Path | None:
    """``<kind>/val`` directly under ``root`` or one level down; None if the kind is absent."""
    kind_folder = root / kind
    if not kind_folder.is_dir():
        candidates = [c / kind for c in sorted(root.iterdir()) if c.is_dir() and (c / kind).is_dir()]
        if len(candidates) > 1:
            raise ReferenceDataError(
                f"holds {kind}/ in several sub-folders ({', '.join(str(c) for c in candidates)})",
                root,
                f"Keep one copy of {ARCHIVES[kind]} unpacked.",
            )
        if not candidates:
            return None
        kind_folder = candidates[0]
    _inside(kind_folder, root_real)
    split_folder = kind_folder / SPLIT
    if split_folder.is_dir():
        _inside(split_folder, root_real)
        return split_folder
    if kind in (GT, IMAGES):
        raise ReferenceDataError(
            f"has no {SPLIT}/ folder", kind_folder, f"Unzip {ARCHIVES[kind]} completely; the test set is its val split."
        )
    warnings.append(f"{kind_folder}: has no {SPLIT}/ folder, so it is not used")
    return None


def _require_folders(root: Path, folders: dict[str, Path | None]) -> None:
    missing = [kind for kind in (GT, IMAGES) if folders[kind] is None]
    if missing:
        where = " or ".join(f"{root / kind / SPLIT}" for kind in missing)
        hint = ""
        if root.name in ARCHIVES or (root / SPLIT).is_dir():
            hint = f" It looks like a folder inside the download: pass the folder that holds {GT}/ instead."
        raise ReferenceDataError(
            f"is not a Cityscapes download: no {where} (also looked one level down, "
            f"as in {root / 'gtFine_trainvaltest' / GT / SPLIT})",
            root,
            f"Unzip {' and '.join(ARCHIVES[kind] for kind in missing)} into it.{hint}",
        )


def _inside(path: Path, root_real: Path) -> Path:
    """``path`` with its links resolved; a link leading out of the source root is refused."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop
        raise ReferenceDataError(
            f"is a link that cannot be followed ({exc})", path, "Replace it with the file."
        ) from None
    if not real.is_relative_to(root_real):
        raise ReferenceDataError(
            f"is a link to {real}, outside the source folder {root_real}",
            path,
            "Links are never followed out of the source: copy the files into it, or pass the folder they are in.",
        )
    return real


def _list_split(split_folder: Path, root_real: Path) -> Listing:
    """The Cityscapes-named files in ``<split>/<city>/``, by (city, name)."""
    listing: Listing = {}
    for city_folder in sorted(split_folder.iterdir()):
        if city_folder.is_symlink():
            _inside(city_folder, root_real)
        if not city_folder.is_dir():
            continue
        for path in city_folder.iterdir():
            frame = parse_frame_id(path.name)
            if frame is None:
                continue
            if frame.city != city_folder.name:
                raise ReferenceDataError(
                    f"is named for city {frame.city!r} but lies in the folder of {city_folder.name!r}",
                    path,
                    f"Move it to {split_folder / frame.city}.",
                )
            listing[city_folder.name, path.name] = path
    return listing


def _frame_ids(root: Path, listings: dict[str, Listing]) -> list[FrameId]:
    """Every frame that has any ground truth or image file."""
    frames: set[FrameId] = set()
    for kind, suffix in REQUIRED_FILES:
        for _, name in listings[kind]:
            frame = parse_frame_id(name)
            if frame is not None and name == frame.stem + suffix:
                frames.add(frame)
    if not frames:
        raise ReferenceDataError(
            f"holds no {SPLIT} frames (no *{GT_LABEL_IDS_SUFFIX} or *{IMAGE_SUFFIX} in {GT}/{SPLIT}/<city>/ "
            f"or {IMAGES}/{SPLIT}/<city>/)",
            root,
            f"Unzip {ARCHIVES[GT]} and {ARCHIVES[IMAGES]} completely into it.",
        )
    return sorted(frames)


def _require_files(
    root: Path, frames: list[FrameId], listings: dict[str, Listing], wanted: Sequence[tuple[str, str]]
) -> None:
    """Refuse if a frame lacks any needed file; the message lists the first few and how many."""
    missing: list[str] = []
    short_frames: set[FrameId] = set()
    kinds: set[str] = set()
    for frame in frames:
        for kind, suffix in wanted:
            name = frame.stem + suffix
            if (frame.city, name) not in listings[kind]:
                missing.append(f"{kind}/{SPLIT}/{frame.city}/{name}")
                short_frames.add(frame)
                kinds.add(kind)
    if not missing:
        return
    shown = ", ".join(missing[:_SHOWN_MISSING]) + (", ..." if len(missing) > _SHOWN_MISSING else "")
    fix = f"Unzip {', '.join(ARCHIVES[k] for k in ARCHIVES if k in kinds)} completely into it"
    optional = [k for k in (DISPARITY, CAMERA) if k in kinds]
    if optional:
        fix += f", or remove its {' and '.join(optional)} folder(s) to build without AP100m and AP50m"
    raise ReferenceDataError(
        f"{len(short_frames)} of {len(frames)} {SPLIT} frames lack files ({len(missing)} missing: {shown})",
        root,
        fix + ".",
    )


def _source_frame(frame: FrameId, listings: dict[str, Listing], root_real: Path, has_distances: bool) -> SourceFrame:
    def file(kind: str, suffix: str) -> SourceFile:
        name = frame.stem + suffix
        real = _inside(listings[kind][frame.city, name], root_real)
        if not real.is_file():
            raise ReferenceDataError("is not a file", listings[kind][frame.city, name], "Replace it with the file.")
        return SourceFile(Path(kind, SPLIT, frame.city, name), real)

    reference = [file(kind, suffix) for kind, suffix in REQUIRED_FILES if kind == GT]
    if has_distances:
        reference += [file(kind, suffix) for kind, suffix in DISTANCE_FILES]
    return SourceFrame(frame, tuple(reference), file(IMAGES, IMAGE_SUFFIX))
