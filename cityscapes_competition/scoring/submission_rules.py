"""The competition's submission rules, enforced exactly by the scoring program.

Rules (challenge.yaml, per phase): a submission must be made strictly before its phase's deadline (to
the second, in the competition's time zone); at most ``max_submissions_per_day`` per participant on one
calendar day in that zone, and ``max_submissions`` in total. Failed submissions never count. The
platforms count too, but coarsely (CodaLab v1.5: whole UTC days, the competition's end by date only).

Where the data comes from:
- **CodaLab v1.5** (INPUT/metadata exists): read in codalab/codalab-competitions,
  ``codalab/apps/web/tasks.py`` ``score()``. It writes the scoring run's ``input.txt``, which the worker
  (codalab/competitions-v1-compute-worker ``worker.py`` ``get_bundle``) copies to ``INPUT/metadata``:
  ``submitted-by`` (the participant's username), ``submitted-at``
  (``submitted_at.replace(microsecond=0).isoformat()``, UTC: ``2019-03-10T08:00:00+00:00``),
  ``competition-submission`` (the participant's ``submission_number`` in the phase), ``competition-phase``
  (the phase's ``phasenumber``, not its pk) and ``automatic-submission`` (``True``/``False``), beside
  ``ref``/``res``/``coopetition`` URLs. The ``coopetition`` zip unpacks to ``INPUT/coopetition/``, with one
  ``coopetition_phase_<phasenumber>.txt`` per phase: a ``csv.DictWriter`` dump of the phase's FINISHED
  submissions (all participants; timestamps ``str(datetime)``: microseconds only when nonzero).
- **Codabench** gives the scoring program no such data (only ``ref/`` and ``res/``); it enforces its
  own limits. **Locally or self-hosted**: a submission ledger (submission_ledger.py), if given.

Counting on CodaLab. The CSV has no submission time. Its ``started_at`` is the closest: the models set it
on every save while the status is RUNNING, so it is when the last step (scoring) started, after the
submission (queue and ingestion time later); ``completed_at`` also moves later (every save while
FINISHED, e.g. making it public). So: a participant's submissions made before this one are their finished
rows with a lower ``submission_number`` (CodaLab gives each new one max + 1 over all of theirs in the
phase); the total counts those, the day counts those that started on or after this submission's local
midnight. Only a submission that waited in the queue across midnight is counted on the wrong day.

Organiser re-runs (``views.submission_re_run``, ``tasks.re_run_all_submissions_in_phase``, phase
migration in ``models.py``): each creates a NEW submission of the same participant (so ``submitted-by``
is the participant), with a fresh ``submitted_at``, saved with ``ignore_submission_limits=True``, which
skips the numbering: its number is the first unused one counting from 0, so the participant's first
forced submission in a phase is number 0, later ones max + 1 (indistinguishable from their own). A
submission is recognised as an organiser's when (see ``recognise_rerun``):
1. ``automatic-submission`` is true (a phase migration), or
2. its number is 0 (a participant's own submissions are numbered from 1), or
3. its number is already among the participant's finished submissions (the same submission scored again), or
4. it was made in a phase at least ``PLATFORM_CLOSE_MARGIN`` after the next phase started: CodaLab takes a
   participant's submission only into the active phase (``CompetitionPhase.is_active``, checked in
   ``api/views/competition_views.py``), which ends when the next one starts. Not for the last phase: its
   end on the platform is the competition's end date, which challenge.yaml does not hold; or
5. it was made in a phase before that phase started, for the same reason: only the platform puts it there.
   That is CodaLab's phase migration (challenge.yaml ``migrate_to_next_phase``): ``models.py``
   ``Competition.check_future_phase_sumbmissions`` runs every 5 minutes while the earlier phase is active
   and re-runs each participant's new leaderboard submission in the next phase, so only a participant's
   first migrated run there has ``automatic-submission`` true (``tasks.py`` ``score``: the participant's
   only submission in the phase) and number 0.
A migrated run is never counted either: a participant's earlier rows that started before the phase did
(migrated runs, scored while the earlier phase ran) are left out of their counts.
Any other re-run (a second re-run of a participant's submissions after the final deadline, or re-runs
that push a day over its limit) is refused like a submission: re-score with
``enforce_submission_rules: false`` in challenge.yaml, or the scorer's ``--no-submission-rules``.

Reading the platform's files. Whatever is in them ends in one ReferenceDataError naming the file, never
another exception, a hang or unbounded memory: they are opened without blocking and read only when they
are regular files (a FIFO would block forever, /dev/zero never ends); every read is capped (the metadata
at MAX_METADATA_BYTES; the CSV at MAX_CSV_BYTES and MAX_CSV_LINES, a record at MAX_CSV_RECORD_CHARS);
the metadata's YAML is read from the parser's events (no aliases, so no alias bomb; bounded nesting; each
key once); the CSV is streamed keeping only counts; numbers have at most MAX_NUMBER_DIGITS digits; times
lie in the years 1970 to 9998 (so converting them never overflows); every quoted value goes through
``shown``.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.challenge import ChallengeSettings, Phase
from ..core.errors import ReferenceDataError, SubmissionError, printable, shown, shown_path
from .submission_ledger import (
    EARLIEST_TIME,
    LATEST_TIME,
    LimitReached,
    Reservation,
    SubmissionLedger,
    SubmissionLimits,
    check_limits,
    file_kind,
    local_day_bounds,
)

UTC = dt.UTC
PLATFORM_CLOSE_MARGIN = dt.timedelta(minutes=10)  # a submission's saving may lag its acceptance a little
METADATA_FILE = "metadata"
COOPETITION_FOLDER = "coopetition"
CSV_COLUMNS = (
    "participant__user__username",
    "pk",
    "when_made_public",
    "when_unmade_public",
    "started_at",
    "completed_at",
    "download_count",
    "submission_number",
    "like_count",
    "dislike_count",
)
_NEEDED_CSV_COLUMNS = ("participant__user__username", "started_at", "completed_at", "submission_number")
# [0-9], not \d: \d also matches other scripts' digits
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})?"
)
MAX_METADATA_BYTES = 64 * 1024  # CodaLab writes a few hundred
MAX_CSV_BYTES = 256 * 1024 * 1024  # about two million rows
MAX_CSV_RECORD_CHARS = 1024 * 1024  # CodaLab's rows are about 150; csv's own field limit is 128 K
MAX_CSV_LINES = 4_000_000  # bounds the time (under a microsecond a line), also for files of blank lines
MAX_NUMBER_DIGITS = 18  # int() raises ValueError past 4300 digits; no count comes near 18
MAX_SHOWN_NAME = 100  # a participant's name in a log line
_MAX_YAML_DEPTH = 8  # the metadata is flat; PyYAML's composer recurses once per level
_MAX_STALE_AFTER = dt.timedelta(days=365)  # timedelta overflows on an absurd execution_time_limit
_PLATFORM_FIX = (
    "This file is written by the platform for the scoring run; if the platform's format changed, "
    "score without the rules (enforce_submission_rules: false in challenge.yaml, or --no-submission-rules)"
)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class RuleDecision:
    """What the rules said about a submission that may be scored."""

    checked: bool  # False: re-run, rules switched off, or nothing to count with
    summary: str  # one line for the scoring log
    reservation: Reservation | None = None  # ledger mode: finish it after scoring

    def complete(self, scores: Mapping[str, float | None]) -> None:
        """Record the scores (ledger mode; nothing to do otherwise)."""
        if self.reservation is not None:
            self.reservation.complete(scores)

    def fail(self, reason: str = "") -> None:
        """Release the try: a failed submission never counts (ledger mode; nothing to do otherwise).

        Any ``reason`` text is stored, escaped and cut (it may quote a non-UTF-8 file name)."""
        if self.reservation is not None:
            self.reservation.fail(reason)


@dataclass(frozen=True)
class PlatformSubmission:
    """The scoring run's INPUT/metadata on CodaLab v1.5."""

    participant: str
    submitted_at: dt.datetime  # aware, UTC
    number: int  # the participant's submission number in the phase
    phase_number: int
    automatic: bool


