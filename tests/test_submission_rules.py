"""The submission rules: deadlines to the second, Moscow days, limits, re-runs, malformed platform data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from helpers import finished_row, memory_growth_within, outcome_within, platform_input

from cityscapes_competition.core.challenge import ChallengeSettings, load_challenge
from cityscapes_competition.core.errors import ReferenceDataError, SubmissionError
from cityscapes_competition.scoring.submission_ledger import SubmissionLedger
from cityscapes_competition.scoring.submission_rules import (
    CSV_COLUMNS,
    check_submission,
    parse_timestamp,
    read_platform_metadata,
)

UTC = dt.UTC
PHASE_1_DEADLINE = "2019-03-14T20:59:00+00:00"  # 23:59:00 Moscow time
PHASE_2_DEADLINE = "2019-04-09T20:59:00+00:00"


@pytest.fixture(scope="module")
def settings() -> ChallengeSettings:
    return load_challenge()


def check(input_dir: Path, settings: ChallengeSettings, **options):
    return check_submission(input_dir, settings, ledger_path=None, **options)


# ---- timestamps ----


@pytest.mark.parametrize(
    "text",
    [
        "2019-03-10T08:00:00+00:00",
        "2019-03-10 08:00:00+00:00",
        "2019-03-10 08:00:00.000000+00:00",
        "2019-03-10T08:00:00Z",
        "2019-03-10T11:00:00+03:00",
        "2019-03-10T08:00:00",
        "2019-03-10T08:00:00-00:00",
        "2019-03-11T07:59:00+23:59",
        "2019-03-09T08:01:00-23:59",
        " 2019-03-10T08:00:00+0000 ",
    ],
)
def test_timestamps_with_and_without_microseconds_and_offsets(text: str) -> None:
    assert parse_timestamp(text) == dt.datetime(2019, 3, 10, 8, tzinfo=UTC)


def test_timestamp_microseconds_are_kept() -> None:
    assert parse_timestamp("2019-03-10 08:00:00.123456+00:00").microsecond == 123456


@pytest.mark.parametrize(
    "text",
    [
        "2019-03-10",
        "yesterday",
        "2019-13-10T08:00:00",
        "2019-03-10T08:00:00+25:00",
        "",
        "2019-03-10T08:00:00+24:00",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "1969-12-31T23:59:59",
        "9999-01-01T00:00:00",
        "２０１９-03-10T08:00:00",
        "2019-03-10T08:00:00\x00",
        "1e400",
    ],
)
def test_bad_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


# ---- the deadline ----


def test_one_second_before_the_deadline_is_accepted(tmp_path, settings) -> None:
    decision = check(platform_input(tmp_path, "2019-03-14T20:58:59+00:00", 1), settings)
    assert decision.checked
    assert decision.summary == (
        "Phase 1, submission 1 of 20 on 2019-03-14 (Moscow time), 1 of 200 in total; "
        "deadline 2019-03-14 23:59:00 Moscow time"
    )


def test_at_the_deadline_is_refused_with_the_next_phase(tmp_path, settings) -> None:
    with pytest.raises(SubmissionError) as refusal:
        check(platform_input(tmp_path, PHASE_1_DEADLINE, 1), settings)
    assert str(refusal.value) == (
        "This submission was made at 2019-03-14 23:59:00 Moscow time (2019-03-14 20:59:00 UTC), at or after the "
        "deadline of Phase 1, 2019-03-14 23:59:00 Moscow time (2019-03-14 20:59:00 UTC); submit to Phase 2 from "
        "2019-03-15 00:00:00 Moscow time (2019-03-14 21:00:00 UTC)."
    )


def test_after_the_last_deadline_nothing_more_is_accepted(tmp_path, settings) -> None:
    with pytest.raises(SubmissionError, match="no more submissions are accepted"):
        check(platform_input(tmp_path, "2019-04-09T23:30:00+00:00", 7, phase=2), settings)


# ---- the daily limit on Moscow days ----


def twenty_on_march_10(user: str = "alice") -> list[dict]:
    """20 finished submissions inside Moscow's 2019-03-10, which starts at 2019-03-09 21:00 UTC."""
    starts = ["2019-03-09 21:00:00+00:00"] + [f"2019-03-10 {hour:02d}:00:00.5+00:00" for hour in range(19)]
    return [finished_row(number, start, user) for number, start in enumerate(starts, 1)]


