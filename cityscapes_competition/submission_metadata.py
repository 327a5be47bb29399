"""The participant's ``metadata`` file: where the inference settings live, validated strictly.

CodaLab's compute worker YAML-loads a code submission's ``metadata`` and downloads every top-level
string value whose key is not one of its own (``description``, ``command``...) as a URL, so a
plain ``model: model.h5`` line breaks the submission on the platform. The settings therefore live
under one mapping key, ``inference:``; each is optional and has a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SubmissionError

METADATA_NAME = "metadata"
SETTINGS_KEY = "inference"
# Keys CodaLab's worker itself reads or writes; any other top-level string is fetched as a URL.
PLATFORM_KEYS = frozenset(
    {"description", "command", "exitCode", "elapsedTime", "stdout", "stderr", "submitted-by", "submitted-at"}
)
MAX_METADATA_BYTES = 64 * 1024

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


def find_metadata(submission: Path) -> Path:
    """``metadata`` at the submission's root or inside its one wrapping folder (a GitHub archive)."""
    direct = submission / METADATA_NAME
    if direct.is_file():
        return direct
    folders = [p for p in submission.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    if len(folders) == 1 and (folders[0] / METADATA_NAME).is_file():
        return folders[0] / METADATA_NAME
    raise SubmissionError(
        "holds no 'metadata' file (neither at its root nor in its one top-level folder)",
        submission,
        "Add the 'metadata' file from the starting kit next to your .h5 model.",
    )


def read_settings(path: Path) -> InferenceSettings:
    """Parse and validate a ``metadata`` file; every problem is one message naming the key."""
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise SubmissionError(f"is larger than {MAX_METADATA_BYTES // 1024} KB; it holds a few settings", path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SubmissionError("is not UTF-8 text", path, _FIX) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SubmissionError(f"is not valid YAML{where}", path, _FIX) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SubmissionError("must be a YAML mapping of keys to values", path, _FIX)
    _refuse_platform_traps(document, path)
    return settings_from_mapping(document.get(SETTINGS_KEY) or {}, path)


def _refuse_platform_traps(document: dict[Any, Any], path: Path) -> None:
    for key, value in document.items():
        if key == SETTINGS_KEY or key in PLATFORM_KEYS:
            continue
        if isinstance(value, str):
            raise SubmissionError(
                f"top-level key '{key}: {value}' would be downloaded as a URL by CodaLab's worker and fail the "
                "submission on the platform",
                path,
                f"Move it under '{SETTINGS_KEY}:' if it is a setting, or delete it (the model is found by itself).",
            )
        raise SubmissionError(f"has an unknown top-level key '{key}'", path, _FIX)


def settings_from_mapping(raw: object, path: Path) -> InferenceSettings:
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
            raise self._fail(key, f"is {value!r}; it must be one of {', '.join(options)}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"is {value!r}; it must be a whole number")
        if not low <= value <= high:
            raise self._fail(key, f"is {value}; it must be between {low} and {high}")
        return value

    def number(self, key: str, default: float | None, low: float, high: float) -> float | None:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"is {value!r}; it must be a number")
        if not low <= value <= high:
            raise self._fail(key, f"is {value}; it must be between {low:g} and {high:g}")
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
            raise self._fail(key, f"is {value!r}; it must be [height, width], each 16..4096 pixels")
        return int(value[0]), int(value[1])

    def mapping(self, key: str) -> dict:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "must be a mapping of settings")
        return value

    def refuse_unknown(self) -> None:
        unknown = sorted(str(k) for k in self.raw if k not in self.read)
        if unknown:
            raise SubmissionError(f"'{self.where}' has unknown setting '{unknown[0]}'", self.path, _FIX)