@dataclass(frozen=True)
class FinishedSubmission:
    """One row of INPUT/coopetition/coopetition_phase_<N>.txt."""

    participant: str
    number: int
    started_at: dt.datetime  # aware, UTC


def check_submission(
    input_dir: Path,
    settings: ChallengeSettings,
    *,
    ledger_path: Path | None,
    now: dt.datetime | None = None,
    participant: str | None = None,
    enforce: bool = True,
) -> RuleDecision:
    """Apply the rules to the submission being scored; SubmissionError (the message) when refused.

    Platform mode when ``INPUT/metadata`` exists, else ledger mode when ``ledger_path`` is given (the
    submission time is ``now``, the participant ``participant`` or the OS user), else nothing is checked.
    ``enforce=False`` is the scorer's ``--no-submission-rules``.
    """
    metadata = input_dir / METADATA_FILE
    switched_off = _switched_off(settings, enforce)
    if _present(metadata):
        if switched_off:
            return RuleDecision(False, f"Submission rules not checked: {switched_off}.")
        return _check_platform(input_dir, metadata, settings)
    if ledger_path is not None:
        moment = _aware(now or dt.datetime.now(UTC))
        who = participant if participant is not None else _os_user()  # --participant "" is refused, not ignored
        ledger = SubmissionLedger(ledger_path, stale_after=_stale_after(settings))
        return _check_with_ledger(ledger, settings, who, moment, switched_off, label=str(input_dir))
    reason = switched_off or f"no platform metadata ({shown_path(metadata)}) and no submission ledger"
    return RuleDecision(False, f"Submission rules not checked: {reason}.")


