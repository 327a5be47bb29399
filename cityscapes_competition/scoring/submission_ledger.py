"""The submission ledger: counts submissions where no platform does (a local or self-hosted scorer).

An SQLite file (stdlib ``sqlite3``) with one row per scored submission: who, which phase, when, its
status and its scores. Scoring is two steps, so a crash mid-scoring never burns a try:

    reservation = ledger.reserve(participant, phase, submitted_at, limits)  # checks the limits, records "pending"
    ...score...
    reservation.complete(scores)   # or reservation.fail(reason): a failed submission never counts

Concurrent scorers (processes on one machine; not over NFS, where SQLite's locks are unreliable) are safe:
every read-check-write is one ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock
before reading, so two scorers can never both see "19 of 20" and both record the 20th. A scorer that
finds the lock taken waits (the busy timeout) rather than failing.

What counts towards a participant's limits: completed submissions, and pending ones younger than
``stale_after``. A pending entry is a scorer still running; counting it is what stops parallel
submissions from overshooting a limit. A pending entry older than ``stale_after`` (default 2 hours;
the scoring program passes twice the competition's execution_time_limit) belongs to a scorer that died
without calling ``fail()`` (killed, power loss), and stops counting: such a crash costs the participant
a try for at most that long, never for good. Age is measured between submission times, so counting
never reads the clock. Entries recorded with ``counted=False`` (an organiser's re-scoring with the
rules switched off) are kept in the history but never count.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..core.errors import ReferenceDataError, printable, shown, shown_path

UTC = dt.UTC
DEFAULT_STALE_AFTER = dt.timedelta(hours=2)
DEFAULT_BUSY_TIMEOUT_SECONDS = 60.0
_SCHEMA_VERSION = 1
_STAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # fixed width, UTC: text order is time order
_FIX = "Point the scorer at a writable path for the ledger (a new file is created), or restore this one from a backup"
# Times the ledger and the rules work with: converting any of them to any zone, or adding a day, stays
# inside datetime's years 1..9999 (beyond, Python raises OverflowError).
EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = dt.datetime(9999, 1, 1, tzinfo=UTC)
MAX_PARTICIPANT_CHARS = 256  # a name is an identity: longer ones are refused, never cut (two would merge)
MAX_LABEL_CHARS = 1000
MAX_FAILURE_CHARS = 2000
_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")  # SQLite opens these beside the ledger

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    participant TEXT NOT NULL,
    phase INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    counted INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    finished_at TEXT,
    scores TEXT,
    failure TEXT,
    label TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS submissions_by_participant ON submissions (participant, phase, submitted_at)",
)

_COUNT_QUERY = """
SELECT COUNT(*), COALESCE(SUM(submitted_at >= ? AND submitted_at < ?), 0) FROM submissions
WHERE participant = ? AND phase = ? AND counted = 1
  AND (status = 'completed' OR (status = 'pending' AND submitted_at > ?))
"""


@dataclass(frozen=True)
class SubmissionLimits:
    per_day: int  # a day is a calendar day in time_zone
    total: int
    time_zone: dt.tzinfo


def local_day_bounds(moment: dt.datetime, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The calendar day in ``zone`` holding ``moment``: [its midnight, the next midnight)."""
    day = moment.astimezone(zone).date()
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)


class LimitReached(Exception):
    """A reservation refused; the caller turns it into the participant's message."""

    def __init__(self, kind: Literal["day", "total"], count: int, limit: int):
        super().__init__(f"{count} submissions counted, {kind} limit {limit}")
        self.kind = kind
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class LedgerRecord:
    entry_id: int
    participant: str
    phase: int
    submitted_at: dt.datetime  # aware, UTC
    counted: bool
    status: str  # pending, completed or failed
    scores: dict[str, float | None] | None
    failure: str | None
    label: str


@dataclass(frozen=True)
class Reservation:
    """A pending ledger entry; finish it with ``complete(scores)`` or ``fail(reason)``."""

    ledger: SubmissionLedger
    entry_id: int
    participant: str
    phase: int
    submitted_at: dt.datetime
    day_count: int  # counted submissions on that local day, this one included when counted
    total_count: int  # counted submissions in the phase, likewise

    def complete(self, scores: Mapping[str, float | None]) -> None:
        self.ledger.finish(self.entry_id, "completed", scores=scores)

    def fail(self, reason: str = "") -> None:
        self.ledger.finish(self.entry_id, "failed", failure=reason)


