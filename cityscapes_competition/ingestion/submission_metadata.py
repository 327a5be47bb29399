"""The participant's ``metadata`` file: where the inference settings live, validated strictly.

CodaLab's compute worker YAML-loads a code submission's ``metadata`` and downloads every top-level
string value whose key is not one of its own (``description``, ``command``...) as a URL, so a
plain ``model: model.keras`` line breaks the submission on the platform. The settings therefore live
under one mapping key, ``inference:``; each is optional and has a default.

Both platforms' workers also run a ``command:`` of the submission's metadata as the participant's own
program, beside the ingestion, in the competition's image (competitions-v1-compute-worker
``worker.py``; codabench ``compute_worker/compute_worker.py`` ``_run_program_directory``, which reads
``metadata.yaml`` before ``metadata``). This competition runs only the model: a ``command`` and any
second metadata file are refused, so that such a submission never scores.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import SubmissionError, printable, shown
from ..core.safe_yaml import YamlError, load_yaml
from ..core.untrusted_files import UntrustedFileError, is_inside, read_untrusted, sent_folder

METADATA_NAME = "metadata"
SETTINGS_KEY = "inference"
# Keys CodaLab's worker itself reads or writes; any other top-level string is fetched as a URL.
PLATFORM_KEYS = frozenset(
    {"description", "command", "exitCode", "elapsedTime", "stdout", "stderr", "submitted-by", "submitted-at"}
)
MAX_METADATA_BYTES = 64 * 1024
MAX_SEARCHED_ENTRIES = 100_000  # files and folders looked at for a misplaced metadata file (model_files.MAX_ENTRIES)
# Codabench runs the command of metadata.yaml, if present, instead of metadata's.
OTHER_METADATA_NAMES = ("metadata.yaml", "metadata.yml")
_COMMAND_FIX = (
    "This competition runs only your model: remove the 'command' line (the ingestion program runs the model)."
)

SETTING_NAMES = ("input_size", "output", "scores", "batch_size", "time_budget_seconds", "instances")
OUTPUT_KINDS = ("trainIds", "labelIds")
SCORE_KINDS = ("auto", "probabilities", "logits")
INSTANCE_MODES = ("components", "none")


@dataclass(frozen=True)
class InstanceSettings:
    mode: str = "components"  # connected components of each instance class in the semantic prediction
    min_area: int = 100  # pixels, at the original image size
    max_per_image: int = 255


@dataclass(frozen=True)
class InferenceSettings:
    input_size: tuple[int, int] | None = None  # (height, width); None: the model's fixed shape, else the image's
    output: str = "trainIds"  # 19 channels in trainId order, or 34 in labelId order
    scores: str = "auto"  # how to read the channels: probabilities, logits, or detect
    batch_size: int = 1
    instances: InstanceSettings = field(default_factory=InstanceSettings)
    time_budget_seconds: float | None = None  # stop early, with a clear message, if the run would exceed it


_FIX = f"See the metadata schema in the starting kit's README: settings go under '{SETTINGS_KEY}:'."


def find_metadata(submission: Path, model: Path | None = None) -> Path:
    """``metadata`` at the submission's root, inside its one wrapping folder (a GitHub archive), or beside
    ``model`` (the model file found in the submission): the platform's ingestion and the checker both look
    in these places, in this order."""
    direct = submission / METADATA_NAME
    if _is_file(direct):
        _refuse_other_metadata(submission)
        return direct
    folders = [  # a linked folder is never followed: what lies outside the submission is not looked at
        p
        for p in _entries(submission)
        if not p.is_symlink() and p.is_dir() and not p.name.startswith((".", "__MACOSX"))
    ]
    if len(folders) == 1 and _is_file(folders[0] / METADATA_NAME):
        _refuse_other_metadata(folders[0])
        return folders[0] / METADATA_NAME
    beside = _beside_model(submission, model)
    if beside is not None:
        _refuse_other_metadata(beside.parent)
        return beside
    _refuse_other_metadata(submission)
    raise SubmissionError(
        f"holds no 'metadata' file (neither at its root, nor in its one top-level folder"
        f"{', nor beside the model' if model is not None else ''}){_seen_elsewhere(submission)}",
        submission,
        "Add the 'metadata' file from the starting kit next to your model.",
    )


def _beside_model(submission: Path, model: Path | None) -> Path | None:
    """``metadata`` in the folder of ``model`` (the checked, resolved model file), if inside the submission."""
    if model is None:
        return None
    folder, root = os.path.dirname(os.path.realpath(model)), os.path.realpath(submission)
    if not is_inside(folder, root):
        return None
    candidate = submission / os.path.relpath(folder, root) / METADATA_NAME  # named as the participant names it
    return candidate if _is_file(candidate) else None


def _seen_elsewhere(submission: Path) -> str:
    """``; it holds one at sub/dir/metadata ...``: files named like a metadata file that are in no place read."""
    seen = [path.relative_to(submission) for path in _walk_files(submission) if _looks_like_metadata(path.name)]
    if not seen:
        return ""
    listed = ", ".join(printable(str(path), 120) for path in seen[:3]) + (" ..." if len(seen) > 3 else "")
    return (
        f"; it holds {listed}, but the metadata is read only at the root, in the one top-level folder or beside "
        f"the model, from a file named exactly '{METADATA_NAME}' (no extension)"
    )


def _looks_like_metadata(name: str) -> bool:
    stem = name.lower().split(".", 1)[0]
    return stem == METADATA_NAME and name.lower() not in OTHER_METADATA_NAMES


def _walk_files(submission: Path, limit: int = MAX_SEARCHED_ENTRIES) -> list[Path]:
    """Files under ``submission``, links never followed, hidden files and __MACOSX skipped, at most ``limit``
    entries looked at."""
    found, seen = [], 0
    for folder, dirnames, filenames in os.walk(submission):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__MACOSX")))
        seen += len(dirnames) + len(filenames)
        if seen > limit:
            break
        found += [Path(folder) / name for name in sorted(filenames) if not name.startswith(".")]
    return found


def _refuse_other_metadata(folder: Path) -> None:
    """Codabench would run a metadata.yaml's command, and read its settings in place of metadata's."""
    for entry in _entries(folder):
        if entry.name.lower() in OTHER_METADATA_NAMES:
            raise SubmissionError(
                "is a second metadata file: Codabench reads it before 'metadata' and runs the 'command' it may hold",
                entry,
                f"Delete it; this competition reads only the file named '{METADATA_NAME}', which holds no command.",
            )


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise SubmissionError(f"cannot be read ({exc.strerror})", folder) from None


def _is_file(path: Path) -> bool:
    """Anything but a folder: a link or a FIFO named metadata is found here and refused when read."""
    try:
        return path.is_symlink() or (os.path.lexists(path) and not path.is_dir())
    except OSError:
        return False


def read_settings(path: Path, submission: Path | None = None) -> InferenceSettings:
    """Parse and validate a ``metadata`` file (inside ``submission``, if given); every problem is one message."""
    folder = sent_folder(submission, "the submission folder") if submission is not None else None
    try:
        data = read_untrusted(path, MAX_METADATA_BYTES, folder)
    except UntrustedFileError as exc:
        raise SubmissionError(
            str(exc), path, "The metadata file holds a few settings, as in the starting kit."
        ) from None
    try:
        document = load_yaml(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SubmissionError("is not UTF-8 text", path, _FIX) from None
    except YamlError as exc:
        raise SubmissionError(str(exc), path, _yaml_hint(str(exc)) + _FIX) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SubmissionError("must be a YAML mapping of keys to values", path, _FIX)
    _refuse_platform_traps(document, path)
    settings = document.get(SETTINGS_KEY)
    return settings_from_mapping({} if settings is None else settings, path)  # an empty 'inference:' is fine


def _yaml_hint(reason: str) -> str:
    """What the parser's words usually mean in a metadata file, as the start of the fix."""
    if "'\\t'" in reason:
        return "Indent with spaces, not tabs. "
    if "<block end>" in reason or "<block mapping start>" in reason:
        return "Indent every setting under 'inference:' by the same number of spaces. "
    return ""