def _present(path: Path) -> bool:
    """Whether anything is at ``path``: a dangling link or an unreadable entry is refused when read, not ignored."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _stale_after(settings: ChallengeSettings) -> dt.timedelta:
    """How long a crashed scorer's reservation counts: twice the time limit (see submission_ledger.py)."""
    return dt.timedelta(seconds=min(2 * settings.execution_time_limit, _MAX_STALE_AFTER.total_seconds()))


def _switched_off(settings: ChallengeSettings, enforce: bool) -> str:
    if not settings.enforce_submission_rules:
        return f"enforce_submission_rules is false in {printable(settings.source.name, MAX_SHOWN_NAME)}"
    return "" if enforce else "--no-submission-rules"


# ---- platform mode (CodaLab v1.5) ----


def _check_platform(input_dir: Path, metadata: Path, settings: ChallengeSettings) -> RuleDecision:
    submission = read_platform_metadata(metadata)
    phase = _platform_phase(settings, submission.phase_number, metadata)
    rerun = recognise_rerun(submission, phase, settings)
    if rerun:
        return _rerun_decision(submission, phase, rerun)
    prior = count_prior_submissions(coopetition_file(input_dir, phase.number), submission, phase, settings.time_zone)
    if prior.scored_before:
        return _rerun_decision(submission, phase, "its number is already among the finished submissions")
    refuse_after_deadline(phase, submission.submitted_at, settings)
    try:
        check_limits(prior.on_day, prior.earlier, _limits(settings))
    except LimitReached as refusal:
        raise _limit_error(settings, phase, submission.submitted_at, refusal) from None
    summary = _summary(settings, phase, submission.submitted_at, prior.on_day + 1, prior.earlier + 1)
    return RuleDecision(True, summary)