class SubmissionLedger:
    def __init__(
        self,
        path: Path,
        *,
        stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ):
        self.path = Path(path)
        self.stale_after = stale_after
        self.busy_timeout_seconds = busy_timeout_seconds

    def reserve(
        self,
        participant: str,
        phase: int,
        submitted_at: dt.datetime,
        limits: SubmissionLimits,
        *,
        counted: bool = True,
        label: str = "",
    ) -> Reservation:
        """Check the limits and record the submission as pending, in one transaction; LimitReached if refused."""
        participant = self._stored_participant(participant)
        submitted_at = self._in_range(submitted_at)
        day_start, day_end = local_day_bounds(submitted_at, limits.time_zone)
        stale_before = _earlier_by(submitted_at, self.stale_after)
        label = _storable(label, MAX_LABEL_CHARS)
        with self._transaction() as connection:
            arguments = (_stamp(day_start), _stamp(day_end), participant, phase, _stamp(stale_before))
            total, on_day = connection.execute(_COUNT_QUERY, arguments).fetchone()
            if counted:
                check_limits(on_day, total, limits)
            cursor = connection.execute(
                "INSERT INTO submissions (participant, phase, submitted_at, counted, status, label) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (participant, phase, _stamp(submitted_at), int(counted), label),
            )
            entry_id = int(cursor.lastrowid)
        added = int(counted)
        return Reservation(self, entry_id, participant, phase, submitted_at, on_day + added, total + added)

    def finish(
        self,
        entry_id: int,
        status: Literal["completed", "failed"],
        *,
        scores: Mapping[str, float | None] | None = None,
        failure: str | None = None,
    ) -> None:
        """Close a pending entry; closing one twice is a programming error. Any ``failure`` text is stored."""
        if failure is not None:
            failure = _storable(failure, MAX_FAILURE_CHARS)
        scores_text = json.dumps(_finite_scores(scores), sort_keys=True) if scores is not None else None
        with self._transaction() as connection:
            cursor = connection.execute(
                "UPDATE submissions SET status = ?, finished_at = ?, scores = ?, failure = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, _stamp(dt.datetime.now(UTC)), scores_text, failure, entry_id),
            )
            if cursor.rowcount != 1:
                self._refuse_unfinishable(connection, entry_id)

    def _refuse_unfinishable(self, connection: sqlite3.Connection, entry_id: int) -> None:
        found = connection.execute("SELECT 1 FROM submissions WHERE id = ?", (entry_id,)).fetchone()
        if found is None:  # not a bug of the caller's: the file was replaced while the submission was scored
            raise ReferenceDataError(
                f"ledger entry {entry_id} is gone: the ledger was replaced or restored during scoring",
                self.path,
                "Keep the ledger in place while scorers run",
            )
        raise RuntimeError(f"ledger entry {entry_id} is not pending (finished twice?)")

    def records(self, participant: str | None = None, phase: int | None = None) -> list[LedgerRecord]:
        """The history, oldest first, optionally of one participant and/or phase."""
        query = "SELECT id, participant, phase, submitted_at, counted, status, scores, failure, label FROM submissions"
        if participant is not None:
            participant = self._stored_participant(participant)
        wanted = (("participant", participant), ("phase", phase))
        conditions = [(column, value) for column, value in wanted if value is not None]
        if conditions:
            query += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in conditions)
        with self._transaction() as connection:
            rows = connection.execute(query + " ORDER BY submitted_at, id", [v for _, v in conditions]).fetchall()
        return [self._record(row) for row in rows]

    def _stored_participant(self, participant: str) -> str:
        """The name as the ledger stores it; refused when empty or too long to be a name."""
        if not isinstance(participant, str) or not participant.strip():
            raise ReferenceDataError("no participant name for the submission ledger", self.path, _FIX)
        if len(participant) > MAX_PARTICIPANT_CHARS:
            raise ReferenceDataError(
                f"the participant name {shown(participant)} is longer than {MAX_PARTICIPANT_CHARS} characters",
                self.path,
                "Give the scorer a shorter --participant name",
            )
        return printable(participant)  # SQLite stores UTF-8 only: bytes of a non-UTF-8 name become \xNN

    def _in_range(self, moment: dt.datetime) -> dt.datetime:
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        if not EARLIEST_TIME <= moment < LATEST_TIME:
            raise ReferenceDataError(
                f"the submission time {shown(moment.isoformat())} is not between 1970 and 9998",
                self.path,
                "Set the scoring machine's clock",
            )
        return moment

    def _record(self, row: tuple) -> LedgerRecord:
        try:
            return _record(row)
        except (ValueError, TypeError, RecursionError):  # a hand-edited or damaged entry
            raise ReferenceDataError(f"ledger entry {shown(row[0])} is damaged", self.path, _FIX) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; every SQLite problem becomes one message naming the file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._refuse_special_files()
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds, isolation_level=None)
        except OSError as error:
            raise ReferenceDataError(
                f"cannot open the submission ledger ({error.strerror or type(error).__name__})", self.path, _FIX
            ) from None
        except ValueError:  # only a path given through the API can hold one
            raise ReferenceDataError("cannot open the submission ledger (a NUL in its path)", self.path, _FIX) from None
        except sqlite3.Error as error:
            raise ReferenceDataError(f"cannot open the submission ledger ({error})", self.path, _FIX) from None
        try:
            connection.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no lost or double counts
            self._ensure_schema(connection)
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            _roll_back(connection)
            raise self._ledger_error(error) from None
        except BaseException:
            _roll_back(connection)
            raise
        finally:
            connection.close()

    def _refuse_special_files(self) -> None:
        """Only files may be the ledger and its side files: SQLite says no more than "disk I/O error" for a FIFO
        or a device as the ledger, and silently keeps its journal on a device (/dev/zero swallows it)."""
        for path in (self.path, *(Path(f"{self.path}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                continue  # SQLite creates it
            if not stat.S_ISREG(mode):
                raise ReferenceDataError(
                    f"cannot open the submission ledger: {shown_path(path)} is {file_kind(mode)}, not a file",
                    self.path,
                    _FIX,
                )

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise ReferenceDataError(
                f"the submission ledger has format {version}, newer than this scorer's {_SCHEMA_VERSION}",
                self.path,
                "Score with the version of the competition bundle that wrote it",
            )
        if version < _SCHEMA_VERSION:
            for statement in _SCHEMA:  # not executescript: it would commit the open transaction first
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _ledger_error(self, error: sqlite3.Error) -> ReferenceDataError:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            return ReferenceDataError(
                f"the submission ledger stayed locked by another scorer for {self.busy_timeout_seconds:g} s",
                self.path,
                "Try again when the other scorer has finished",
            )
        return ReferenceDataError(f"not a usable submission ledger ({error})", self.path, _FIX)


def check_limits(on_day: int, total: int, limits: SubmissionLimits) -> None:
    """LimitReached when a participant with ``on_day``/``total`` counted submissions may not make another."""
    if total >= limits.total:
        raise LimitReached("total", total, limits.total)
    if on_day >= limits.per_day:
        raise LimitReached("day", on_day, limits.per_day)


def _storable(text: str, limit: int) -> str:
    """``text`` as SQLite can store it (UTF-8: the surrogate escapes of a non-UTF-8 file name cannot be), cut."""
    text = printable(str(text), limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."  # escaping may have lengthened it


def _earlier_by(moment: dt.datetime, span: dt.timedelta) -> dt.datetime:
    try:
        return max(moment - span, EARLIEST_TIME)
    except OverflowError:  # a huge span (execution_time_limit): nothing is that old
        return EARLIEST_TIME


def file_kind(mode: int) -> str:
    """What a non-regular file is, for a message: "a folder", "a FIFO"..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _roll_back(connection: sqlite3.Connection) -> None:
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the original problem is the one to report; closing the connection discards the transaction


def _stamp(moment: dt.datetime) -> str:
    if moment.tzinfo is None:  # naive means UTC throughout the competition
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_STAMP_FORMAT)


def _finite_scores(scores: Mapping[str, float | None]) -> dict[str, float | None]:
    # JSON has no NaN; an undefined score is stored as null, as in scores.json
    return {
        key: (float(value) if value is not None and math.isfinite(value) else None) for key, value in scores.items()
    }


def _record(row: tuple) -> LedgerRecord:
    entry_id, participant, phase, submitted_at, counted, status, scores, failure, label = row
    scores = json.loads(scores) if scores is not None else None
    if scores is not None and not isinstance(scores, dict):
        raise ValueError("scores are not a mapping")
    return LedgerRecord(
        entry_id=entry_id,
        participant=participant,
        phase=phase,
        submitted_at=dt.datetime.strptime(submitted_at, _STAMP_FORMAT).replace(tzinfo=UTC),
        counted=bool(counted),
        status=status,
        scores=scores,
        failure=failure,
        label=label,
    )