def _refuse_platform_traps(document: dict[Any, Any], path: Path) -> None:
    if "command" in document:
        raise SubmissionError(
            f"has a 'command: {shown(document['command'], 60)}' line, which both platforms would run as a program "
            "of your own beside the ingestion",
            path,
            _COMMAND_FIX,
        )
    for key, value in document.items():
        if key == SETTINGS_KEY or key in PLATFORM_KEYS:
            continue
        if isinstance(value, str):
            raise SubmissionError(
                f"top-level key '{printable(str(key), 60)}: {printable(value, 60)}' would be downloaded as a URL by "
                "CodaLab's worker and fail the submission on the platform",
                path,
                _misplaced(key)
                or f"Move it under '{SETTINGS_KEY}:' if it is a setting, or delete it (the model is found by itself).",
            )
        raise SubmissionError(
            f"has an unknown top-level key {shown(key, 60)}{did_you_mean(key, (SETTINGS_KEY, 'description'))}",
            path,
            _misplaced(key) or _FIX,
        )


def _misplaced(key: object) -> str | None:
    """The fix for a setting written at the top level: it belongs under ``inference:``."""
    if key in SETTING_NAMES:
        return f"'{key}' is a setting: indent it under '{SETTINGS_KEY}:', as in the starting kit's README."
    return None