def coopetition_file(input_dir: Path, phase_number: int) -> Path:
    return input_dir / COOPETITION_FOLDER / f"coopetition_phase_{phase_number}.txt"


def recognise_rerun(submission: PlatformSubmission, phase: Phase, settings: ChallengeSettings) -> str:
    """Why this submission is an organiser's or the platform's (rules 1, 2, 4 and 5 of the docstring), or ""."""
    if submission.automatic:
        return "automatic-submission: an automatic migration to this phase"
    if submission.number == 0:
        return "submission number 0: only submissions an organiser forces in are numbered from 0"
    following = _next_phase(settings, phase)
    if following is not None and submission.submitted_at >= following.start + PLATFORM_CLOSE_MARGIN:
        return f"made after {following.name} started, when the platform takes no participant's submission here"
    if submission.submitted_at < phase.start:
        return f"made before {phase.name} started: a phase migration by the platform"
    return ""


def _rerun_decision(submission: PlatformSubmission, phase: Phase, reason: str) -> RuleDecision:
    summary = (
        f"{phase.name}, submission {submission.number} of {printable(submission.participant, MAX_SHOWN_NAME)}: "
        "an organiser's re-run "
        f"({reason}); the submission rules do not apply."
    )
    return RuleDecision(False, summary)


def _platform_phase(settings: ChallengeSettings, number: int, metadata: Path) -> Phase:
    for phase in settings.phases:
        if phase.number == number:
            return phase
    known = ", ".join(str(phase.number) for phase in settings.phases)
    raise ReferenceDataError(
        f"competition-phase is {number}, but {settings.source.name} has phases {known}",
        metadata,
        f"Build the bundle from {settings.source.name} again so that its phases match, and upload it",
    )


def read_platform_metadata(path: Path) -> PlatformSubmission:
    """INPUT/metadata as CodaLab v1.5 writes it; any deviation is one message naming the file."""
    fields = _yaml_mapping(path)

    def field(key: str) -> str:
        value = fields.get(key)
        if value is None or not value.strip():
            raise ReferenceDataError(f"no '{key}' (a text value) in the platform's metadata", path, _PLATFORM_FIX)
        return value.strip()

    automatic = fields.get("automatic-submission", "False")
    if automatic is None or automatic.strip().lower() not in ("true", "false"):
        was = shown(automatic) if automatic is not None else "a list or mapping"
        raise ReferenceDataError(f"automatic-submission must be True or False, not {was}", path, _PLATFORM_FIX)
    return PlatformSubmission(
        participant=field("submitted-by"),
        submitted_at=_timestamp_in(path, "submitted-at", field("submitted-at")),
        number=_whole_number(path, "competition-submission", field("competition-submission")),
        phase_number=_whole_number(path, "competition-phase", field("competition-phase")),
        automatic=automatic.strip().lower() == "true",
    )


def _yaml_mapping(path: Path) -> dict[str, str | None]:
    """The metadata's top-level keys and their values: the text as written, or None for a list or mapping.

    Read from the parser's events, never composed or constructed: an alias is refused (a YAML alias bomb
    of a few hundred bytes stands for gigabytes), nesting is bounded (the composer recurses once per
    level), a key may appear once. Every scalar stays text (as with BaseLoader), so a username like "yes"
    or "123" is read as written."""
    text = _metadata_text(path)
    try:
        return _top_level_fields(path, yaml.parse(text, Loader=yaml.BaseLoader))
    except yaml.YAMLError as error:
        problem = f"the platform's metadata is not valid YAML ({_yaml_problem(error)})"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX) from None