def test_the_21st_on_a_moscow_day_is_refused_until_moscow_midnight(tmp_path, settings) -> None:
    with pytest.raises(SubmissionError) as refusal:
        check(platform_input(tmp_path, "2019-03-10T20:59:59+00:00", 21, twenty_on_march_10()), settings)
    assert str(refusal.value) == (
        "You have made 20 submissions on 2019-03-10 (Moscow time), the daily limit; "
        "submit again from 2019-03-11 00:00:00 Moscow time (2019-03-10 21:00:00 UTC)."
    )


def test_moscow_midnight_starts_a_new_day(tmp_path, settings) -> None:
    decision = check(platform_input(tmp_path, "2019-03-10T21:00:00+00:00", 21, twenty_on_march_10()), settings)
    assert decision.summary.startswith("Phase 1, submission 1 of 20 on 2019-03-11 (Moscow time), 21 of 200 in total")


def test_the_previous_moscow_day_does_not_count(tmp_path, settings) -> None:
    rows = twenty_on_march_10()
    rows[0] = finished_row(1, "2019-03-09 20:59:59.999999+00:00")  # 23:59:59 Moscow time, 2019-03-09
    decision = check(platform_input(tmp_path, "2019-03-10T20:59:59+00:00", 21, rows), settings)
    assert "submission 20 of 20 on 2019-03-10" in decision.summary


def test_failed_submissions_do_not_count(tmp_path, settings) -> None:
    # numbers 1..25 were made that day; 6 failed, so CodaLab lists only 19 as finished
    rows = [finished_row(n, f"2019-03-10 10:{n:02d}:00+00:00") for n in range(1, 26) if n not in (2, 4, 6, 8, 9, 10)]
    assert len(rows) == 19
    decision = check(platform_input(tmp_path, "2019-03-10T20:00:00+00:00", 26, rows), settings)
    assert "submission 20 of 20 on 2019-03-10" in decision.summary


def test_the_last_day_of_a_phase_says_when_it_closes(tmp_path, settings) -> None:
    rows = [finished_row(n, f"2019-03-14 {n - 1:02d}:00:00+00:00") for n in range(1, 21)]
    with pytest.raises(SubmissionError, match=r"daily limit; Phase 1 closes at 2019-03-14 23:59:00 Moscow time"):
        check(platform_input(tmp_path, "2019-03-14T20:30:00+00:00", 21, rows), settings)


def test_other_participants_and_later_submissions_do_not_count(tmp_path, settings) -> None:
    later = finished_row(30, "2019-03-10 05:00:00+00:00")
    rerun = finished_row(0, "2019-03-10 06:00:00+00:00")
    decision = check(
        platform_input(tmp_path, "2019-03-10T20:00:00+00:00", 21, [*twenty_on_march_10("bob"), later, rerun]), settings
    )
    # alice's #30 was made after this one (numbers only grow); #0 was an organiser's re-run: her first that day
    assert "submission 1 of 20 on 2019-03-10" in decision.summary


# ---- the total limit ----


def spread_over_days(count: int) -> list[dict]:
    start = dt.datetime(2019, 2, 12, 6, tzinfo=UTC)
    return [finished_row(n, str(start + dt.timedelta(hours=3 * n))) for n in range(1, count + 1)]


def test_the_200th_is_accepted(tmp_path, settings) -> None:
    decision = check(platform_input(tmp_path, "2019-03-14T10:00:00+00:00", 200, spread_over_days(199)), settings)
    assert "200 of 200 in total" in decision.summary


def test_the_201st_is_refused_for_good(tmp_path, settings) -> None:
    with pytest.raises(SubmissionError) as refusal:
        check(platform_input(tmp_path, "2019-03-14T10:00:00+00:00", 201, spread_over_days(200)), settings)
    assert str(refusal.value) == (
        "You have made 200 submissions in Phase 1, its limit (failed submissions do not count); "
        "Phase 1 accepts no more submissions from you."
    )


# ---- organiser re-runs ----


@pytest.mark.parametrize(
    ("submitted_at", "number", "phase", "automatic", "why"),
    [
        ("2019-05-01T10:00:00+00:00", 0, 2, "False", "submission number 0"),
        ("2019-05-01T10:00:00+00:00", 1, 2, "True", "automatic-submission"),
        ("2019-03-14T21:10:00+00:00", 31, 1, "False", "made after Phase 2 started"),
    ],
)
def test_reruns_are_recognised_from_the_metadata(tmp_path, settings, submitted_at, number, phase, automatic, why):
    input_dir = platform_input(tmp_path, submitted_at, number, spread_over_days(200), phase=phase, automatic=automatic)
    decision = check(input_dir, settings)
    assert not decision.checked
    assert "an organiser's re-run" in decision.summary
    assert why in decision.summary


