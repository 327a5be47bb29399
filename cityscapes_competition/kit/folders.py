"""Where the checker writes (its output folder, beside the submission) and what it reads a zipped
submission into: the zip checked as untrusted, member by member, before anything is unpacked."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.atomic import write_text_atomic
from ..core.errors import SubmissionError, shown

# The .keras archive's checks, reused: a member's name (NUL, absolute, '..', link), and its bounded copy.
from ..ingestion.model_files import (
    MAX_COMPRESSION_RATIO,
    MAX_ENTRIES,
    MAX_MODEL_BYTES,
    RATIO_FLOOR_BYTES,
    check_member_name,
    copy_member,
)

if TYPE_CHECKING:
    pass
from .layout import OUTPUT_MARKER, OUTPUT_SUFFIX, OVERLAYS_DIR, RESULTS_DIR, SCORES_DIR, UNPACKED_DIR, CheckUsageError


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
