"""Finding the participant's one Keras model file in a submission folder, and checking it is whole.

Nothing here imports TensorFlow or Keras: only the file system, h5py (which reads an HDF5 file's structure,
never code) and zipfile. Symbolic links are not followed while searching, and a model file that is a link
must resolve inside the submission folder.

A model is a legacy HDF5 file (``.h5``/``.hdf5``) or a Keras 3 archive (``.keras``): a zip that Keras'
``saving_lib`` writes with ``config.json``, ``metadata.json`` and ``model.weights.h5``, and from which it
reads ``config.json`` and ``model.weights.h5`` (``_load_model_from_fileobj``; any further member makes it
extract the whole archive as "assets"). The archive is untrusted: its central directory is checked before
anything is inflated (its size, then every member's name, type, size and compression ratio; only those
three names, each once), and ``unpack_keras_archive`` copies the two members Keras reads into a private
folder, bounded by the sizes already checked, where the weights are probed as any HDF5 model file is.
Keras never opens the participant's archive: it loads the private folder.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import SubmissionError, shown
from ..core.untrusted_files import OutsideFolderError, UntrustedFileError, resolve_inside, sent_folder

HDF5_SUFFIXES = (".h5", ".hdf5")
KERAS_SUFFIX = ".keras"
MODEL_SUFFIXES = (*HDF5_SUFFIXES, KERAS_SUFFIX)
MAX_MODEL_BYTES = 2 * 1024**3
MAX_CONFIG_BYTES = 50 * 1024**2
MAX_ENTRIES = 100_000  # files and folders searched before giving up on a submission
MAX_DEPTH = 64  # folders inside one another in a submission
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
MAX_LFS_POINTER_BYTES = 1024
_IGNORED_NAMES = frozenset({"__MACOSX", ".DS_Store"})

# The members of a .keras archive (keras/src/saving/saving_lib.py: _CONFIG_FILENAME, _METADATA_FILENAME,
# _VARS_FNAME_H5), each with the most it may hold uncompressed. Keras never reads metadata.json.
CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
MEMBER_LIMITS = {CONFIG_MEMBER: MAX_CONFIG_BYTES, METADATA_MEMBER: 1024**2, WEIGHTS_MEMBER: MAX_MODEL_BYTES}
# Keras stores members uncompressed (ratio 1); deflate reaches about 1032:1 on zeros. A member beyond the floor
# that inflates to more than this many times its stored size is a zip bomb, not a model.
MAX_COMPRESSION_RATIO = 100
RATIO_FLOOR_BYTES = 1024**2
# The central directory zipfile reads into memory at once: three entries take about 200 bytes.
MAX_DIRECTORY_BYTES = 64 * 1024
MAX_ARCHIVE_MEMBERS = 100
_COPY_CHUNK = 4 * 1024**2

_SAVE_FIX = (
    'Save the whole model with model.save("model.keras") (Keras 3) or model.save("model.h5") (tf.keras 2.x) '
    "and upload that file."
)
_ONE_MODEL_FIX = (
    f"Put exactly one model file ({', '.join(MODEL_SUFFIXES)}) in the submission, next to the 'metadata' file."
)
_ARCHIVE_FIX = 'Upload the file model.save("model.keras") wrote, unchanged (Keras 3).'
_LFS_FIX = (
    "Your repository stores the model with Git LFS and the archive holds only the pointer: run 'git lfs pull' "
    "before archiving, attach the real model file to a GitHub release, or upload the zip of your folder directly."
)
# What participants upload instead of a model file, and what to do about it.
_NOT_A_MODEL = {
    ".pb": "a TensorFlow SavedModel, which Keras 3 cannot load as a model",
    ".tflite": "a TensorFlow Lite model",
    ".onnx": "an ONNX model",
    ".pt": "a PyTorch file",
    ".pth": "a PyTorch file",
    ".ckpt": "a checkpoint",
    ".index": "a TensorFlow checkpoint",
    ".npz": "NumPy arrays",
    ".pkl": "a pickle, which is never loaded",
    ".zip": "a zip archive inside the submission",
}


def find_model_file(submission: Path) -> Path:
    """The one ``.h5``/``.hdf5``/``.keras`` file under ``submission``, checked to be a whole model file."""
    root = _real_folder(submission)
    candidates, others = _model_candidates(root)
    if not candidates:
        raise SubmissionError(
            f"holds no model file (accepted suffixes: {', '.join(MODEL_SUFFIXES)}, any case; hidden files and "
            f"__MACOSX are ignored){_found_instead(root, others)}",
            submission,
            _ONE_MODEL_FIX + " " + _SAVE_FIX,
        )
    if len(candidates) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in candidates)
        raise SubmissionError(
            f"holds {len(candidates)} model files: {names}", submission, _ONE_MODEL_FIX + " Remove the others."
        )
    model = _check_inside(candidates[0], root)  # from here on, the resolved file: no link is followed again
    check_model_file(model)
    return model


def is_keras_archive(path: Path) -> bool:
    """Whether ``path`` is named as a Keras 3 archive (any case)."""
    return path.name.lower().endswith(KERAS_SUFFIX)


def check_model_file(path: Path) -> None:
    """Refuse an empty, oversized, Git LFS pointer, mistyped, damaged or truncated file, with one message each.

    An HDF5 file is read in full in a child process; a ``.keras`` archive has its central directory checked
    (its weights are probed when ``unpack_keras_archive`` has copied them out)."""
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
    if is_keras_archive(path):
        _check_keras_file(path, head, size)
        return
    if hdf5_signature_offset(path, size) is None:
        fix = 'Rename it to "model.keras".' if head.startswith(ZIP_SIGNATURE) else _SAVE_FIX
        raise SubmissionError(f"is not an HDF5 file ({_guess_kind(head)})", path, fix)
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


def _model_candidates(root: Path) -> tuple[list[Path], list[Path]]:
    """Model files under ``root`` and the other files seen, without following linked folders; a link and its
    target count once."""
    found: dict[Path, Path] = {}
    others: list[Path] = []
    seen = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        if dirnames and len(Path(folder).relative_to(root).parts) >= MAX_DEPTH:  # os.walk recurses: 1,100 deep crashed
            raise SubmissionError(
                f"holds folders nested more than {MAX_DEPTH} deep", root, "Submit only the model and 'metadata'."
            )
        seen += len(dirnames) + len(filenames)
        if seen > MAX_ENTRIES:
            raise SubmissionError(
                f"holds more than {MAX_ENTRIES} files and folders", root, "Submit only the model and 'metadata'."
            )
        linked_folders = [d for d in dirnames if os.path.islink(os.path.join(folder, d))]  # never descended
        for name in sorted([*filenames, *linked_folders]):
            if _ignored(name):
                continue
            path = Path(folder) / name
            if name.lower().endswith(MODEL_SUFFIXES):
                found.setdefault(_target(path, root), path)
            elif len(others) < MAX_ARCHIVE_MEMBERS:
                others.append(path)
    return sorted(found.values()), others


def _found_instead(root: Path, others: list[Path]) -> str:
    """``; it holds metadata, saved_model.pb (a TensorFlow SavedModel...)`` for the refusal."""
    if not others:
        return "; it holds no file at all"
    names = []
    for path in others[:6]:
        kind = _NOT_A_MODEL.get(path.suffix.lower())
        names.append(str(path.relative_to(root)) + (f" ({kind})" if kind else ""))
    more = f" and {len(others) - 6} more" if len(others) > 6 else ""
    return f"; it holds {', '.join(names)}{more}"


def _ignored(name: str) -> bool:
    return name in _IGNORED_NAMES or name.startswith(".")


def _target(path: Path, root: Path) -> Path:
    """Where ``path`` leads inside the submission (for counting a link and its target once); itself otherwise."""
    try:
        return Path(resolve_inside(path, sent_folder(root, "the submission folder")))
    except UntrustedFileError:
        return path


def _check_inside(path: Path, root: Path) -> Path:
    """The regular file ``path`` leads to, resolved inside the submission without ever stepping out of it
    (``untrusted_files``: a link loop or a link out gives the same answer wherever it leads)."""
    try:
        target = resolve_inside(path, sent_folder(root, "the submission folder"))
        regular = stat.S_ISREG(os.lstat(target).st_mode)
    except OutsideFolderError:
        raise SubmissionError(
            "is a symbolic link pointing outside the submission folder",
            path,
            "Upload the model file itself, not a link to it.",
        ) from None
    except (UntrustedFileError, OSError):
        regular = False
    if not regular:
        raise SubmissionError("is not a regular file", path, "Upload the model file itself.")
    return Path(target)


def _read_at(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read(count)


def _guess_kind(head: bytes, otherwise: str = "no HDF5 signature at offset 0, 512, 1024, 2048...") -> str:
    if head.startswith(ZIP_SIGNATURE):
        return 'it is a zip archive, perhaps a Keras 3 ".keras" file renamed'
    if head.startswith(b"\x89PNG"):
        return "it is a PNG image"
    if head.startswith(b"\x80") or head.startswith(b"\x93NUMPY"):
        return "it looks like a pickle or NumPy file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it looks like JSON text, perhaps only the model's configuration"
    return otherwise


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


# --- Keras 3 archives ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnpackedArchive:
    """What Keras reads from a ``.keras`` archive, copied out of it and checked."""

    config_text: str  # config.json
    weights: Path  # model.weights.h5, a private copy, probed by hdf5_probe
    keras_version: str  # from metadata.json, for messages ("" if absent)


def _check_keras_file(path: Path, head: bytes, size: int) -> None:
    """A zip archive (not a legacy HDF5 model renamed) whose central directory holds what Keras writes."""
    if hdf5_signature_offset(path, size) is not None:
        raise SubmissionError(
            'is an HDF5 file named ".keras" (a legacy model saved with model.save("model.h5"))',
            path,
            'Rename it to "model.h5", or save the model again with model.save("model.keras").',
        )
    if not head.startswith(ZIP_SIGNATURE):
        kind = "it is an empty zip archive" if head.startswith(b"PK\x05\x06") else _guess_kind(head, "no zip signature")
        raise SubmissionError(f"is not a Keras 3 model archive ({kind})", path, _SAVE_FIX)
    read_keras_members(path)


def read_keras_members(path: Path) -> dict[str, zipfile.ZipInfo]:
    """The members of the ``.keras`` archive ``path`` by name, refused unless they are exactly what Keras
    writes, of bounded sizes; only the central directory is read, nothing is inflated."""
    try:
        with path.open("rb") as stream:
            end = zipfile._EndRecData(stream)  # the record zipfile itself reads the directory from
        if end is None:
            raise zipfile.BadZipFile("no end of central directory record")
        if end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES or end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ARCHIVE_MEMBERS:
            raise SubmissionError(
                f"is an archive of {end[zipfile._ECD_ENTRIES_TOTAL]} members in a directory of "
                f"{end[zipfile._ECD_SIZE]} bytes; a Keras model archive holds 3 members",
                path,
                _ARCHIVE_FIX,
            )
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise _damaged_archive(path, exc) from None
    members = _checked_members(infos, path)
    compressed = sum(info.compress_size for info in infos)
    if compressed > path.stat().st_size:
        raise SubmissionError(
            f"has members whose compressed sizes add up to {compressed} bytes, more than the file's "
            f"{path.stat().st_size}: they overlap (a zip bomb?)",
            path,
            _ARCHIVE_FIX,
        )
    return members


def _checked_members(infos: list[zipfile.ZipInfo], path: Path) -> dict[str, zipfile.ZipInfo]:
    for info in infos:
        check_member_name(info, path)
    names = [info.orig_filename for info in infos]
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise SubmissionError(
            f"holds the member {shown(twice[0])} {Counter(names)[twice[0]]} times", path, _ARCHIVE_FIX
        )
    unexpected = [name for name in names if name not in MEMBER_LIMITS]
    if unexpected:
        listed = ", ".join(shown(name, 60) for name in unexpected[:5]) + (" ..." if len(unexpected) > 5 else "")
        raise SubmissionError(
            f"holds {listed}: a Keras model archive holds only {CONFIG_MEMBER}, {METADATA_MEMBER} and "
            f"{WEIGHTS_MEMBER} (assets, sharded or .npz weights and other files are not accepted)",
            path,
            _ARCHIVE_FIX,
        )
    members = {info.orig_filename: info for info in infos}
    for required, what in ((CONFIG_MEMBER, "no model configuration"), (WEIGHTS_MEMBER, "no weights")):
        if required not in members:
            raise SubmissionError(
                f"holds {what} ({required}); its members are {', '.join(map(shown, names)) or 'none'}",
                path,
                _ARCHIVE_FIX,
            )
    for info in members.values():
        _check_member_storage(info, path)
    return members


def check_member_name(info: zipfile.ZipInfo, path: Path) -> None:
    """Names are compared exactly, so these only make the refusal say what is wrong."""
    name = info.orig_filename
    posix = PurePosixPath(name.replace("\\", "/"))
    problem = None
    if "\x00" in name:  # zipfile cuts the name there
        problem = "has a NUL character in its name"
    elif posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        problem = "has an absolute path"
    elif ".." in posix.parts:
        problem = "leads out of the archive ('..')"
    elif info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        problem = "is a symbolic link"
    elif info.is_dir():
        problem = "is a folder"
    if problem:
        raise SubmissionError(f"holds the member {shown(name, 100)}, which {problem}", path, _ARCHIVE_FIX)


def _check_member_storage(info: zipfile.ZipInfo, path: Path) -> None:
    name, limit = info.orig_filename, MEMBER_LIMITS[info.orig_filename]
    if info.flag_bits & 0x1:
        raise SubmissionError(f"has an encrypted member {shown(name)}", path, _ARCHIVE_FIX)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise SubmissionError(
            f"stores {shown(name)} with compression method {info.compress_type}; only stored or deflated "
            "members are read",
            path,
            _ARCHIVE_FIX,
        )
    if info.file_size > limit:
        raise SubmissionError(
            f"declares its member {shown(name)} as {info.file_size} bytes uncompressed, more than the limit of "
            f"{limit} bytes",
            path,
            _ARCHIVE_FIX if name != WEIGHTS_MEMBER else "Use a smaller model (fewer or narrower layers).",
        )
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
        raise SubmissionError(
            f"declares its member {shown(name)} as {info.file_size} bytes stored in {info.compress_size}, "
            f"a compression ratio above {MAX_COMPRESSION_RATIO}: a zip bomb, not a model",
            path,
            _ARCHIVE_FIX,
        )


def unpack_keras_archive(path: Path, folder: Path) -> UnpackedArchive:
    """The config, the Keras version and a private copy of the weights of the ``.keras`` archive ``path``,
    copied into ``folder`` (bounded by the checked sizes: zipfile never inflates a member past its declared
    size, and checks its CRC), the weights then read in full by hdf5_probe."""
    members = read_keras_members(path)
    weights = folder / WEIGHTS_MEMBER
    try:
        with zipfile.ZipFile(path) as archive:
            config = _read_member(archive, members[CONFIG_MEMBER])
            metadata = _read_member(archive, members[METADATA_MEMBER]) if METADATA_MEMBER in members else b""
            copy_member(archive, members[WEIGHTS_MEMBER], weights)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
        raise _damaged_archive(path, exc) from None
    try:
        config_text = config.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError(f"has a {CONFIG_MEMBER} that is not UTF-8 text", path, _ARCHIVE_FIX) from None
    _check_reads_member(weights, path)
    return UnpackedArchive(config_text, weights, _keras_version(metadata))


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as member:
        return member.read()


def copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    with archive.open(info) as member, target.open("xb") as out:
        while chunk := member.read(_COPY_CHUNK):
            out.write(chunk)


def _check_reads_member(weights: Path, path: Path) -> None:
    from .hdf5_probe import ProbeFailure, probe_hdf5

    if hdf5_signature_offset(weights) is None:
        kind = _guess_kind(_read_at(weights, 0, 64))
        raise SubmissionError(f"has a {WEIGHTS_MEMBER} that is not an HDF5 file ({kind})", path, _ARCHIVE_FIX)
    try:
        probe_hdf5(weights)
    except ProbeFailure as failure:
        raise SubmissionError(
            f"has a damaged or incomplete {WEIGHTS_MEMBER} ({str(failure)[:300]})",
            path,
            "The upload or archive may have been cut short or altered: save the model again and re-upload it.",
        ) from None


def _keras_version(metadata: bytes) -> str:
    try:
        version = json.loads(metadata).get("keras_version")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return version[:50] if isinstance(version, str) else ""


def _damaged_archive(path: Path, exc: BaseException) -> SubmissionError:
    text = str(exc).strip().splitlines()
    reason = (text[0] if text else type(exc).__name__)[:200]
    return SubmissionError(
        f"is a damaged or incomplete Keras archive ({reason})",
        path,
        "The upload or archive may have been cut short or altered: save the model again and re-upload it.",
    )