def test_a_number_already_finished_is_a_rerun(tmp_path, settings) -> None:
    # after Phase 1's deadline, before Phase 2 starts: late, were it not the same submission scored again
    decision = check(platform_input(tmp_path, "2019-03-14T20:59:30+00:00", 5, spread_over_days(200)), settings)
    assert not decision.checked
    assert "already among the finished submissions" in decision.summary


def test_just_after_the_next_phase_starts_is_still_late(tmp_path, settings) -> None:
    # a participant's submission accepted at 23:59:59 may be saved a moment later: no re-run inside the margin
    with pytest.raises(SubmissionError, match="at or after the deadline of Phase 1"):
        check(platform_input(tmp_path, "2019-03-14T21:00:01+00:00", 31), settings)


def test_an_unrecognisable_rerun_after_the_final_deadline_needs_the_switch(tmp_path, settings) -> None:
    input_dir = platform_input(tmp_path, "2019-05-01T10:00:00+00:00", 31, phase=2)
    with pytest.raises(SubmissionError, match="no more submissions"):
        check(input_dir, settings)
    assert not check(input_dir, settings, enforce=False).checked
    relaxed = dataclasses.replace(settings, enforce_submission_rules=False)
    decision = check(input_dir, relaxed)
    assert not decision.checked
    assert "enforce_submission_rules is false in challenge.yaml" in decision.summary


# ---- phase migration (challenge.yaml migrate_to_next_phase) ----
# CodaLab v1.5 (codalab/apps/web/models.py, Competition.check_future_phase_sumbmissions, every 5 minutes while
# Phase 1 is active) re-runs each new Phase 1 leaderboard submission of a participant in Phase 2 with
# ignore_submission_limits=True (numbered from 0); tasks.py, score(), marks a run automatic only while it is the
# participant's only submission in Phase 2. So the later migrated runs arrive automatic False, numbered 1, 2, ...,
# made while Phase 1 runs, before Phase 2 starts.


def migrated_rows(count: int) -> list[dict]:
    """A participant's migrated runs in Phase 2, numbered from 0, each scored as it was made during Phase 1."""
    start = dt.datetime(2019, 2, 12, 6, tzinfo=UTC)
    return [finished_row(n, str(start + dt.timedelta(hours=3 * n))) for n in range(count)]


def test_a_later_migrated_run_is_the_platforms(tmp_path, settings) -> None:
    input_dir = platform_input(tmp_path, "2019-03-01T10:00:00+00:00", 1, migrated_rows(1), phase=2)
    decision = check(input_dir, settings)
    assert not decision.checked
    assert "submission 1 of alice" in decision.summary and "made before Phase 2 started" in decision.summary


def test_migrated_runs_never_count_towards_the_participants_limits(tmp_path, settings) -> None:
    rows = [*migrated_rows(201), finished_row(201, "2019-03-15 10:00:00+00:00")]  # and one of her own in Phase 2
    decision = check(platform_input(tmp_path, "2019-03-15T11:00:00+00:00", 202, rows, phase=2), settings)
    assert decision.checked
    assert decision.summary.startswith("Phase 2, submission 2 of 20 on 2019-03-15 (Moscow time), 2 of 200 in total")


# ---- malformed platform data ----

GOOD_METADATA = (
    "submitted-by: alice\nsubmitted-at: 2019-03-10T08:00:00+00:00\ncompetition-submission: 3\n"
    "competition-phase: 1\nautomatic-submission: False\n"
)


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("submitted-at: 2019-03-10T08:00:00+00:00\ncompetition-submission: 3\ncompetition-phase: 1\n", "submitted-by"),
        (GOOD_METADATA.replace("2019-03-10T08:00:00+00:00", "10/03/2019 08:00"), "submitted-at is not an ISO-8601"),
        (GOOD_METADATA.replace("competition-phase: 1", "competition-phase: 3"), "competition-phase is 3"),
        (GOOD_METADATA.replace("competition-phase: 1", "competition-phase: one"), "competition-phase must be"),
        (GOOD_METADATA.replace("competition-submission: 3", "competition-submission: -3"), "must be a whole number"),
        (GOOD_METADATA.replace("False", "maybe"), "automatic-submission must be True or False"),
        ("- just\n- a list\n", "not a YAML mapping"),
        ("submitted-by: [unclosed\n", "not valid YAML"),
    ],
)
def test_malformed_metadata_names_the_file(tmp_path, settings, metadata: str, problem: str) -> None:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    (input_dir / "metadata").write_text(metadata)
    with pytest.raises(ReferenceDataError) as error:
        check(input_dir, settings)
    assert str(error.value).startswith(f"{input_dir / 'metadata'}: ")
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("csv_text", "problem"),
    [
        ("participant__user__username,pk,started_at\nalice,1,2019-03-10 08:00:00+00:00\n", "header lacks"),
        ("", "header lacks"),
        (
            ",".join(CSV_COLUMNS) + "\nalice,1,,,10 March 2019,,0,1,0,0\n",
            "line 2: started_at is not an ISO-8601 time",
        ),
        (",".join(CSV_COLUMNS) + "\nalice,1,,,,,0,1,0,0\n", "line 2: started_at"),
        (",".join(CSV_COLUMNS) + "\nalice,1,,,2019-03-10 08:00:00+00:00,,0,x,0,0\n", "submission_number must be"),
    ],
)
def test_malformed_coopetition_csv_names_the_file(tmp_path, settings, csv_text: str, problem: str) -> None:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    (input_dir / "coopetition" / "coopetition_phase_1.txt").write_text(csv_text)
    with pytest.raises(ReferenceDataError) as error:
        check(input_dir, settings)
    assert str(error.value).startswith(f"{input_dir / 'coopetition' / 'coopetition_phase_1.txt'}: ")
    assert problem in str(error.value)


