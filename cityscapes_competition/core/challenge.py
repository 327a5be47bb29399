"""The competition's settings (challenge.yaml): phases, deadlines, time zone, limits, leaderboard columns."""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml

from .errors import ReferenceDataError, shown
from .leaderboard import LEADERBOARD_KEYS

DEFAULT_CHALLENGE_FILE = Path(__file__).parents[1] / "challenge.yaml"  # at the package's top: organisers edit it
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Django's EmailValidator (Codabench's Competition.contact_email is an EmailField), without the rare quoted
# local parts and IP-literal domains; Codabench stores at most 256 characters.
_EMAIL = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*"
    r"@((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+)(?:[a-z0-9-]{2,63}(?<!-))",
    re.IGNORECASE,
)
MAX_EMAIL_CHARS = 256
# A fact sheet key is a form field name on Codabench's submission page; that page drops answers whose name
# starts with 'task-' (submission_upload.tag, get_fact_sheet_answers), so no '-' at all.
_FACT_SHEET_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
FACT_SHEET_TYPES = ("text", "checkbox", "select")
SETTINGS_FIX = (
    "Correct challenge.yaml (the competition's settings), check it with "
    "'python -m cityscapes_competition bundle --check' and build the bundle again."
)


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    description: str
    start: dt.datetime  # aware, in the competition's time zone
    deadline: dt.datetime  # aware; a submission must be made strictly before it

    def accepts(self, submitted_at: dt.datetime) -> bool:
        return submitted_at < self.deadline


@dataclass(frozen=True)
class LeaderboardColumn:
    key: str
    label: str
    task: str  # "pixel" or "instance"


@dataclass(frozen=True)
class FactSheetQuestion:
    """A question Codabench asks with every submission (its fact sheet)."""

    key: str
    title: str
    kind: str  # one of FACT_SHEET_TYPES
    options: tuple[str, ...]  # the choices of a "select" question
    required: bool
    on_leaderboard: bool


@dataclass(frozen=True)
class ChallengeSettings:
    title: str
    description: str
    time_zone: ZoneInfo
    phases: tuple[Phase, ...]
    max_submissions_per_day: int
    max_submissions: int
    execution_time_limit: int  # seconds
    codabench_queue: str | None
    docker_image: str
    leaderboard_title: str
    columns: tuple[LeaderboardColumn, ...]
    enforce_submission_rules: bool
    migrate_to_next_phase: bool  # the platforms re-run each participant's leaderboard submission in the next phase
    contact_email: str | None
    fact_sheet: tuple[FactSheetQuestion, ...]
    source: Path

    def phase(self, number: int) -> Phase:
        for phase in self.phases:
            if phase.number == number:
                return phase
        known = ", ".join(str(phase.number) for phase in self.phases)
        raise ReferenceDataError(f"no phase {number} (phases: {known})", self.source, SETTINGS_FIX)

    def phase_at(self, moment: dt.datetime) -> Phase | None:
        """The phase open at ``moment``: the last one started, if its deadline has not passed."""
        started = [phase for phase in self.phases if phase.start <= moment]
        return started[-1] if started and started[-1].accepts(moment) else None

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.time_zone)


def load_challenge(path: Path | None = None) -> ChallengeSettings:
    """Read and validate challenge.yaml; every mistake is one message naming the key."""
    source = path or DEFAULT_CHALLENGE_FILE
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ReferenceDataError(
            f"cannot read the competition settings ({error.strerror})", source, SETTINGS_FIX
        ) from None
    except UnicodeDecodeError:
        raise ReferenceDataError("is not UTF-8 text", source, "Save challenge.yaml as UTF-8.") from None
    try:
        raw = yaml.load(text, Loader=_SettingsLoader)
    except yaml.YAMLError as error:
        raise ReferenceDataError(f"not valid YAML ({_yaml_problem(error)})", source, SETTINGS_FIX) from None
    except (ValueError, OverflowError, RecursionError) as error:  # a constructor's own failure, or deep nesting
        raise ReferenceDataError(f"not valid YAML ({type(error).__name__}: {error})", source, SETTINGS_FIX) from None
    return _Reader(raw, source).build()


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "syntax error"
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)


