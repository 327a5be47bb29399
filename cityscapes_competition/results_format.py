"""The participant's results, in the official Cityscapes result format.

``pixel/**/<stem>*.png``: one labelIds PNG per ground-truth image.
``instance/**/<stem>*.txt``: one text file per image, lines ``<mask path> <labelId> <confidence>``,
mask paths relative to the text file's folder; or ``instance/*.json``: COCO-style RLE predictions
whose ``image_id`` is the Cityscapes stem.

Nothing here follows a path out of the results folder.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SubmissionError
from .naming import FrameId, frame_id_from_stem, parse_frame_id

PIXEL_DIR = "pixel"
INSTANCE_DIR = "instance"
MAX_FILES_PER_TASK = 300_000  # 500 images x 255 masks fit comfortably
MAX_INSTANCES_PER_IMAGE = 255
MAX_TEXT_BYTES = 10 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024 * 1024
_IGNORED_NAMES = {"__MACOSX", ".DS_Store"}

_TXT_FIX = "Each line must be '<mask path relative to the txt file> <labelId 0..33> <confidence>'."


@dataclass(frozen=True)
class ResultsFolder:
    root: Path
    pixel_dir: Path | None
    instance_dir: Path | None


@dataclass(frozen=True)
class MaskFile:
    path: str  # normalized, lexically inside the results; every link in the results was checked


@dataclass(frozen=True)
class RleMask:
    rle: dict  # {"size": [h, w], "counts": ...}, checked to be decodable


@dataclass(frozen=True)
class InstanceLine:
    """One predicted instance before its mask is decoded."""

    mask: MaskFile | RleMask
    label_id: int
    confidence: float
    source: str  # where it came from, for messages: "file.txt line 3"


@dataclass
class InstanceResults:
    per_frame: dict[FrameId, list[InstanceLine]]
    warnings: list[str] = field(default_factory=list)


def locate_results(res_root: Path) -> ResultsFolder:
    """The results folder, looking through one wrapping folder (a zipped folder)."""
    if not res_root.is_dir():
        raise SubmissionError("the results folder does not exist", res_root)
    root = res_root
    if not _has_task_dir(root):
        entries = [e for e in root.iterdir() if e.name not in _IGNORED_NAMES and not e.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            root = entries[0]
    pixel, instance = root / PIXEL_DIR, root / INSTANCE_DIR
    for task_dir in (pixel, instance):
        if task_dir.is_symlink():
            raise SubmissionError("is a symbolic link; results must be plain folders and files", task_dir)
    return ResultsFolder(root, pixel if pixel.is_dir() else None, instance if instance.is_dir() else None)


def _has_task_dir(root: Path) -> bool:
    return (root / PIXEL_DIR).is_dir() or (root / INSTANCE_DIR).is_dir()


def index_task_files(files: list[str], suffix: str) -> tuple[dict[FrameId, list[Path]], list[Path]]:
    """Files ending in ``suffix`` by frame, and those that name no frame."""
    by_frame: dict[FrameId, list[Path]] = defaultdict(list)
    unnamed: list[Path] = []
    for path in files:
        if not path.endswith(suffix):
            continue
        frame_id = parse_frame_id(os.path.basename(path))
        if frame_id is None:
            unnamed.append(Path(path))
        else:
            by_frame[frame_id].append(Path(path))
    return by_frame, unnamed


def walk_files(task_dir: Path) -> list[str]:
    """Every file under ``task_dir``, in a stable order.

    Every symbolic link met (file or folder) must resolve inside the task folder; linked folders
    are not descended into (their targets are inside, so they are walked anyway). Hence any path
    that stays lexically inside the folder also stays inside it on disk.
    """
    real_root = os.path.realpath(task_dir)
    files: list[str] = []
    folders = [os.fspath(task_dir)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name in _IGNORED_NAMES:
                    continue
                if entry.is_symlink():
                    ensure_inside(entry.path, real_root, task_dir)
                    if os.path.isdir(entry.path):
                        continue
                elif entry.is_dir():
                    folders.append(entry.path)
                    continue
                files.append(entry.path)
                if len(files) > MAX_FILES_PER_TASK:
                    raise SubmissionError(
                        f"holds more than {MAX_FILES_PER_TASK} files",
                        task_dir,
                        "Upload only the results: one prediction per test image (and its masks).",
                    )
    return sorted(files)


def ensure_inside(path: str, real_root: str, shown_root: Path) -> None:
    """Refuse a link that resolves outside ``real_root``."""
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise SubmissionError(
            f"points outside the results folder {shown_root}",
            path,
            "Masks and predictions must be files inside the results folder; use relative paths without '..'.",
        )


def match_predictions(
    frames: list[FrameId], by_frame: dict[FrameId, list[Path]], task: str, kind: str
) -> dict[FrameId, Path]:
    """Exactly one file per ground-truth frame, as the official evaluation requires."""
    missing = [frame for frame in frames if not by_frame.get(frame)]
    if missing:
        shown = ", ".join(frame.stem for frame in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise SubmissionError(
            f"{len(missing)} of {len(frames)} test images have no {kind}: {shown}{more}",
            task,
            f"Add one {kind} per test image, named after it (e.g. {missing[0].stem}_leftImg8bit{_suffix(kind)}).",
        )
    matched = {}
    for frame in frames:
        candidates = by_frame[frame]
        if len(candidates) > 1:
            names = ", ".join(str(p) for p in sorted(candidates)[:3])
            raise SubmissionError(
                f"{len(candidates)} files are predictions for test image {frame.stem}: {names}",
                task,
                "Keep exactly one file per test image whose name starts with its '<city>_<seq>_<frame>' stem.",
            )
        matched[frame] = candidates[0]
    return matched


def _suffix(kind: str) -> str:
    return ".txt" if "txt" in kind else ".png"


def parse_instance_txt(path: Path, instance_root: Path) -> list[InstanceLine]:
    """The lines of one official instance txt. A repeated mask path keeps its last line, as officially.

    ``instance_root`` must have been walked with ``walk_files`` (which checks every link in it).
    """
    text = _read_text(path, MAX_TEXT_BYTES)
    root = os.path.normpath(instance_root)
    folder = os.fspath(path.parent)
    lines: dict[str, InstanceLine] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path.name} line {number}"
        if len(fields) != 3:
            raise SubmissionError(f"line {number} has {len(fields)} fields, not 3: {line[:80]!r}", path, _TXT_FIX)
        mask_path = _mask_path(path, folder, fields[0], number, root)
        label_id = _parse_label(fields[1], path, number)
        confidence = _parse_confidence(fields[2], path, number)
        lines[mask_path] = InstanceLine(MaskFile(mask_path), label_id, confidence, where)
    return list(lines.values())


def _mask_path(txt: Path, folder: str, relative: str, number: int, root: str) -> str:
    if os.path.isabs(relative) or relative.startswith("~"):
        raise SubmissionError(
            f"line {number}: the mask path {relative!r} is absolute", txt, "Mask paths are relative to the txt file."
        )
    joined = os.path.normpath(os.path.join(folder, relative))
    if not joined.startswith(root + os.sep):
        raise SubmissionError(
            f"line {number}: the mask path {relative!r} leaves the results folder",
            txt,
            "Masks must lie inside the instance folder; remove '..' from the path.",
        )
    return joined


def _parse_label(text: str, path: Path, number: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise SubmissionError(f"line {number}: labelId {text!r} is not a number", path, _TXT_FIX) from None
    if not value.is_integer() or not 0 <= value <= 33:
        raise SubmissionError(f"line {number}: labelId {text!r} is not a label id 0..33", path, _TXT_FIX)
    return int(value)


def _parse_confidence(text: str, path: Path, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SubmissionError(f"line {number}: confidence {text!r} is not a number", path, _TXT_FIX) from None
    if not math.isfinite(value):
        raise SubmissionError(f"line {number}: confidence {text!r} is not a finite number", path, _TXT_FIX)
    return value


def _read_text(path: Path, limit: int) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise SubmissionError(f"is {size} bytes, more than the {limit} allowed", path)
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError("is not UTF-8 text", path, _TXT_FIX) from None
    except OSError as exc:
        raise SubmissionError(f"cannot be read ({exc.strerror})", path) from None


def cap_instances(lines: list[InstanceLine], frame: FrameId) -> tuple[list[InstanceLine], str | None]:
    """At most MAX_INSTANCES_PER_IMAGE predictions per image: the highest-scoring ones."""
    if len(lines) <= MAX_INSTANCES_PER_IMAGE:
        return lines, None
    ranked = sorted(range(len(lines)), key=lambda i: -lines[i].confidence)  # stable: ties keep file order
    kept = sorted(ranked[:MAX_INSTANCES_PER_IMAGE])
    note = (
        f"{frame.stem}: {len(lines)} instance predictions, more than the {MAX_INSTANCES_PER_IMAGE} allowed; "
        f"only the {MAX_INSTANCES_PER_IMAGE} highest-scoring were evaluated"
    )
    return [lines[i] for i in kept], note


_JSON_FIX = (
    "The file must be a JSON list of {'image_id': '<city>_<seq>_<frame>', 'category_id': <labelId>, "
    "'segmentation': {'size': [height, width], 'counts': <RLE>}, 'score': <confidence>}."
)


def parse_rle_json(path: Path, frames: set[FrameId]) -> InstanceResults:
    """COCO-style RLE predictions; image ids are Cityscapes stems."""
    try:
        data = json.loads(_read_text(path, MAX_JSON_BYTES))
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"is not valid JSON ({exc.msg} at line {exc.lineno})", path, _JSON_FIX) from None
    if not isinstance(data, list):
        raise SubmissionError("holds a JSON object, not a list of predictions", path, _JSON_FIX)
    per_frame: dict[FrameId, list[InstanceLine]] = defaultdict(list)
    unknown: set[str] = set()
    for index, item in enumerate(data):
        frame, line = _rle_prediction(item, index, path)
        if frame in frames:
            per_frame[frame].append(line)
        else:
            unknown.add(frame.stem)
    warnings = []
    if unknown:
        warnings.append(
            f"{path.name}: predictions for {len(unknown)} image ids that are not test images were ignored "
            f"(e.g. {sorted(unknown)[0]})"
        )
    return InstanceResults(dict(per_frame), warnings)


def _rle_prediction(item: object, index: int, path: Path) -> tuple[FrameId, InstanceLine]:
    where = f"prediction {index}"
    if not isinstance(item, dict):
        raise SubmissionError(f"{where} is not an object", path, _JSON_FIX)
    missing = [key for key in ("image_id", "category_id", "segmentation", "score") if key not in item]
    if missing:
        raise SubmissionError(f"{where} lacks {', '.join(missing)}", path, _JSON_FIX)
    frame = frame_id_from_stem(str(item["image_id"]))
    if frame is None:
        raise SubmissionError(f"{where}: image_id {item['image_id']!r} is not a Cityscapes stem", path, _JSON_FIX)
    label = item["category_id"]
    if isinstance(label, bool) or not isinstance(label, int | float) or label != int(label) or not 0 <= label <= 33:
        raise SubmissionError(f"{where}: category_id {label!r} is not a label id 0..33", path, _JSON_FIX)
    score = item["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise SubmissionError(f"{where}: score {score!r} is not a finite number", path, _JSON_FIX)
    segmentation = item["segmentation"]
    if (
        not isinstance(segmentation, dict)
        or not isinstance(segmentation.get("size"), list)
        or len(segmentation["size"]) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in segmentation["size"])
        or not isinstance(segmentation.get("counts"), str | list)
    ):
        raise SubmissionError(f"{where}: segmentation is not an RLE {{'size', 'counts'}}", path, _JSON_FIX)
    return frame, InstanceLine(RleMask(segmentation), int(label), float(score), f"{path.name} {where}")