def test_missing_coopetition_file_names_it(tmp_path, settings) -> None:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    (input_dir / "coopetition" / "coopetition_phase_1.txt").unlink()
    with pytest.raises(ReferenceDataError, match=r"coopetition_phase_1\.txt: missing"):
        check(input_dir, settings)


def test_started_at_falls_back_to_completed_at(tmp_path, settings) -> None:
    row = finished_row(1, "")
    row["completed_at"] = "2019-03-10 07:00:00+00:00"
    decision = check(platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 2, [row]), settings)
    assert "submission 2 of 20" in decision.summary


# ---- without platform data ----


def test_a_local_run_without_ledger_is_not_checked(tmp_path, settings) -> None:
    decision = check_submission(tmp_path, settings, ledger_path=None)
    assert not decision.checked
    assert "no platform metadata" in decision.summary
    decision.complete({"iou_class": 0.5})  # nothing to record: must not fail


def ledger_check(tmp_path, settings, when: str, participant: str = "alice", **options):
    return check_submission(
        tmp_path / "input",
        settings,
        ledger_path=tmp_path / "ledger.sqlite",
        now=parse_timestamp(when),
        participant=participant,
        **options,
    )


def test_ledger_mode_counts_moscow_days_and_skips_failures(tmp_path, settings) -> None:
    two_a_day = dataclasses.replace(settings, max_submissions_per_day=2)
    first = ledger_check(tmp_path, two_a_day, "2019-03-10T08:00:00")
    first.complete({"iou_class": 0.5})
    crashed = ledger_check(tmp_path, two_a_day, "2019-03-10T09:00:00")
    crashed.fail("scoring crashed")
    second = ledger_check(tmp_path, two_a_day, "2019-03-10T10:00:00")
    assert second.summary.startswith("Phase 1, submission 2 of 2 on 2019-03-10 (Moscow time), 2 of 200 in total")
    second.complete({"iou_class": 0.6})
    with pytest.raises(SubmissionError, match=r"submit again from 2019-03-11 00:00:00 Moscow time \(2019-03-10 21:00"):
        ledger_check(tmp_path, two_a_day, "2019-03-10T20:59:59")
    assert ledger_check(tmp_path, two_a_day, "2019-03-10T20:59:59", participant="bob").checked
    assert ledger_check(tmp_path, two_a_day, "2019-03-10T21:00:00").checked


def test_ledger_mode_refuses_outside_the_phases(tmp_path, settings) -> None:
    with pytest.raises(SubmissionError, match="Phase 1 has not started; submit from 2019-02-11 00:00:00 Moscow"):
        ledger_check(tmp_path, settings, "2019-02-10T20:59:59")
    with pytest.raises(SubmissionError, match=r"deadline of Phase 1.*submit to Phase 2 from 2019-03-15 00:00:00"):
        ledger_check(tmp_path, settings, "2019-03-14T20:59:30")
    with pytest.raises(SubmissionError, match="no more submissions are accepted"):
        ledger_check(tmp_path, settings, PHASE_2_DEADLINE)


