"""The participant's results, in the official Cityscapes result format.

``pixel/**/<stem>*.png``: one labelIds PNG per ground-truth image.
``instance/**/<stem>*.txt``: one text file per image, lines ``<mask path> <labelId> <confidence>``,
mask paths relative to the text file's folder; or ``instance/*.json``: COCO-style RLE predictions
whose ``image_id`` is the Cityscapes stem.

Nothing here reads a file outside the results folder: every file is read through
``untrusted_files.read_untrusted``, contained in the resolved results folder whatever its name.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import SubmissionError, shown, shown_path
from ..core.naming import FrameId, parse_frame_id
from ..core.untrusted_files import SentFolder, UntrustedFileError, read_untrusted, resolve_inside, sent_folder

PIXEL_DIR = "pixel"
INSTANCE_DIR = "instance"
MAX_FILES_PER_TASK = 300_000  # 500 images x 255 masks fit comfortably
MAX_ENTRIES_PER_TASK = 2 * MAX_FILES_PER_TASK  # files and folders walked
MAX_INSTANCES_PER_IMAGE = 255
# 255 lines of ~100 bytes make 25 KB; the cap bounds what one file costs in memory while parsed (~25x).
MAX_TEXT_BYTES = 2 * 1024 * 1024
_IGNORED_NAMES = {"__MACOSX", ".DS_Store"}
# Names a task folder is misspelt as; the official layout is lower case, singular.
_TASK_NAME_SLIPS = {"pixel": PIXEL_DIR, "pixels": PIXEL_DIR, "instance": INSTANCE_DIR, "instances": INSTANCE_DIR}
_FIELD_SEPARATOR = re.compile(r"[ \t]+")
# A relative path whose parts all start with a letter, digit, '_' or '-' (as every writer names masks): joined
# to its normalized folder it is already normalized, which saves a third of parsing a 40-line txt.
_PLAIN_RELATIVE_PATH = re.compile(r"[\w-][\w.-]*(?:/[\w-][\w.-]*)*", re.ASCII)

_TXT_FIX = "Each line must be '<mask path relative to the txt file> <labelId 0..33> <confidence>'."


@dataclass(frozen=True)
class ResultsFolder:
    root: Path
    pixel_dir: Path | None
    instance_dir: Path | None
    sent: SentFolder  # the results folder as sent: every file read must lie inside it


@dataclass(frozen=True)
class MaskFile:
    path: str  # normalized as the official scripts do (abspath); its links are checked when it is read


@dataclass(frozen=True)
class RleMask:
    """A COCO run-length encoding; its runs are checked against pycocotools' decoder when it is decoded."""

    height: int
    width: int
    counts: str | np.ndarray  # compressed string, or the runs as uint32 (an uncompressed RLE)


@dataclass(frozen=True)
class InstanceLine:
    """One predicted instance before its mask is decoded."""

    mask: MaskFile | RleMask
    label_id: int
    confidence: float
    source: str  # where it came from, for messages: "file.txt line 3"