def _metadata_text(path: Path) -> str:
    try:
        with _open_regular_file(path, MAX_METADATA_BYTES, "the platform's metadata") as file:
            data = file.read()
    except OSError as error:
        problem = f"cannot read the platform's metadata ({_os_problem(error)})"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX) from None
    if b"\0" in data:
        raise ReferenceDataError("the platform's metadata holds a NUL byte: it is not text", path, _PLATFORM_FIX)
    try:
        text = data.decode("utf-8-sig")  # a byte order mark is harmless: skipped
    except UnicodeDecodeError as error:
        problem = f"the platform's metadata is not UTF-8 text (byte 0x{data[error.start]:02x} at {error.start})"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX) from None
    if not text.strip():
        raise ReferenceDataError("the platform's metadata is empty", path, _PLATFORM_FIX)
    return text


def _top_level_fields(path: Path, events: Iterable[yaml.Event]) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    depth, documents, mapping, key = 0, 0, False, None  # key: a top-level key whose value comes next
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            raise _metadata_error(path, "uses a YAML alias (*name), which the platform never writes")
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _metadata_error(path, "holds more than one YAML document")
        elif isinstance(event, yaml.CollectionStartEvent):
            if depth == 0:
                if not isinstance(event, yaml.MappingStartEvent):
                    raise _metadata_error(path, "is not a YAML mapping")
                mapping = True
            elif depth == 1:
                key = _field(path, fields, key, None)
            depth += 1
            if depth > _MAX_YAML_DEPTH:
                raise _metadata_error(path, f"nests YAML deeper than {_MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            if depth == 0:
                raise _metadata_error(path, "is not a YAML mapping")
            if depth == 1:
                key = _field(path, fields, key, event.value)
    if not mapping:  # only comments
        raise _metadata_error(path, "is not a YAML mapping")
    return fields


def _field(path: Path, fields: dict[str, str | None], key: str | None, value: str | None) -> str | None:
    """Take a top-level key (``key`` None) or its value; the key now awaiting its value, if any."""
    if key is not None:
        fields[key] = value
        return None
    if value is None:
        raise _metadata_error(path, "has a key that is a list or mapping, not text")
    if value in fields:
        raise _metadata_error(path, f"has the key {shown(value)} twice")
    fields[value] = None
    return value


def _metadata_error(path: Path, problem: str) -> ReferenceDataError:
    return ReferenceDataError(f"the platform's metadata {problem}", path, _PLATFORM_FIX)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = printable(str(getattr(error, "problem", None) or "syntax error"), 120)
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem


def read_finished_submissions(path: Path, participant: str | None = None) -> list[FinishedSubmission]:
    """The phase's finished submissions (coopetition CSV), of ``participant`` only when given; failed ones are
    not listed, so never count."""
    return list(iter_finished_submissions(path, participant))


def iter_finished_submissions(path: Path, participant: str | None = None) -> Iterator[FinishedSubmission]:
    """The rows of ``read_finished_submissions``, streamed: memory stays bounded whatever the file's length.

    Every row must have the header's columns; only ``participant``'s rows (all when None) are read further."""
    try:
        raw = _open_regular_file(path, MAX_CSV_BYTES, "the finished submissions")
        with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as file:  # a byte order mark is skipped
            lines = _CsvLines(path, file)
            reader = csv.reader(lines)
            header = _csv_header(path, next(reader, []))
            lines.record_chars = 0
            for row in reader:
                lines.record_chars = 0
                if not row:
                    continue  # a blank line, as csv.DictReader skips them
                if len(row) != header.width:
                    problem = f"line {reader.line_num} has {len(row)} fields, the header {header.width}"
                    raise ReferenceDataError(problem, path, _PLATFORM_FIX)
                if participant is None or row[header.index["participant__user__username"]].strip() == participant:
                    yield _finished_row(path, reader.line_num, header, row)
    except FileNotFoundError:
        raise ReferenceDataError(
            "missing: the platform lists the phase's finished submissions there", path, _PLATFORM_FIX
        ) from None
    except UnicodeDecodeError:
        raise ReferenceDataError("the finished submissions are not UTF-8 text", path, _PLATFORM_FIX) from None
    except OSError as error:
        problem = f"cannot read the finished submissions ({_os_problem(error)})"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX) from None
    except csv.Error as error:
        problem = f"cannot read the finished submissions ({printable(str(error), 200)})"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX) from None