def test_ledger_mode_with_rules_off_records_without_counting(tmp_path, settings) -> None:
    one_a_day = dataclasses.replace(settings, max_submissions_per_day=1)
    ledger_check(tmp_path, one_a_day, "2019-05-01T10:00:00", enforce=False).complete({"iou_class": 0.7})
    ledger_check(tmp_path, one_a_day, "2019-03-10T10:00:00", enforce=False).complete({"iou_class": 0.8})
    assert ledger_check(tmp_path, one_a_day, "2019-03-10T11:00:00").checked
    records = SubmissionLedger(tmp_path / "ledger.sqlite").records("alice")
    assert [(record.phase, record.counted, record.status) for record in records] == [
        (1, False, "completed"),
        (1, True, "pending"),
        (2, False, "completed"),
    ]


# ---- hostile platform files: one message naming the file, never a crash, a hang or unbounded memory ----

METADATA_PATH = Path("input") / "metadata"
CSV_PATH = Path("input") / "coopetition" / "coopetition_phase_1.txt"
PLATFORM_FIX = "score without the rules (enforce_submission_rules: false in challenge.yaml, or --no-submission-rules)"
ALIAS_BOMB = "".join(
    f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]\n" if level else "l0: &l0 [lol]\n"
    for level in range(9)
)  # 9**8 (43 million) strings in under 1 KB


def refusal(tmp_path: Path, settings: ChallengeSettings, file: Path, problem: str) -> str:
    """The one message refusing ``file``, from a child process that a hang or a memory blow-up cannot stall."""
    kind, message = outcome_within(check, tmp_path / "input", settings)
    assert kind == "ReferenceDataError", (kind, message[:300])
    assert message.startswith(f"{tmp_path / file}: ")
    assert problem in message
    assert message.endswith(PLATFORM_FIX) and len(message) < 700  # quoted values are cut, the fix is kept
    return message


def with_metadata(tmp_path: Path, content: bytes, number: int = 3) -> Path:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", number)
    (input_dir / "metadata").write_bytes(content)
    return input_dir


def with_csv(tmp_path: Path, content: bytes) -> Path:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    (input_dir / "coopetition" / "coopetition_phase_1.txt").write_bytes(content)
    return input_dir


def metadata_with(key: str, value: str) -> bytes:
    lines = [line for line in GOOD_METADATA.splitlines() if not line.startswith(f"{key}:")]
    return "\n".join([*lines, f"{key}: {value}", ""]).encode()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (metadata_with("competition-phase", "1" * 5000), "competition-phase must be a whole number of at most 18"),
        (metadata_with("competition-submission", "9" * 5000), "competition-submission must be a whole number"),
        (metadata_with("competition-submission", "1e400"), "competition-submission must be a whole number"),
        (metadata_with("competition-submission", "+3"), "competition-submission must be a whole number"),
        (metadata_with("competition-submission", "3_000"), "competition-submission must be a whole number"),
        (metadata_with("competition-submission", "٣"), "competition-submission must be a whole number"),
        (metadata_with("competition-phase", "１"), "competition-phase must be a whole number"),
        (metadata_with("submitted-at", "0001-01-01T00:00:00+23:59"), "submitted-at is not a time in the years 1970"),
        (metadata_with("submitted-at", "0001-01-01T00:00:00"), "submitted-at is not a time in the years 1970"),
        (metadata_with("submitted-at", "9999-12-31T23:59:59-23:59"), "submitted-at is not a time in the years"),
        (metadata_with("submitted-at", "２０１９-03-10T08:00:00"), "submitted-at is not an ISO-8601 time"),
        (metadata_with("submitted-at", "2019" * 10_000), "submitted-at is not an ISO-8601 time: '20192019"),
        (metadata_with("competition-phase", "x" * 60_000), "competition-phase must be a whole number"),
        (metadata_with("automatic-submission", "maybe" * 10_000), "automatic-submission must be True or False"),
        (metadata_with("automatic-submission", "[True]"), "must be True or False, not a list or mapping"),
        (metadata_with("submitted-by", "{name: alice}"), "no 'submitted-by' (a text value)"),
        (GOOD_METADATA.replace("alice", "al\0ice").encode(), "metadata holds a NUL byte"),
        (GOOD_METADATA.replace("alice", "al\xefce").encode("latin-1"), "metadata is not UTF-8 text (byte 0xef"),
        (b"", "metadata is empty"),
        (b" \n\n", "metadata is empty"),
        (b"# no fields\n", "metadata is not a YAML mapping"),
        (b"just text\n", "metadata is not a YAML mapping"),
        (b"- a\n- list\n", "metadata is not a YAML mapping"),
        ((GOOD_METADATA + ALIAS_BOMB).encode(), "uses a YAML alias"),
        (  # the bomb as a value that is quoted in a message: its repr would fill memory
            metadata_with("automatic-submission", "*l8").replace(b"automatic", ALIAS_BOMB.encode() + b"automatic", 1),
            "uses a YAML alias",
        ),
        ((GOOD_METADATA + "ref: " + "[" * 20_000 + "]" * 20_000 + "\n").encode(), "nests YAML deeper than 8 levels"),
        ((GOOD_METADATA + "submitted-by: mallory\n").encode(), "has the key 'submitted-by' twice"),
        ((GOOD_METADATA + "---\n" + GOOD_METADATA).encode(), "holds more than one YAML document"),
        (("? [a, b]\n: c\n" + GOOD_METADATA).encode(), "has a key that is a list or mapping"),
        ((GOOD_METADATA + "# " + "x" * 70_000 + "\n").encode(), "larger than 65536 bytes"),
        (b"submitted-by: [unclosed\n", "not valid YAML (expected ',' or ']', but got '<stream end>' at line 2)"),
    ],
)
def test_hostile_metadata_is_one_message_naming_the_file(tmp_path, settings, content: bytes, problem: str) -> None:
    with_metadata(tmp_path, content)
    refusal(tmp_path, settings, METADATA_PATH, problem)