def did_you_mean(word: object, options: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'batch_size'?)`` for a misspelt name or value, else ``""`` (case ignored in the match)."""
    if not isinstance(word, str) or not options:
        return ""
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower()[:100], list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def settings_from_mapping(raw: object, path: Path) -> InferenceSettings:
    if isinstance(raw, str) and ":" in raw:  # "batch_size:4": YAML reads a key only when a space follows ':'
        raise SubmissionError(
            f"'{SETTINGS_KEY}' is the text {shown(raw, 60)}, not a mapping of settings",
            path,
            "Put a space after each ':' (batch_size: 4), one setting per line, indented under 'inference:'.",
        )
    if not isinstance(raw, dict):
        raise SubmissionError(f"'{SETTINGS_KEY}' must be a mapping of settings", path, _FIX)
    reader = _Reader(raw, SETTINGS_KEY, path)
    settings = InferenceSettings(
        input_size=reader.size("input_size"),
        output=reader.choice("output", OUTPUT_KINDS, "trainIds"),
        scores=reader.choice("scores", SCORE_KINDS, "auto"),
        batch_size=reader.integer("batch_size", 1, 1, 64),
        instances=_instance_settings(reader.mapping("instances"), path),
        time_budget_seconds=reader.number("time_budget_seconds", None, 1.0, 7 * 24 * 3600.0),
    )
    reader.refuse_unknown()
    return settings


def _instance_settings(raw: dict, path: Path) -> InstanceSettings:
    reader = _Reader(raw, f"{SETTINGS_KEY}.instances", path)
    settings = InstanceSettings(
        mode=reader.choice("mode", INSTANCE_MODES, "components"),
        min_area=reader.integer("min_area", 100, 1, 10_000_000),
        max_per_image=reader.integer("max_per_image", 255, 1, 255),
    )
    reader.refuse_unknown()
    return settings


class _Reader:
    """Typed, range-checked access to one mapping of settings; remembers which keys were read."""

    def __init__(self, raw: dict, where: str, path: Path):
        self.raw, self.where, self.path, self.read = raw, where, path, set()

    def _get(self, key: str) -> object:
        self.read.add(key)
        return self.raw.get(key)

    def _fail(self, key: str, problem: str) -> SubmissionError:
        return SubmissionError(f"'{self.where}.{key}' {problem}", self.path, _FIX)

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self._get(key)
        if value is None:
            return default
        if value not in options:
            raise self._fail(
                key, f"is {shown(value)}; it must be one of {', '.join(options)}{did_you_mean(value, options)}"
            )
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"is {shown(value)}; it must be a whole number")
        if not low <= value <= high:
            raise self._fail(key, f"is {shown(value)}; it must be between {low} and {high}")
        return value

    def number(self, key: str, default: float | None, low: float, high: float) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"is {shown(value)}; it must be a number")
        if not low <= value <= high:
            raise self._fail(key, f"is {shown(value)}; it must be between {low:g} and {high:g}")
        return float(value)

    def size(self, key: str) -> tuple[int, int] | None:
        value = self._get(key)
        if value is None:
            return None
        valid = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 4096 for v in value)
        )
        if not valid:
            raise self._fail(key, f"is {shown(value)}; it must be [height, width], each 16..4096 pixels")
        return int(value[0]), int(value[1])

    def mapping(self, key: str) -> dict:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "must be a mapping of settings")
        return value

    def refuse_unknown(self) -> None:
        unknown = sorted((k for k in self.raw if k not in self.read), key=lambda k: shown(k))
        if unknown:
            known = sorted(self.read)
            hint = did_you_mean(unknown[0], known) or f" (the settings here: {', '.join(known)})"
            raise SubmissionError(f"'{self.where}' has unknown setting {shown(unknown[0])}{hint}", self.path, _FIX)