@dataclass(frozen=True)
class PriorSubmissions:
    """What the rules need from the CSV about the submission being scored."""

    scored_before: bool  # its number is among the participant's finished submissions: a re-run
    earlier: int  # the participant's finished submissions made before it (lower numbers, from 1, in the phase)
    on_day: int  # those of them started on its local day


def count_prior_submissions(
    path: Path, submission: PlatformSubmission, phase: Phase, zone: dt.tzinfo
) -> PriorSubmissions:
    """Counted while the CSV streams past: only three numbers are kept, however many rows it has.

    Rows that started before the phase did are phase migrations (rule 5 of the docstring), never counted."""
    day_start, _ = local_day_bounds(submission.submitted_at, zone)
    scored_before, earlier, on_day = False, 0, 0
    for row in iter_finished_submissions(path, submission.participant):
        scored_before = scored_before or row.number == submission.number
        if 0 < row.number < submission.number and row.started_at >= phase.start:
            earlier += 1
            on_day += row.started_at >= day_start
    return PriorSubmissions(scored_before, earlier, on_day)


class _CsvLines:
    """The CSV's lines for csv.reader: a record longer than MAX_CSV_RECORD_CHARS (a file without line ends
    would otherwise be read whole), more than MAX_CSV_LINES lines and NUL bytes (csv reads them as text)
    are refused."""

    def __init__(self, path: Path, file: io.TextIOBase):
        self.path = path
        self.file = file
        self.line = 0
        self.record_chars = 0  # reset by the reader's user at each record

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        text = self.file.readline(MAX_CSV_RECORD_CHARS + 1)
        if not text:
            raise StopIteration
        self.line += 1
        if self.line > MAX_CSV_LINES:
            raise ReferenceDataError(f"more than {MAX_CSV_LINES} lines", self.path, _PLATFORM_FIX)
        self.record_chars += len(text)
        if self.record_chars > MAX_CSV_RECORD_CHARS:
            problem = f"line {self.line}: a record longer than {MAX_CSV_RECORD_CHARS} characters"
            raise ReferenceDataError(problem, self.path, _PLATFORM_FIX)
        if "\0" in text:
            raise ReferenceDataError(f"line {self.line} holds a NUL byte", self.path, _PLATFORM_FIX)
        return text


@dataclass(frozen=True)
class _CsvHeader:
    width: int
    index: dict[str, int]  # of the needed columns


def _csv_header(path: Path, names: list[str]) -> _CsvHeader:
    missing = [column for column in _NEEDED_CSV_COLUMNS if column not in names]
    if missing:
        raise ReferenceDataError(
            f"the header lacks {', '.join(missing)} (expected {','.join(CSV_COLUMNS)})", path, _PLATFORM_FIX
        )
    twice = [column for column in _NEEDED_CSV_COLUMNS if names.count(column) > 1]
    if twice:
        raise ReferenceDataError(f"the header has {twice[0]} twice", path, _PLATFORM_FIX)
    return _CsvHeader(len(names), {column: names.index(column) for column in _NEEDED_CSV_COLUMNS})


def _finished_row(path: Path, line: int, header: _CsvHeader, row: list[str]) -> FinishedSubmission:
    where = f"line {line}"

    def value(column: str) -> str:
        return row[header.index[column]].strip()

    # started_at is empty only for rows that never ran (none should be finished); completed_at then
    started = value("started_at") or value("completed_at")
    return FinishedSubmission(
        participant=value("participant__user__username"),
        number=_whole_number(path, f"{where}: submission_number", value("submission_number")),
        started_at=_timestamp_in(path, f"{where}: started_at", started),
    )