def test_metadata_with_a_byte_order_mark_is_read(tmp_path, settings) -> None:
    decision = check(with_metadata(tmp_path, "\ufeff".encode() + GOOD_METADATA.encode()), settings)
    assert decision.summary.startswith("Phase 1, submission 1 of 20 on 2019-03-10")


HEADER = ",".join(CSV_COLUMNS)


def csv_row(user: str = "alice", started_at: str = "2019-03-10 07:00:00+00:00", number: str = "1") -> str:
    return f"{user},1,,,{started_at},,0,{number},0,0"


def csv_file(*rows: str, header: str = HEADER) -> str:
    return "".join(f"{line}\n" for line in (header, *rows))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (csv_file("alice,1,,,2019-03-10 07:00:00+00:00").encode(), "line 2 has 5 fields, the header 10"),
        (csv_file(csv_row() + ",extra").encode(), "line 2 has 11 fields, the header 10"),
        (csv_file(csv_row("bob") + ",extra").encode(), "line 2 has 11 fields"),  # another participant's row
        (csv_file(csv_row(number="7" * 5000)).encode(), "line 2: submission_number must be a whole number"),
        (csv_file(csv_row(number="1e400")).encode(), "line 2: submission_number must be a whole number"),
        (csv_file(csv_row(started_at="9999-12-31 23:59:59-23:59")).encode(), "line 2: started_at is not a time"),
        (csv_file(csv_row(started_at="0001-01-01 00:00:00+23:59")).encode(), "line 2: started_at is not a time"),
        (csv_file(csv_row(started_at="2019" * 30_000)).encode(), "line 2: started_at is not an ISO-8601"),
        (csv_file(csv_row("b\0b")).encode(), "line 2 holds a NUL byte"),
        (csv_file(csv_row("\xefve")).encode("latin-1"), "the finished submissions are not UTF-8 text"),
        (csv_file(csv_row("b" * 200_000)).encode(), "field larger than field limit (131072)"),
        (csv_file().encode() + b"a," * 600_000, "line 2: a record longer than 1048576 characters"),
        (csv_file(csv_row(), '"x\n",' * 400_000).encode(), "a record longer than 1048576 characters"),
        (csv_file(csv_row() + ",", header=HEADER + ",started_at").encode(), "the header has started_at twice"),
    ],
)
def test_hostile_coopetition_csv_is_one_message_naming_the_file(tmp_path, settings, content, problem) -> None:
    with_csv(tmp_path, content)
    refusal(tmp_path, settings, CSV_PATH, problem)


def test_a_coopetition_csv_over_256_mb_is_refused_unread(tmp_path, settings) -> None:
    input_dir = with_csv(tmp_path, f"{HEADER}\n".encode())
    with (input_dir / "coopetition" / "coopetition_phase_1.txt").open("r+b") as file:
        file.truncate(300 * 1024 * 1024)  # sparse: no disk used
    refusal(tmp_path, settings, CSV_PATH, "larger than 268435456 bytes, too large for the finished submissions")


def test_a_coopetition_csv_with_a_byte_order_mark_is_read(tmp_path, settings) -> None:
    input_dir = with_csv(tmp_path, ("\ufeff" + csv_file(csv_row(), "")).replace("\n", "\r\n").encode())
    assert "submission 2 of 20 on 2019-03-10" in check(input_dir, settings).summary


def _check_the_200th(input_dir: Path, settings: ChallengeSettings) -> None:
    summary = check(input_dir, settings).summary
    assert "submission 1 of 20 on 2019-03-10 (Moscow time), 200 of 200 in total" in summary, summary


