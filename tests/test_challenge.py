"""challenge.yaml: the competition's settings, read strictly; every mistake is one line naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cityscapes_competition.challenge import DEFAULT_CHALLENGE_FILE, load_challenge
from cityscapes_competition.errors import ReferenceDataError
from cityscapes_competition.scores import LEADERBOARD_KEYS

UTC = dt.UTC


def test_the_seed_competition() -> None:
    settings = load_challenge()
    assert [phase.name for phase in settings.phases] == ["Phase 1", "Phase 2"]
    assert settings.phases[0].deadline.astimezone(UTC) == dt.datetime(2019, 3, 14, 20, 59, tzinfo=UTC)
    assert settings.phases[1].deadline.astimezone(UTC) == dt.datetime(2019, 4, 9, 20, 59, tzinfo=UTC)
    assert (settings.max_submissions_per_day, settings.max_submissions) == (20, 200)
    assert tuple(column.key for column in settings.columns) == LEADERBOARD_KEYS
    assert settings.migrate_to_next_phase and settings.contact_email is None
    assert [(question.key, question.kind) for question in settings.fact_sheet] == [
        ("model_description", "text"),
        ("external_data", "checkbox"),
    ]


def test_the_deadline_second_itself_is_too_late() -> None:
    phase = load_challenge().phases[0]
    assert phase.accepts(dt.datetime(2019, 3, 14, 20, 58, 59, tzinfo=UTC))
    assert not phase.accepts(dt.datetime(2019, 3, 14, 20, 59, 0, tzinfo=UTC))


def test_the_open_phase_at_a_moment() -> None:
    settings = load_challenge()
    assert settings.phase_at(dt.datetime(2019, 3, 1, tzinfo=UTC)).number == 1
    assert settings.phase_at(dt.datetime(2019, 3, 20, tzinfo=UTC)).number == 2
    assert settings.phase_at(dt.datetime(2019, 1, 1, tzinfo=UTC)) is None  # before the start
    assert settings.phase_at(dt.datetime(2026, 1, 1, tzinfo=UTC)) is None  # after the last deadline


def edited(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CHALLENGE_FILE.read_text()
    assert old in text
    path = tmp_path / "challenge.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("time_zone: Europe/Moscow", "time_zone: Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ('deadline: "2019-03-14 23:59:00"', 'deadline: "14.03.2019"', "phases[1].deadline' must be local time"),
        ('deadline: "2019-03-14 23:59:00"', 'deadline: "2019-02-01 00:00:00"', "must come after its start"),
        ('start: "2019-03-15 00:00:00"', 'start: "2019-03-01 00:00:00"', "start at or after its deadline"),
        ("max_submissions_per_day: 20", "max_submissions_per_day: 0", "positive whole number"),
        ("max_submissions: 200", "max_submissions: many", "'max_submissions' must be int"),
        ("enforce_submission_rules: true", "enforce_submission_rules: yes please", "must be bool"),
        ("{key: ap50m,", "{key: ap75,", "'ap75' is not a score"),
        ("{key: ap50m,", "{key: ap50,", "listed once each"),
        ("execution_time_limit: 3600", "execution_time_limit: 3600\nexecution_limit: 10", "unknown setting"),
        ("    name: Phase 2\n", "    name: Phase 2\n    end: tomorrow\n", "unknown setting 'phases[2].end'"),
        ("codabench_queue: null", "codabench_queue: 5", "queue key"),
        ("migrate_to_next_phase: true", "migrate_to_next_phase: sometimes", "must be true or false"),
        ("contact_email: null", "contact_email: organisers", "'contact_email' must be one e-mail address"),
        ("contact_email: null", "contact_email: a b@example.org", "'contact_email' must be one e-mail address"),
        ("- key: model_description", "- key: task-notes", "names a field of Codabench's submission form"),
        ("- key: external_data", "- key: model_description", "a key of its own"),
        ("    type: checkbox\n", "    type: checkbox\n    required: true\n", "cannot be true for a checkbox"),
        ("    type: text\n", "    type: select\n", "missing setting 'fact_sheet[1].options'"),
        ("    type: text\n", "    type: text\n    options: [a]\n", "only for a question of type select"),
        ("    type: text\n", "    type: radio\n", "'fact_sheet[1].type' must be one of text, checkbox, select"),
        ("    on_leaderboard: true\n", "    on_leaderboard: true\n    hint: x\n", "'fact_sheet[2].hint'"),
    ],
)
def test_mistakes_are_one_line_naming_the_file_and_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = edited(tmp_path, old, new)
    with pytest.raises(ReferenceDataError) as caught:
        load_challenge(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("title: [unclosed\n")
    with pytest.raises(ReferenceDataError, match="not valid YAML"):
        load_challenge(broken)
    with pytest.raises(ReferenceDataError, match="cannot read the competition settings"):
        load_challenge(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ReferenceDataError, match="must be a YAML mapping"):
        load_challenge(listing)


def test_an_organiser_changes_only_this_file(tmp_path: Path) -> None:
    path = edited(tmp_path, 'deadline: "2019-04-09 23:59:00"', 'deadline: "2020-04-09 18:00:00"')
    settings = load_challenge(path)
    assert settings.phases[1].deadline.astimezone(UTC) == dt.datetime(2020, 4, 9, 15, 0, tzinfo=UTC)


def test_migration_contact_and_fact_sheet_may_be_left_out(tmp_path: Path) -> None:
    text = DEFAULT_CHALLENGE_FILE.read_text()
    kept = text[: text.index("migrate_to_next_phase:")]
    kept = kept[: kept.rindex("\n# The platforms' own phase migration")] + "\n"
    path = tmp_path / "challenge.yaml"
    path.write_text(kept)
    settings = load_challenge(path)
    assert settings.migrate_to_next_phase  # on unless switched off
    assert settings.contact_email is None and settings.fact_sheet == ()


def test_a_select_question_keeps_its_options(tmp_path: Path) -> None:
    path = edited(tmp_path, "    type: text\n", "    type: select\n    options: [CNN, transformer]\n")
    question = load_challenge(path).fact_sheet[0]
    assert (question.kind, question.options, question.required) == ("select", ("CNN", "transformer"), True)
