"""The submission rules: deadlines to the second, Moscow days, limits, re-runs, malformed platform data."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from cityscapes_competition.challenge import ChallengeSettings, load_challenge
from cityscapes_competition.errors import ReferenceDataError, SubmissionError
from cityscapes_competition.submission_ledger import SubmissionLedger
from cityscapes_competition.submission_rules import CSV_COLUMNS, check_submission, parse_timestamp

UTC = dt.UTC
PHASE_1_DEADLINE = "2019-03-14T20:59:00+00:00"  # 23:59:00 Moscow time
PHASE_2_DEADLINE = "2019-04-09T20:59:00+00:00"


@pytest.fixture(scope="module")
def settings() -> ChallengeSettings:
    return load_challenge()


def finished_row(number: int, started_at: str, user: str = "alice") -> dict:
    """A row as CodaLab's csv.DictWriter writes it (str(datetime) timestamps)."""
    return {
        "participant__user__username": user,
        "pk": 1000 + number,
        "when_made_public": "",
        "when_unmade_public": "",
        "started_at": started_at,
        "completed_at": started_at,
        "download_count": 0,
        "submission_number": number,
        "like_count": 0,
        "dislike_count": 0,
    }


def platform_input(
    tmp_path: Path,
    submitted_at: str,
    number: int,
    rows: list[dict] = (),
    phase: int = 1,
    user: str = "alice",
    automatic: str = "False",
) -> Path:
    """INPUT/metadata and INPUT/coopetition/ as CodaLab v1.5 lays them out for the scoring run."""
    input_dir = tmp_path / "input"
    (input_dir / "coopetition").mkdir(parents=True)
    (input_dir / "metadata").write_text(
        "ref: https://example.org/ref.zip?sig=1\nres: https://example.org/res.zip?sig=2\n"
        f"submitted-by: {user}\nsubmitted-at: {submitted_at}\ncompetition-submission: {number}\n"
        f"competition-phase: {phase}\nautomatic-submission: {automatic}\n"
    )
    for phase_number in (1, 2):
        with (input_dir / "coopetition" / f"coopetition_phase_{phase_number}.txt").open("w", newline="") as file:
            writer = csv.DictWriter(file, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows if phase_number == phase else [])
    return input_dir


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
    ],
)
def test_timestamps_with_and_without_microseconds_and_offsets(text: str) -> None:
    assert parse_timestamp(text) == dt.datetime(2019, 3, 10, 8, tzinfo=UTC)


def test_timestamp_microseconds_are_kept() -> None:
    assert parse_timestamp("2019-03-10 08:00:00.123456+00:00").microsecond == 123456


@pytest.mark.parametrize("text", ["2019-03-10", "yesterday", "2019-13-10T08:00:00", "2019-03-10T08:00:00+25:00", ""])
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