def test_millions_of_rows_are_streamed_in_bounded_memory(tmp_path, settings) -> None:
    others = "".join(f"{csv_row(f'user{n}', number=str(n))}\n" for n in range(1, 1001))
    alice = [csv_row(started_at=f"2019-03-0{1 + n % 9} 10:00:00+00:00", number=str(n)) for n in range(1, 200)]
    content = f"{HEADER}\n" + others * 2000 + "\n".join(alice)  # 2 million rows of others', no last line end
    input_dir = with_csv(tmp_path, content.encode())
    (input_dir / "metadata").write_text(
        GOOD_METADATA.replace("competition-submission: 3", "competition-submission: 200")
    )
    del content, others
    assert memory_growth_within(_check_the_200th, input_dir, settings) < 64 * 1024 * 1024  # the file is 130 MB


def test_millions_of_blank_lines_are_refused_quickly(tmp_path, settings) -> None:
    with_csv(tmp_path, f"{HEADER}\n{csv_row()}\n".encode() + b"\r\n" * 4_000_000)  # 8 MB, scanned in a second
    refusal(tmp_path, settings, CSV_PATH, "more than 4000000 lines")


@pytest.mark.parametrize("file", [METADATA_PATH, CSV_PATH])
@pytest.mark.parametrize(
    ("make", "kind"), [("fifo", "a FIFO"), ("dev-zero", "a character device"), ("folder", "a folder")]
)
def test_special_files_are_refused_without_reading_them(tmp_path, settings, file: Path, make: str, kind: str) -> None:
    platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    path = tmp_path / file
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)  # nobody writes: opening it to read would wait forever
    elif make == "dev-zero":
        path.symlink_to("/dev/zero")  # never ends
    else:
        path.mkdir()
    what = "the platform's metadata" if file == METADATA_PATH else "the finished submissions"
    refusal(tmp_path, settings, file, f"cannot read {what} from {kind}, only from a file")


def test_dev_zero_itself_is_refused() -> None:
    kind, message = outcome_within(read_platform_metadata, Path("/dev/zero"))
    assert (kind, message.split(",")[0]) == (
        "ReferenceDataError",
        "/dev/zero: cannot read the platform's metadata from a character device",
    )


def test_a_dangling_metadata_link_is_refused_not_ignored(tmp_path, settings) -> None:
    input_dir = platform_input(tmp_path, "2019-03-10T08:00:00+00:00", 3)
    (input_dir / "metadata").unlink()
    (input_dir / "metadata").symlink_to(tmp_path / "gone")
    refusal(tmp_path, settings, METADATA_PATH, "cannot read the platform's metadata (No such file or directory)")


# ---- hostile values in ledger mode ----


def test_an_empty_participant_is_refused_not_replaced_by_the_os_user(tmp_path, settings) -> None:
    with pytest.raises(ReferenceDataError, match="no participant name for the submission ledger"):
        ledger_check(tmp_path, settings, "2019-03-10T08:00:00", participant="")


def test_a_failure_quoting_a_non_utf8_file_name_releases_the_try(tmp_path, settings) -> None:
    one_a_day = dataclasses.replace(settings, max_submissions_per_day=1)
    decision = ledger_check(tmp_path, one_a_day, "2019-03-10T08:00:00")
    decision.fail("FileNotFoundError: [Errno 2] No such file or directory: 'input/res/pixel/\udcff.png'")
    again = ledger_check(tmp_path, one_a_day, "2019-03-10T09:00:00")
    assert again.summary.startswith("Phase 1, submission 1 of 1 on 2019-03-10")
    assert [record.status for record in SubmissionLedger(tmp_path / "ledger.sqlite").records()] == [
        "failed",
        "pending",
    ]


def test_non_utf8_paths_in_ledger_mode_are_stored_and_shown_escaped(tmp_path, settings) -> None:
    folder = tmp_path / "\udcff"  # a folder name that is not UTF-8
    decision = check_submission(
        folder / "input", settings, ledger_path=folder / "ledger.sqlite", now=parse_timestamp("2019-03-10T08:00:00")
    )
    decision.complete({"iou_class": 0.5})
    assert decision.summary.endswith(f"(ledger {tmp_path}/\\xff/ledger.sqlite)")
    decision.summary.encode("utf-8")  # print() of the summary cannot fail
    [record] = SubmissionLedger(folder / "ledger.sqlite").records()
    assert record.label == f"{tmp_path}/\\xff/input"


