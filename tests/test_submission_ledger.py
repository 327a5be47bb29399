"""The submission ledger: two-step counting, scores kept, failures free, and no lost or double counts."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import outcome_within

from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.scoring.submission_ledger import (
    MAX_FAILURE_CHARS,
    MAX_LABEL_CHARS,
    LimitReached,
    SubmissionLedger,
    SubmissionLimits,
)

UTC = dt.UTC
MOSCOW = ZoneInfo("Europe/Moscow")
NOON = dt.datetime(2019, 3, 10, 9, tzinfo=UTC)  # 12:00 Moscow time


def limits(per_day: int = 20, total: int = 200) -> SubmissionLimits:
    return SubmissionLimits(per_day=per_day, total=total, time_zone=MOSCOW)


def test_scores_are_recorded(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    reservation = ledger.reserve("alice", 1, NOON, limits(), label="input/res")
    assert (reservation.day_count, reservation.total_count) == (1, 1)
    reservation.complete({"iou_class": 0.625, "ap100m": math.nan, "ap": None})
    [record] = ledger.records()
    assert record.participant == "alice"
    assert record.phase == 1
    assert record.submitted_at == NOON
    assert record.status == "completed"
    assert record.counted
    assert record.label == "input/res"
    assert record.scores == {"iou_class": 0.625, "ap100m": None, "ap": None}


def test_a_failed_submission_never_counts(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    ledger.reserve("alice", 1, NOON, limits(per_day=1)).fail("model crashed")
    assert ledger.reserve("alice", 1, NOON, limits(per_day=1)).day_count == 1
    assert [record.failure for record in ledger.records("alice")] == ["model crashed", None]


def test_pending_entries_count_until_they_are_stale(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite", stale_after=dt.timedelta(hours=2))
    ledger.reserve("alice", 1, NOON, limits(per_day=1))  # a scorer still running, or dead
    with pytest.raises(LimitReached):
        ledger.reserve("alice", 1, NOON + dt.timedelta(hours=1, minutes=59), limits(per_day=1))
    assert ledger.reserve("alice", 1, NOON + dt.timedelta(hours=2), limits(per_day=1)).day_count == 1


def test_days_end_at_moscow_midnight(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    ledger.reserve("alice", 1, dt.datetime(2019, 3, 9, 21, tzinfo=UTC), limits(per_day=1)).complete({})
    with pytest.raises(LimitReached) as refusal:
        ledger.reserve("alice", 1, dt.datetime(2019, 3, 10, 20, 59, 59, tzinfo=UTC), limits(per_day=1))
    assert (refusal.value.kind, refusal.value.count, refusal.value.limit) == ("day", 1, 1)
    assert ledger.reserve("alice", 1, dt.datetime(2019, 3, 10, 21, tzinfo=UTC), limits(per_day=1)).day_count == 1


def test_total_limit_per_phase_and_participant(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    for day in range(3):
        ledger.reserve("alice", 1, NOON + dt.timedelta(days=day), limits(total=3)).complete({})
    with pytest.raises(LimitReached) as refusal:
        ledger.reserve("alice", 1, NOON + dt.timedelta(days=5), limits(total=3))
    assert (refusal.value.kind, refusal.value.count) == ("total", 3)
    assert ledger.reserve("alice", 2, NOON + dt.timedelta(days=5), limits(total=3)).total_count == 1
    assert ledger.reserve("bob", 1, NOON + dt.timedelta(days=5), limits(total=3)).total_count == 1


def test_uncounted_entries_are_kept_but_never_count(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    for _ in range(3):
        ledger.reserve("alice", 1, NOON, limits(per_day=1), counted=False).complete({"iou_class": 0.1})
    assert ledger.reserve("alice", 1, NOON, limits(per_day=1)).day_count == 1
    assert len(ledger.records("alice", 1)) == 4


def test_finishing_twice_is_refused(tmp_path) -> None:
    reservation = SubmissionLedger(tmp_path / "ledger.sqlite").reserve("alice", 1, NOON, limits())
    reservation.complete({})
    with pytest.raises(RuntimeError, match="not pending"):
        reservation.fail()


def _race(path: Path, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    ledger = SubmissionLedger(path, busy_timeout_seconds=10)  # waits are milliseconds; a broken lock fails fast
    start.wait()
    for attempt in range(3):
        results.put(_submit_and_score(ledger, NOON + dt.timedelta(seconds=attempt)))


def _submit_and_score(ledger: SubmissionLedger, submitted_at: dt.datetime) -> str:
    try:
        ledger.reserve("alice", 1, submitted_at, limits(per_day=10)).complete({"iou_class": 0.5})
    except LimitReached:
        return "refused"
    except Exception as error:  # reported, so a broken ledger fails the test at once instead of timing out
        return f"error: {error}"
    return "accepted"


def test_parallel_scorers_record_exactly_the_limit(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(8), context.Queue()
    workers = [context.Process(target=_race, args=(path, start, results)) for _ in range(8)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=30) for _ in range(8 * 3)]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(set(outcomes)) == ["accepted", "refused"]
    assert outcomes.count("accepted") == 10
    records = SubmissionLedger(path).records("alice")
    assert [record.status for record in records] == ["completed"] * 10


def test_a_file_that_is_not_a_ledger_is_named(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some text " * 50)
    with pytest.raises(ReferenceDataError, match=f"^{path}: not a usable submission ledger"):
        SubmissionLedger(path).reserve("alice", 1, NOON, limits())


def test_a_ledger_from_a_newer_version_is_refused(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(ReferenceDataError, match="format 99, newer"):
        SubmissionLedger(path).records()


def test_a_ledger_held_too_long_is_reported(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    SubmissionLedger(path).records()  # create it
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ReferenceDataError, match=r"locked by another scorer for 0\.1 s"):
            SubmissionLedger(path, busy_timeout_seconds=0.1).reserve("alice", 1, NOON, limits())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert SubmissionLedger(path).records() == []  # the refused reservation left nothing behind


def test_an_unusable_path_is_named(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReferenceDataError, match="cannot open the submission ledger"):
        SubmissionLedger(blocker / "ledger.sqlite").records()


def test_an_empty_participant_name_is_refused(tmp_path) -> None:
    with pytest.raises(ReferenceDataError, match="no participant name"):
        SubmissionLedger(tmp_path / "ledger.sqlite").reserve(" ", 1, NOON, limits())


# ---- hostile values and files: one message, never a crash, a hang or unbounded memory ----


def test_a_failure_quoting_a_non_utf8_file_name_releases_the_try(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    reason = "FileNotFoundError: [Errno 2] No such file or directory: 'res/pixel/frankfurt_\udcff\udcfe.png'"
    ledger.reserve("alice", 1, NOON, limits(per_day=1)).fail(reason)  # SQLite cannot store surrogates as such
    assert ledger.reserve("alice", 1, NOON, limits(per_day=1)).day_count == 1  # the failed one did not count
    failed = ledger.records("alice")[0]
    assert failed.status == "failed"
    assert failed.failure.endswith("'res/pixel/frankfurt_\\xff\\xfe.png'")


@pytest.mark.parametrize(
    "reason",
    ["", "\x00\x1b[31m\ud800 and \U0010ffff", "x" * 10_000_000, "line one\nline two\r\n\t"],
    ids=["empty", "nul-escape-lone-surrogate", "ten-million-chars", "line-breaks"],
)
def test_releasing_a_try_takes_any_reason(tmp_path, reason: str) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    ledger.reserve("alice", 1, NOON, limits()).fail(reason)
    [record] = ledger.records()
    assert record.status == "failed"
    assert len(record.failure) <= 4 * MAX_FAILURE_CHARS
    assert record.failure.isprintable() or not record.failure


def test_labels_and_participants_that_sqlite_cannot_store_are_escaped(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite")
    name = "b\udcffb\x1b"  # a --participant given as bytes that are not UTF-8, and an escape character
    ledger.reserve(name, 1, NOON, limits(per_day=1), label="/input/\udcff" + "x" * 100_000).complete({})
    with pytest.raises(LimitReached):  # the same (escaped) name every time: still one participant
        ledger.reserve(name, 1, NOON, limits(per_day=1))
    [record] = ledger.records(name)
    assert record.participant == "b\\xffb\\x1b"
    assert record.label.startswith("/input/\\xff") and len(record.label) <= MAX_LABEL_CHARS


def test_a_participant_name_too_long_to_be_one_is_refused(tmp_path) -> None:
    with pytest.raises(ReferenceDataError, match=r"participant name 'aaa.*' is longer than 256 characters") as error:
        SubmissionLedger(tmp_path / "ledger.sqlite").reserve("a" * 1_000_000, 1, NOON, limits())
    assert len(str(error.value)) < 500


@pytest.mark.parametrize(
    "moment",
    [dt.datetime(9999, 12, 31, 23, tzinfo=UTC), dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23)],
)
def test_a_submission_time_that_would_overflow_is_refused(tmp_path, moment: dt.datetime) -> None:
    with pytest.raises(ReferenceDataError, match=r"is not between 1970 and 9998\. Set the scoring machine's clock"):
        SubmissionLedger(tmp_path / "ledger.sqlite").reserve("alice", 1, moment, limits())


def test_an_enormous_stale_time_counts_every_pending_entry(tmp_path) -> None:
    ledger = SubmissionLedger(tmp_path / "ledger.sqlite", stale_after=dt.timedelta.max)
    ledger.reserve("alice", 1, NOON, limits(per_day=1))
    with pytest.raises(LimitReached):
        ledger.reserve("alice", 1, NOON, limits(per_day=1))


def test_a_ledger_path_that_is_a_folder_is_named(tmp_path) -> None:
    with pytest.raises(ReferenceDataError, match=f"^{tmp_path}: cannot open the submission ledger"):
        SubmissionLedger(tmp_path).records()


def _reserve(path: Path) -> None:
    SubmissionLedger(path, busy_timeout_seconds=1).reserve("alice", 1, NOON, limits())


def test_a_ledger_path_that_is_a_fifo_is_refused_without_waiting(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    os.mkfifo(path)
    kind, message = outcome_within(_reserve, path)
    assert kind == "ReferenceDataError"
    assert message.startswith(f"{path}: cannot open the submission ledger: {path} is a FIFO, not a file")


@pytest.mark.parametrize("suffix", ["", "-journal"])
def test_a_ledger_on_a_device_is_refused(tmp_path, suffix: str) -> None:
    path = tmp_path / "ledger.sqlite"
    Path(f"{path}{suffix}").symlink_to("/dev/zero")
    kind, message = outcome_within(_reserve, path)
    assert (kind, message.split(". ")[0]) == (
        "ReferenceDataError",
        f"{path}: cannot open the submission ledger: {path}{suffix} is a character device, not a file",
    )


def test_a_corrupt_ledger_is_named(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    SubmissionLedger(path).records()  # create it
    with sqlite3.connect(path) as connection:  # enough entries for several pages
        rows = [(f"participant {n}", "2019-03-10 09:00:00.000000", "x" * 100) for n in range(2000)]
        connection.executemany(
            "INSERT INTO submissions (participant, phase, submitted_at, counted, status, label) "
            "VALUES (?, 1, ?, 1, 'completed', ?)",
            rows,
        )
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page past the first overwritten
    path.write_bytes(bytes(data))
    kind, message = outcome_within(_reserve, path)
    assert (kind, message.split(" (")[0]) == ("ReferenceDataError", f"{path}: not a usable submission ledger")


@pytest.mark.parametrize(
    ("column", "value"),
    [("submitted_at", "yesterday"), ("scores", "{not json"), ("scores", "[1, 2]"), ("scores", "[" * 100_000)],
)
def test_a_damaged_entry_is_named(tmp_path, column: str, value: str) -> None:
    path = tmp_path / "ledger.sqlite"
    SubmissionLedger(path).reserve("alice", 1, NOON, limits()).complete({"ap": 0.5})
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE submissions SET {column} = ?", (value,))
    with pytest.raises(ReferenceDataError, match=f"^{path}: ledger entry 1 is damaged"):
        SubmissionLedger(path).records()


def test_an_entry_gone_with_a_replaced_ledger_is_named(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    reservation = SubmissionLedger(path).reserve("alice", 1, NOON, limits())
    path.unlink()  # replaced (here: by a new, empty ledger) while the submission was scored
    with pytest.raises(ReferenceDataError, match="ledger entry 1 is gone: the ledger was replaced or restored"):
        reservation.fail("scoring failed")