def locate_results(res_root: Path) -> ResultsFolder:
    """The results folder, looking through one wrapping folder (a zipped folder)."""
    if not res_root.is_dir():
        raise SubmissionError("the results folder does not exist", res_root)
    root = res_root
    for task_dir in (root / PIXEL_DIR, root / INSTANCE_DIR):
        if task_dir.is_symlink():
            raise SubmissionError("is a symbolic link; results must be plain folders and files", task_dir)
    if not _has_task_dir(root):
        entries = [e for e in _list_folder(root) if e.name not in _IGNORED_NAMES and not e.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            root = entries[0]
    _refuse_misspelt_task_folders(root)
    pixel, instance = root / PIXEL_DIR, root / INSTANCE_DIR
    for task_dir in (pixel, instance):
        if task_dir.is_symlink():  # before anything follows it: where it leads is not looked at
            raise SubmissionError("is a symbolic link; results must be plain folders and files", task_dir)
    return ResultsFolder(
        root, pixel if pixel.is_dir() else None, instance if instance.is_dir() else None, sent_folder(res_root)
    )


def _has_task_dir(root: Path) -> bool:
    return (root / PIXEL_DIR).is_dir() or (root / INSTANCE_DIR).is_dir()


def _list_folder(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as exc:
        raise _unreadable_folder(folder, exc) from None


def _refuse_misspelt_task_folders(root: Path) -> None:
    """'PIXEL/' or 'instances/' would silently score 0 for that task: say so instead."""
    for entry in _list_folder(root):
        meant = _TASK_NAME_SLIPS.get(entry.name.lower())
        if meant is not None and entry.name != meant:
            raise SubmissionError(
                f"is named '{shown_path(entry.name)}'; the results folders are named exactly '{PIXEL_DIR}' and "
                f"'{INSTANCE_DIR}' (lower case)",
                entry,
                f"Rename it to '{meant}'.",
            )


def _unreadable_folder(folder: Path | str, exc: OSError) -> SubmissionError:
    return SubmissionError(
        f"cannot be read ({exc.strerror or type(exc).__name__})",
        folder,
        "Make every folder of the results readable (the scorer lists them) and upload again.",
    )


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


def walk_files(task_dir: Path, sent: SentFolder) -> list[str]:
    """Every file under ``task_dir`` (links included), in a stable order.

    Nothing is opened here: every file is contained in the results folder when it is read
    (``read_untrusted``), whatever its name. A link is listed as a file unless it resolves to a folder
    inside the results (walked anyway, so not descended into): where a link outside leads is never
    looked at, so that no answer depends on what exists there.
    """
    files: list[str] = []
    folders, entries_seen = [os.fspath(task_dir)], 0
    while folders:
        current = folders.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    entries_seen += 1
                    if entries_seen > MAX_ENTRIES_PER_TASK or len(files) > MAX_FILES_PER_TASK:
                        raise _too_many_files(task_dir)
                    if entry.name in _IGNORED_NAMES:
                        continue
                    if entry.is_symlink():
                        if not _links_to_inner_folder(entry.path, sent):
                            files.append(entry.path)
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    else:
                        files.append(entry.path)
        except OSError as exc:
            raise _unreadable_folder(current, exc) from None
    return sorted(files)


def _links_to_inner_folder(link: str, folder: SentFolder) -> bool:
    try:
        return os.path.isdir(resolve_inside(link, folder))
    except UntrustedFileError:
        return False  # listed as a file: refused when read, with the same message wherever it leads


def _too_many_files(task_dir: Path) -> SubmissionError:
    return SubmissionError(
        f"holds more than {MAX_FILES_PER_TASK} files",
        task_dir,
        "Upload only the results: one prediction per test image (and its masks).",
    )


def match_predictions(
    frames: list[FrameId], by_frame: dict[FrameId, list[Path]], task: str, kind: str
) -> dict[FrameId, Path]:
    """Exactly one file per ground-truth frame, as the official evaluation requires."""
    missing = [frame for frame in frames if not by_frame.get(frame)]
    if missing:
        shown_frames = ", ".join(frame.stem for frame in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise SubmissionError(
            f"{len(missing)} of {len(frames)} test images have no {kind}: {shown_frames}{more}",
            task,
            f"Add one {kind} per test image, named after it (e.g. {missing[0].stem}_leftImg8bit{_suffix(kind)}).",
        )
    matched = {}
    for frame in frames:
        candidates = by_frame[frame]
        if len(candidates) > 1:
            names = ", ".join(shown_path(p) for p in sorted(candidates)[:3])
            raise SubmissionError(
                f"{len(candidates)} files are predictions for test image {frame.stem}: {names}",
                task,
                "Keep exactly one file per test image whose name starts with its '<city>_<seq>_<frame>' stem.",
            )
        matched[frame] = candidates[0]
    return matched


def _suffix(kind: str) -> str:
    return ".txt" if "txt" in kind else ".png"


def parse_instance_txt(path: Path, results_root: Path, sent: SentFolder | None = None) -> list[InstanceLine]:
    """The lines of one official instance txt. A repeated mask path keeps its last line, as officially.

    Mask paths are relative to the txt's folder and may name any file of ``results_root`` (the
    official scripts accept ``../masks/x.png``); lines are split as text files are read (\\n, \\r\\n, \\r).
    ``sent``: ``results_root`` as ``sent_folder`` resolved it, when the caller reads many txt files.
    """
    text = read_result_text(path, MAX_TEXT_BYTES, sent or sent_folder(results_root), _TXT_FIX)
    inside_root = os.path.abspath(results_root).rstrip(os.sep) + os.sep
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    lines: dict[str, InstanceLine] = {}
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        fields = _FIELD_SEPARATOR.split(line.strip(" \t"))
        if fields == [""]:
            continue
        where = f"{name} line {number}"
        if len(fields) != 3:
            raise SubmissionError(f"line {number} has {len(fields)} fields, not 3: {shown(line)}", path, _TXT_FIX)
        mask_path = _mask_path(path, folder, fields[0], number, inside_root)
        label_id = _parse_label(fields[1], path, number)
        confidence = _parse_confidence(fields[2], path, number)
        lines[mask_path] = InstanceLine(MaskFile(mask_path), label_id, confidence, where)
    return list(lines.values())


def _mask_path(txt: Path, folder: str, relative: str, number: int, inside_root: str) -> str:
    """The mask's absolute path; ``inside_root``: the results folder's path and a separator."""
    if os.sep == "/" and _PLAIN_RELATIVE_PATH.fullmatch(relative):  # relative, no NUL, '.', '..' or empty part
        joined = f"{folder}/{relative}" if folder != "/" else f"/{relative}"  # what normpath would give
    else:
        if "\x00" in relative:
            message = f"line {number}: the mask path {shown(relative)} holds a NUL character"
            raise SubmissionError(message, txt, _TXT_FIX)
        if os.path.isabs(relative):
            fix = "Mask paths are relative to the txt file."
            raise SubmissionError(f"line {number}: the mask path {shown(relative)} is absolute", txt, fix)
        joined = os.path.normpath(os.path.join(folder, relative))  # officially abspath(join(dirname(txt), path))
    if not joined.startswith(inside_root):
        raise SubmissionError(
            f"line {number}: the mask path {shown(relative)} leaves the results folder",
            txt,
            "Masks must lie inside the results folder; remove the extra '..' from the path.",
        )
    return joined


def _parse_label(text: str, path: Path, number: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise SubmissionError(f"line {number}: labelId {shown(text)} is not a number", path, _TXT_FIX) from None
    if not value.is_integer() or not 0 <= value <= 33:
        raise SubmissionError(f"line {number}: labelId {shown(text)} is not a label id 0..33", path, _TXT_FIX)
    return int(value)


def _parse_confidence(text: str, path: Path, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SubmissionError(f"line {number}: confidence {shown(text)} is not a number", path, _TXT_FIX) from None
    if not math.isfinite(value):
        raise SubmissionError(f"line {number}: confidence {shown(text)} is not a finite number", path, _TXT_FIX)
    return value


_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"


def read_result_bytes(path: Path | str, limit: int, folder: SentFolder) -> bytes:
    """A result file's bytes, contained in the results folder; one message per problem."""
    try:
        return read_untrusted(path, limit, folder)
    except UntrustedFileError as exc:
        raise SubmissionError(str(exc), path, "Results must be plain files inside the results folder.") from None


def read_result_text(path: Path | str, limit: int, folder: SentFolder, fix: str) -> str:
    """A result file as UTF-8 text (a leading byte-order mark, as Windows editors write, is dropped)."""
    data = read_result_bytes(path, limit, folder)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    refuse_utf16_or_32(data[:4], path, fix)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"is not UTF-8 text (byte {exc.start})", path, fix) from None


def refuse_utf16_or_32(head: bytes, path: Path | str, fix: str) -> None:
    """A file starting with a UTF-16/32 byte-order mark or NUL bytes is text in the wrong encoding."""
    if head.startswith(_UTF16_32_BOMS) or (len(head) == 4 and b"\x00" in head):
        raise SubmissionError("is UTF-16 or UTF-32 text; it must be UTF-8", path, f"Save it as UTF-8. {fix}")


def cap_instances(lines: list[InstanceLine], frame: FrameId) -> tuple[list[InstanceLine], str | None]:
    """At most MAX_INSTANCES_PER_IMAGE predictions per image: the highest-scoring ones."""
    if len(lines) <= MAX_INSTANCES_PER_IMAGE:
        return lines, None
    ranked = sorted(range(len(lines)), key=lambda i: -lines[i].confidence)  # stable: ties keep file order
    kept = sorted(ranked[:MAX_INSTANCES_PER_IMAGE])
    return [lines[i] for i in kept], cap_note(frame, len(lines))


def cap_note(frame: FrameId, count: int) -> str:
    return (
        f"{frame.stem}: {count} instance predictions, more than the {MAX_INSTANCES_PER_IMAGE} allowed; "
        f"only the {MAX_INSTANCES_PER_IMAGE} highest-scoring were evaluated"
    )