def test_an_absurd_time_limit_does_not_overflow(tmp_path, settings) -> None:
    absurd = dataclasses.replace(settings, execution_time_limit=10**15)
    assert ledger_check(tmp_path, absurd, "2019-03-10T08:00:00").checked


def test_the_scorer_releases_the_try_after_a_failure_quoting_a_non_utf8_name(
    tiny_case, tmp_path, monkeypatch, capsys
) -> None:
    from cityscapes_competition.core.challenge import DEFAULT_CHALLENGE_FILE
    from cityscapes_competition.scoring import evaluation, program

    text = DEFAULT_CHALLENGE_FILE.read_text().replace('"2019-04-09 23:59:00"', '"2099-01-01 00:00:00"')
    (tmp_path / "challenge.yaml").write_text(text.replace("max_submissions_per_day: 20", "max_submissions_per_day: 1"))
    input_dir = tmp_path / "input"
    shutil.copytree(tiny_case.ref, input_dir / "ref")
    shutil.copytree(tiny_case.res, input_dir / "res")
    ledger = tmp_path / "ledger.sqlite"
    options = ["--ledger", str(ledger), "--participant", "alice", "--challenge", str(tmp_path / "challenge.yaml")]

    not_utf8 = input_dir / "res" / "pixel" / "\udcff.png"

    def unreadable(*args, **kwargs):  # an internal error quoting a file name that is not UTF-8
        raise ValueError(f"{not_utf8}: truncated PNG file")

    monkeypatch.setattr(evaluation, "evaluate", unreadable)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # takes surrogates, as the real stderr (backslashreplace)
    assert program.score_main([str(input_dir), str(tmp_path / "out"), *options]) == 3  # an internal error
    assert "truncated PNG file" in sys.stderr.getvalue()
    monkeypatch.undo()
    assert program.score_main([str(input_dir), str(tmp_path / "out"), *options]) == 0  # the failed try did not count
    assert "submission 1 of 1" in capsys.readouterr().out
    with sqlite3.connect(ledger) as connection:
        rows = connection.execute("SELECT status, failure FROM submissions ORDER BY id").fetchall()
    assert [status for status, _ in rows] == ["failed", "completed"]
    assert rows[0][1].endswith("/res/pixel/\\xff.png: truncated PNG file")
    assert "\\udcff.png" in (tmp_path / "out" / "score.py_internal_error.log").read_text()  # backslashreplace


def test_a_real_failing_file_named_in_no_utf8_is_one_message_and_releases_the_try(tiny_case, tmp_path, capsys):
    """The issue's case: a prediction PNG that is broken and named with bytes that are not UTF-8, in ledger mode."""
    from cityscapes_competition.core.challenge import DEFAULT_CHALLENGE_FILE
    from cityscapes_competition.scoring import program

    text = DEFAULT_CHALLENGE_FILE.read_text().replace('"2019-04-09 23:59:00"', '"2099-01-01 00:00:00"')
    (tmp_path / "challenge.yaml").write_text(text.replace("max_submissions_per_day: 20", "max_submissions_per_day: 1"))
    input_dir = tmp_path / "input"
    shutil.copytree(tiny_case.ref, input_dir / "ref")
    shutil.copytree(tiny_case.res, input_dir / "res")
    options = ["--ledger", str(tmp_path / "ledger.sqlite"), "--participant", "alice"]
    options += ["--challenge", str(tmp_path / "challenge.yaml")]
    prediction = next((input_dir / "res" / "pixel").rglob("frankfurt_000000_000019*.png"))
    broken = os.path.join(os.fsencode(prediction.parent), b"frankfurt_000000_000019_\xff.png")
    os.rename(prediction, broken)
    with open(broken, "wb") as file:
        file.write(b"not a png")
    assert program.score_main([str(input_dir), str(tmp_path / "out"), *options]) == 2
    err = capsys.readouterr().err
    assert "frankfurt_000000_000019_\\xff.png: is not a PNG image" in err and "Traceback" not in err
    os.rename(broken, prediction)
    prediction.write_bytes((tiny_case.res / prediction.relative_to(input_dir / "res")).read_bytes())
    assert program.score_main([str(input_dir), str(tmp_path / "out"), *options]) == 0  # the failed try did not count
    assert "submission 1 of 1" in capsys.readouterr().out


def test_a_switched_off_summary_is_printable_whatever_the_settings_file_name(tmp_path, settings) -> None:
    relaxed = dataclasses.replace(settings, enforce_submission_rules=False, source=Path("/etc/\udcff.yaml"))
    decision = check_submission(tmp_path, relaxed, ledger_path=None)
    assert decision.summary == "Submission rules not checked: enforce_submission_rules is false in \\xff.yaml."
