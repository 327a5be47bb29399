"""Finding the participant's one Keras model file in a submission folder, and checking it is a whole HDF5 file.

Nothing here imports TensorFlow or Keras: only the file system and h5py (which reads the file's structure,
never code). Symbolic links are not followed while searching, and a model file that is a link must resolve
inside the submission folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import SubmissionError

MODEL_SUFFIXES = (".h5", ".hdf5")
MAX_MODEL_BYTES = 2 * 1024**3
MAX_ENTRIES = 100_000  # files and folders searched before giving up on a submission
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
MAX_LFS_POINTER_BYTES = 1024
_IGNORED_NAMES = frozenset({"__MACOSX", ".DS_Store"})

_SAVE_FIX = 'Save the whole model with model.save("model.h5") (Keras 3 or tf.keras 2.x) and upload that file.'
_ONE_MODEL_FIX = (
    f"Put exactly one model file ({' or '.join(MODEL_SUFFIXES)}) in the submission, next to the 'metadata' file."
)
_LFS_FIX = (
    "Your repository stores the model with Git LFS and the archive holds only the pointer: run 'git lfs pull' "
    "before archiving, attach the real model file to a GitHub release, or upload the zip of your folder directly."
)


def find_model_file(submission: Path) -> Path:
    """The one ``.h5``/``.hdf5`` file under ``submission``, checked to be a readable, complete HDF5 file."""
    root = _real_folder(submission)
    candidates = _model_candidates(root)
    if not candidates:
        raise SubmissionError(
            f"holds no model file (accepted suffixes: {', '.join(MODEL_SUFFIXES)}, any case; hidden files and "
            "__MACOSX are ignored)",
            submission,
            _ONE_MODEL_FIX,
        )
    if len(candidates) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in candidates)
        raise SubmissionError(f"holds {len(candidates)} model files: {names}", submission, _ONE_MODEL_FIX)
    model = candidates[0]
    _check_inside(model, root)
    check_model_file(model)
    return model


def check_model_file(path: Path) -> None:
    """Refuse an empty, oversized, Git LFS pointer, non-HDF5 or truncated file, with one message each."""
    size = path.stat().st_size
    if size == 0:
        raise SubmissionError("is empty (0 bytes)", path, _SAVE_FIX)
    if size > MAX_MODEL_BYTES:
        raise SubmissionError(
            f"is {size / 1024**3:.1f} GB; the limit for a model file is {MAX_MODEL_BYTES / 1024**3:.0f} GB",
            path,
            "Use a smaller model (fewer or narrower layers), or save it in float16.",
        )
    head = _read_at(path, 0, MAX_LFS_POINTER_BYTES)
    if size <= MAX_LFS_POINTER_BYTES and head.startswith(LFS_POINTER_PREFIX):
        raise SubmissionError("is a Git LFS pointer file, not the model itself", path, _LFS_FIX)
    if hdf5_signature_offset(path, size) is None:
        raise SubmissionError(f"is not an HDF5 file ({_guess_kind(head)})", path, _SAVE_FIX)
    _check_reads(path)


def hdf5_signature_offset(path: Path, size: int | None = None) -> int | None:
    """Where the HDF5 superblock signature is: offset 0, 512, 1024, 2048... (a user block may precede it)."""
    size = path.stat().st_size if size is None else size
    offset = 0
    with path.open("rb") as stream:
        while offset + len(HDF5_SIGNATURE) <= size:
            stream.seek(offset)
            if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return offset
            offset = 512 if offset == 0 else offset * 2
    return None


def _real_folder(submission: Path) -> Path:
    if not submission.is_dir():
        raise SubmissionError("the submission folder does not exist", submission)
    return submission.resolve()


def _model_candidates(root: Path) -> list[Path]:
    """Model files under ``root``, without following linked folders; a link and its target count once."""
    found: dict[Path, Path] = {}
    seen = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        seen += len(dirnames) + len(filenames)
        if seen > MAX_ENTRIES:
            raise SubmissionError(
                f"holds more than {MAX_ENTRIES} files and folders", root, "Submit only the model and 'metadata'."
            )
        linked_folders = [d for d in dirnames if os.path.islink(os.path.join(folder, d))]  # never descended
        for name in sorted([*filenames, *linked_folders]):
            if _ignored(name) or not name.lower().endswith(MODEL_SUFFIXES):
                continue
            path = Path(folder) / name
            found.setdefault(_target(path), path)
    return sorted(found.values())


def _ignored(name: str) -> bool:
    return name in _IGNORED_NAMES or name.startswith(".")


def _target(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):  # a link loop
        return path


def _check_inside(path: Path, root: Path) -> None:
    """A link must resolve inside the submission (checked before its target is looked at); a regular file."""
    target = _target(path)
    if path.is_symlink() and not target.is_relative_to(root):
        raise SubmissionError(
            "is a symbolic link pointing outside the submission folder",
            path,
            "Upload the model file itself, not a link to it.",
        )
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        regular = False
    if not regular:
        raise SubmissionError("is not a regular file", path, "Upload the model file itself.")


def _read_at(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read(count)


def _guess_kind(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return 'it is a zip archive, perhaps a Keras 3 ".keras" file renamed'
    if head.startswith(b"\x89PNG"):
        return "it is a PNG image"
    if head.startswith(b"\x80") or head.startswith(b"\x93NUMPY"):
        return "it looks like a pickle or NumPy file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it looks like JSON text, perhaps only the model's configuration"
    return "no HDF5 signature at offset 0, 512, 1024, 2048..."


def _check_reads(path: Path) -> None:
    """The whole file read once by h5py in a child process (hdf5_probe): damage is a message, never a crash."""
    from .hdf5_probe import ProbeFailure, probe_hdf5

    try:
        probe_hdf5(path)
    except ProbeFailure as failure:
        raise SubmissionError(
            f"is a damaged or incomplete HDF5 file ({str(failure)[:300]})",
            path,
            "The upload or archive may have been cut short or altered: save the model again and re-upload it.",
        ) from None