def _whole_number(path: Path, what: str, text: str) -> int:
    # int() alone would take "+3", "3_000", "٣" and raise ValueError past 4300 digits
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        problem = f"{what} must be a whole number of at most {MAX_NUMBER_DIGITS} digits, not {shown(text)}"
        raise ReferenceDataError(problem, path, _PLATFORM_FIX)
    return int(text)


def _timestamp_in(path: Path, what: str, text: str) -> dt.datetime:
    try:
        return parse_timestamp(text)
    except ValueError as error:
        raise ReferenceDataError(f"{what} is {error}", path, _PLATFORM_FIX) from None


def parse_timestamp(text: str) -> dt.datetime:
    """ISO-8601 date and time, with or without microseconds and offset; naive means UTC. Aware, in UTC.

    ValueError (its message quoting ``text`` shortly) unless it is one, in the years 1970 to 9998: later or
    earlier ones overflow datetime when converted to a time zone or given a next midnight."""
    text = text.strip()
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(f"not an ISO-8601 time: {shown(text)}")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:  # e.g. month 13, or an offset of 24 hours or more
        raise ValueError(f"not an ISO-8601 time: {shown(text)}") from None
    if not EARLIEST_TIME.year <= moment.year < LATEST_TIME.year:
        raise ValueError(f"not a time in the years {EARLIEST_TIME.year} to {LATEST_TIME.year - 1}: {shown(text)}")
    return _aware(moment).astimezone(UTC)


# ---- reading the platform's files ----


def _open_regular_file(path: Path, limit: int, what: str) -> io.BufferedReader:
    """``path`` opened for reading if it is a regular file of at most ``limit`` bytes; its reads stop there too.

    O_NONBLOCK: opening a FIFO waits for a writer, forever if none comes; fstat then refuses a FIFO or a
    device (/dev/zero never ends) before a byte is read. OSError when it cannot be opened."""

    def too_large() -> ReferenceDataError:
        return ReferenceDataError(f"larger than {limit} bytes, too large for {what}", path, _PLATFORM_FIX)

    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            problem = f"cannot read {what} from {file_kind(info.st_mode)}, only from a file"
            raise ReferenceDataError(problem, path, _PLATFORM_FIX)
        if info.st_size > limit:
            raise too_large()
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return io.BufferedReader(_LimitedReader(descriptor, limit, too_large))  # which now owns the descriptor


class _LimitedReader(io.RawIOBase):
    """A file descriptor's bytes, refused past ``limit``: a file growing while it is read cannot fill memory."""

    def __init__(self, descriptor: int, limit: int, too_large: Callable[[], Exception]):
        super().__init__()
        self._descriptor = descriptor
        self._left = limit
        self._too_large = too_large

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        data = os.read(self._descriptor, min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise self._too_large()
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._descriptor)
        super().close()


def _os_problem(error: OSError) -> str:
    return printable(error.strerror or type(error).__name__, 200)


# ---- ledger mode (local, self-hosted) ----


def _check_with_ledger(
    ledger: SubmissionLedger,
    settings: ChallengeSettings,
    participant: str,
    now: dt.datetime,
    switched_off: str,
    label: str,
) -> RuleDecision:
    if switched_off:
        phase = _latest_started_phase(settings, now)
        reservation = ledger.reserve(participant, phase.number, now, _limits(settings), counted=False, label=label)
        return RuleDecision(False, f"Submission rules not checked: {switched_off}; recorded, not counted.", reservation)
    phase = _open_phase(settings, now)
    try:
        reservation = ledger.reserve(participant, phase.number, now, _limits(settings), label=label)
    except LimitReached as refusal:
        raise _limit_error(settings, phase, now, refusal) from None
    summary = _summary(settings, phase, now, reservation.day_count, reservation.total_count)
    return RuleDecision(True, f"{summary} (ledger {shown_path(ledger.path)})", reservation)