@dataclass(frozen=True)
class _UnquotedDate:
    """A value YAML reads as a timestamp, kept as written: refused with the quoted form to write instead."""

    text: str
    value: dt.date | None  # None: not a real date (2019-02-30)
    line: int


class _SettingsLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice is refused (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key '{key_node.value}' is given twice", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> _UnquotedDate:
    try:
        value = loader.construct_yaml_timestamp(node)
    except (ValueError, OverflowError):
        value = None
    return _UnquotedDate(str(node.value), value, node.start_mark.line + 1)


_SettingsLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def unquoted_date_message(key: str, date: _UnquotedDate, where: str, moment: bool) -> str:
    """What to write instead of an unquoted YAML date: for a start or deadline, the local time as this file wants it."""
    said = f"'{where}{key}' at line {date.line} ({date.text})"
    if not moment:
        return f'{said} is unquoted, so YAML reads it as a date: quote it: {key}: "{date.text}"'
    if date.value is None:
        return f'{said} is not a real date: write one, quoted: {key}: "YYYY-MM-DD HH:MM:SS"'
    if isinstance(date.value, dt.datetime):
        offset = " (local time in time_zone, without an offset)" if date.value.tzinfo is not None else ""
        quoted = f"{date.value:%Y-%m-%d %H:%M:%S}"
        return f'{said} is unquoted, so YAML reads it as a timestamp: quote the date: {key}: "{quoted}"{offset}'
    time = "23:59:00" if key == "deadline" else "00:00:00"  # the seeds' pattern: open at 00:00, close at 23:59
    quoted = f"{date.value:%Y-%m-%d} {time}"
    return f'{said} is unquoted, so YAML reads it as a date: quote the date and give its time: {key}: "{quoted}"'


def unknown_key_message(key: Any, known: Collection[str], where: str = "") -> str:
    """'unknown key' naming the closest known key, so a misspelt key is not reported as a missing one."""
    name = str(key)
    lowered = {known_key.lower(): known_key for known_key in known}
    close = difflib.get_close_matches(name.lower(), sorted(lowered), n=1, cutoff=0.6)
    hint = f"did you mean '{where}{lowered[close[0]]}'?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown key '{where}{name}' ({hint})"


def _zone_hint(name: str) -> str:
    zones = {zone.lower(): zone for zone in available_timezones()}
    close = difflib.get_close_matches(name.lower(), sorted(zones), n=1, cutoff=0.6)
    return f"did you mean '{zones[close[0]]}'?" if close else "use an IANA name such as Europe/Moscow"


_TOP_KEYS = {
    "title",
    "description",
    "time_zone",
    "phases",
    "max_submissions_per_day",
    "max_submissions",
    "execution_time_limit",
    "codabench_queue",
    "docker_image",
    "leaderboard",
    "enforce_submission_rules",
    "migrate_to_next_phase",
    "contact_email",
    "fact_sheet",
}
_FACT_SHEET_QUESTION_KEYS = {"key", "title", "type", "options", "required", "on_leaderboard"}
_PHASE_KEYS = {"number", "name", "description", "start", "deadline"}
_LEADERBOARD_KEYS = {"title", "columns"}
_COLUMN_KEYS = {"key", "label", "task"}
_KIND_NAMES = {str: "text", int: "a whole number", bool: "true or false", list: "a list", dict: "a mapping"}


class _Reader:
    def __init__(self, raw: Any, source: Path):
        if not isinstance(raw, dict):
            raise ReferenceDataError("must be a YAML mapping of settings", source, SETTINGS_FIX)
        self.raw = raw
        self.source = source

    def fail(self, message: str) -> ReferenceDataError:
        return ReferenceDataError(message, self.source, SETTINGS_FIX)

    def refuse_unknown(self, mapping: dict, known: Collection[str], where: str = "") -> None:
        """Checked before any value is read, so a misspelt key is reported as such, not as a missing one."""
        for key in mapping:
            if key not in known:
                raise self.fail(unknown_key_message(key, known, where))

    def value(self, mapping: dict, key: str, kind: type, where: str = "") -> Any:
        if key not in mapping:
            raise self.fail(f"missing key '{where}{key}'")
        value = mapping[key]
        if isinstance(value, _UnquotedDate):
            raise self.fail(unquoted_date_message(key, value, where, moment=False))
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"'{where}{key}' must be {_KIND_NAMES.get(kind, kind.__name__)}, not {shown(value)}")
        return value

    def positive(self, key: str) -> int:
        value = self.value(self.raw, key, int)
        if value <= 0:
            raise self.fail(f"'{key}' must be a positive whole number, not {value}")
        return value

    def build(self) -> ChallengeSettings:
        self.refuse_unknown(self.raw, _TOP_KEYS)
        zone = self.time_zone()
        queue = self.raw.get("codabench_queue")
        if queue is not None and not isinstance(queue, str):
            raise self.fail(f"'codabench_queue' must be a queue key (text) or null, not {shown(queue)}")
        board = self.value(self.raw, "leaderboard", dict)
        self.refuse_unknown(board, _LEADERBOARD_KEYS, "leaderboard.")
        return ChallengeSettings(
            title=self.value(self.raw, "title", str),
            description=self.value(self.raw, "description", str),
            time_zone=zone,
            phases=self.phases(zone),
            max_submissions_per_day=self.positive("max_submissions_per_day"),
            max_submissions=self.positive("max_submissions"),
            execution_time_limit=self.positive("execution_time_limit"),
            codabench_queue=queue,
            docker_image=self.value(self.raw, "docker_image", str),
            leaderboard_title=self.value(board, "title", str, "leaderboard."),
            columns=self.columns(board),
            enforce_submission_rules=self.value(self.raw, "enforce_submission_rules", bool),
            migrate_to_next_phase=self.optional_flag(self.raw, "migrate_to_next_phase", True),
            contact_email=self.contact_email(),
            fact_sheet=self.fact_sheet(),
            source=self.source,
        )

    def time_zone(self) -> ZoneInfo:
        name = self.value(self.raw, "time_zone", str)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(f"unknown time zone '{name}' ({_zone_hint(name)})") from None

    def optional_flag(self, mapping: dict, key: str, default: bool, where: str = "") -> bool:
        value = mapping.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"'{where}{key}' must be true or false, not {shown(value)}")
        return value

    def contact_email(self) -> str | None:
        email = self.raw.get("contact_email")
        if email is None:
            return None
        if not isinstance(email, str) or len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
            raise self.fail(
                f"'contact_email' must be one e-mail address of at most {MAX_EMAIL_CHARS} characters "
                f"(or null), not {email!r}"
            )
        return email

    def fact_sheet(self) -> tuple[FactSheetQuestion, ...]:
        entries = self.raw.get("fact_sheet") or []
        if not isinstance(entries, list):
            raise self.fail("'fact_sheet' must be a list of questions (or left out)")
        questions = tuple(self.fact_sheet_question(entry, index) for index, entry in enumerate(entries, 1))
        keys = [question.key for question in questions]
        if len(set(keys)) != len(keys):
            raise self.fail("each fact_sheet question needs a key of its own")
        return questions

    def fact_sheet_question(self, entry: Any, index: int) -> FactSheetQuestion:
        where = f"fact_sheet[{index}]."
        if not isinstance(entry, dict):
            raise self.fail(f"fact_sheet question {index} must be a mapping with key, title and type")
        self.refuse_unknown(entry, _FACT_SHEET_QUESTION_KEYS, where)
        key = self.value(entry, "key", str, where)
        if not _FACT_SHEET_KEY.fullmatch(key):
            raise self.fail(
                f"'{where}key' must be a letter then letters, digits or _ (at most 50), not {key!r}: it names "
                "a field of Codabench's submission form"
            )
        kind = self.value(entry, "type", str, where)
        if kind not in FACT_SHEET_TYPES:
            raise self.fail(f"'{where}type' must be one of {', '.join(FACT_SHEET_TYPES)}, not {kind!r}")
        required = self.optional_flag(entry, "required", False, where)
        if kind == "checkbox" and required:
            raise self.fail(f"'{where}required' cannot be true for a checkbox: unticked is an answer too")
        return FactSheetQuestion(
            key=key,
            title=self.text(entry, "title", where),
            kind=kind,
            options=self.options(entry, kind, where),
            required=required,
            on_leaderboard=self.optional_flag(entry, "on_leaderboard", False, where),
        )

    def text(self, mapping: dict, key: str, where: str) -> str:
        value = self.value(mapping, key, str, where)
        if not value.strip():
            raise self.fail(f"'{where}{key}' must not be empty")
        return value

    def options(self, entry: dict, kind: str, where: str) -> tuple[str, ...]:
        if kind != "select":
            if "options" in entry:
                raise self.fail(f"'{where}options' is only for a question of type select")
            return ()
        options = self.value(entry, "options", list, where)
        if not options or not all(isinstance(option, str) and option.strip() for option in options):
            raise self.fail(f"'{where}options' must list the choices as non-empty text")
        if len(set(options)) != len(options):
            raise self.fail(f"'{where}options' lists a choice twice")
        return tuple(options)

    def phases(self, zone: ZoneInfo) -> tuple[Phase, ...]:
        entries = self.value(self.raw, "phases", list)
        if not entries:
            raise self.fail("'phases' must list at least one phase")
        phases = tuple(self.phase(entry, index, zone) for index, entry in enumerate(entries, 1))
        for earlier, later in itertools.pairwise(phases):
            if later.number <= earlier.number or later.start < earlier.deadline:
                raise self.fail(
                    f"phase {later.number} must have a higher number than phase {earlier.number} "
                    "and start at or after its deadline"
                )
        return phases

    def phase(self, entry: Any, index: int, zone: ZoneInfo) -> Phase:
        where = f"phases[{index}]."
        if not isinstance(entry, dict):
            raise self.fail(f"phase {index} must be a mapping with number, name, start and deadline")
        self.refuse_unknown(entry, _PHASE_KEYS, where)
        start = self.moment(entry, "start", zone, where)
        deadline = self.moment(entry, "deadline", zone, where)
        if deadline <= start:
            raise self.fail(f"'{where}deadline' must come after its start")
        number = self.value(entry, "number", int, where)
        if number < 1:
            raise self.fail(f"'{where}number' must be 1 or more")
        return Phase(
            number=number,
            name=self.value(entry, "name", str, where),
            description=self.value(entry, "description", str, where) if "description" in entry else "",
            start=start,
            deadline=deadline,
        )

    def moment(self, entry: dict, key: str, zone: ZoneInfo, where: str) -> dt.datetime:
        if isinstance(entry.get(key), _UnquotedDate):
            raise self.fail(unquoted_date_message(key, entry[key], where, moment=True))
        text = self.value(entry, key, str, where)
        try:
            naive = dt.datetime.strptime(text, _DATE_FORMAT)
        except ValueError:
            raise self.fail(f"'{where}{key}' must be local time as 'YYYY-MM-DD HH:MM:SS', not {shown(text)}") from None
        moment = naive.replace(tzinfo=zone)
        # Where the clocks change, a wall-clock time may not exist, or exist twice: neither is a deadline to the second.
        if moment.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
            raise self.fail(
                f"'{where}{key}' {text} does not exist in {zone.key} (the clocks skip it); choose another time"
            )
        if naive.replace(tzinfo=zone, fold=1).utcoffset() != moment.utcoffset():
            raise self.fail(
                f"'{where}{key}' {text} happens twice in {zone.key} (the clocks go back over it); choose another time"
            )
        return moment

    def columns(self, board: dict) -> tuple[LeaderboardColumn, ...]:
        entries = self.value(board, "columns", list, "leaderboard.")
        columns = tuple(self.column(entry, index) for index, entry in enumerate(entries, 1))
        keys = [column.key for column in columns]
        if sorted(keys) != sorted(set(keys)) or not keys:
            raise self.fail("leaderboard columns must be listed once each, at least one")
        return columns

    def column(self, entry: Any, index: int) -> LeaderboardColumn:
        where = f"leaderboard.columns[{index}]."
        if not isinstance(entry, dict):
            raise self.fail(f"leaderboard column {index} must be a mapping with key, label and task")
        self.refuse_unknown(entry, _COLUMN_KEYS, where)
        key = self.value(entry, "key", str, where)
        if key not in LEADERBOARD_KEYS:
            close = difflib.get_close_matches(key, LEADERBOARD_KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.fail(f"leaderboard column '{key}' is not a score ({hint}scores: {', '.join(LEADERBOARD_KEYS)})")
        task = self.value(entry, "task", str, where)
        if task not in ("pixel", "instance"):
            raise self.fail(f"'{where}task' must be pixel or instance, not {shown(task)}")
        return LeaderboardColumn(key, self.text(entry, "label", where), task)