def _open_phase(settings: ChallengeSettings, now: dt.datetime) -> Phase:
    """The phase taking submissions at ``now``; refused with when to submit when none is."""
    phase = settings.phase_at(now)
    if phase is not None:
        return phase
    first = settings.phases[0]
    if now < first.start:
        raise SubmissionError(f"{first.name} has not started; submit from {_show(first.start, settings)}.")
    raise _deadline_error(_latest_started_phase(settings, now), now, settings)


def _latest_started_phase(settings: ChallengeSettings, moment: dt.datetime) -> Phase:
    started = [phase for phase in settings.phases if phase.start <= moment]
    return started[-1] if started else settings.phases[0]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a passwd entry
        return f"uid-{os.getuid()}"


# ---- the rules and their messages ----


def refuse_after_deadline(phase: Phase, submitted_at: dt.datetime, settings: ChallengeSettings) -> None:
    """SubmissionError unless ``submitted_at`` is strictly before the phase's deadline."""
    if not phase.accepts(submitted_at):
        raise _deadline_error(phase, submitted_at, settings)


def _deadline_error(phase: Phase, submitted_at: dt.datetime, settings: ChallengeSettings) -> SubmissionError:
    following = _next_phase(settings, phase)
    then = (
        f"submit to {following.name} from {_show(following.start, settings)}"
        if following is not None
        else "no more submissions are accepted"
    )
    return SubmissionError(
        f"This submission was made at {_show(submitted_at, settings)}, at or after the deadline of {phase.name}, "
        f"{_show(phase.deadline, settings)}; {then}."
    )


def _limits(settings: ChallengeSettings) -> SubmissionLimits:
    return SubmissionLimits(settings.max_submissions_per_day, settings.max_submissions, settings.time_zone)


def _limit_error(
    settings: ChallengeSettings, phase: Phase, submitted_at: dt.datetime, refusal: LimitReached
) -> SubmissionError:
    if refusal.kind == "total":
        return SubmissionError(
            f"You have made {refusal.count} submissions in {phase.name}, its limit (failed submissions do not "
            f"count); {phase.name} accepts no more submissions from you."
        )
    day_start, next_day = local_day_bounds(submitted_at, settings.time_zone)
    if next_day >= phase.deadline:
        then = f"{phase.name} closes at {_show(phase.deadline, settings)}, before that day"
    else:
        then = f"submit again from {_show(next_day, settings)}"
    return SubmissionError(
        f"You have made {refusal.count} submissions on {day_start:%Y-%m-%d} ({zone_label(settings)}), "
        f"the daily limit; {then}."
    )


def _summary(settings: ChallengeSettings, phase: Phase, submitted_at: dt.datetime, on_day: int, total: int) -> str:
    day = submitted_at.astimezone(settings.time_zone)
    return (
        f"{phase.name}, submission {on_day} of {settings.max_submissions_per_day} on {day:%Y-%m-%d} "
        f"({zone_label(settings)}), {total} of {settings.max_submissions} in total; "
        f"deadline {phase.deadline:{_TIME_FORMAT}} {zone_label(settings)}"
    )


def _next_phase(settings: ChallengeSettings, phase: Phase) -> Phase | None:
    later = [other for other in settings.phases if other.number > phase.number]
    return later[0] if later else None


def zone_label(settings: ChallengeSettings) -> str:
    """ "Moscow time" for Europe/Moscow; "UTC" for UTC."""
    key = getattr(settings.time_zone, "key", str(settings.time_zone))
    city = key.rsplit("/", 1)[-1].replace("_", " ")
    return city if city.upper() in ("UTC", "GMT") else f"{city} time"


def _show(moment: dt.datetime, settings: ChallengeSettings) -> str:
    """Local time and UTC: '2019-03-11 00:00:00 Moscow time (2019-03-10 21:00:00 UTC)'."""
    local = moment.astimezone(settings.time_zone)
    return f"{local:{_TIME_FORMAT}} {zone_label(settings)} ({moment.astimezone(UTC):{_TIME_FORMAT}} UTC)"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
