"""challenge.yaml: the competition's settings, read strictly; every mistake is one line naming the key."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from cityscapes_competition.core.challenge import DEFAULT_CHALLENGE_FILE, load_challenge
from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.scoring.scores import LEADERBOARD_KEYS

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
        ("max_submissions: 200", "max_submissions: many", "'max_submissions' must be a whole number, not 'many'"),
        ("enforce_submission_rules: true", "enforce_submission_rules: yes please", "must be true or false"),
        ("{key: ap50m,", "{key: ap75,", "'ap75' is not a score"),
        ("{key: ap50m,", "{key: ap50,", "listed once each"),
        (
            "execution_time_limit: 3600",
            "execution_time_limit: 3600\nexecution_limit: 10",
            "unknown key 'execution_limit' (did you mean 'execution_time_limit'?)",
        ),
        ("    name: Phase 2\n", "    name: Phase 2\n    end: tomorrow\n", "unknown key 'phases[2].end' (known: "),
        ("codabench_queue: null", "codabench_queue: 5", "queue key"),
        ("migrate_to_next_phase: true", "migrate_to_next_phase: sometimes", "must be true or false"),
        ("contact_email: null", "contact_email: organisers", "'contact_email' must be one e-mail address"),
        ("contact_email: null", "contact_email: a b@example.org", "'contact_email' must be one e-mail address"),
        ("- key: model_description", "- key: task-notes", "names a field of Codabench's submission form"),
        ("- key: external_data", "- key: model_description", "a key of its own"),
        ("    type: checkbox\n", "    type: checkbox\n    required: true\n", "cannot be true for a checkbox"),
        ("    type: text\n", "    type: select\n", "missing key 'fact_sheet[1].options'"),
        ("    type: text\n", "    type: text\n    options: [a]\n", "only for a question of type select"),
        ("    type: text\n", "    type: radio\n", "'fact_sheet[1].type' must be one of text, checkbox, select"),
        ("    on_leaderboard: true\n", "    on_leaderboard: true\n    hint: x\n", "'fact_sheet[2].hint'"),
        ("time_zone: Europe/Moscow", "time_zone: Moscow", "unknown time zone 'Moscow' (did you mean 'Europe/Moscow'?)"),
        ("{key: ap50m,", "{key: ap_50m,", "'ap_50m' is not a score (did you mean 'ap50m'?"),
        ('{key: ap50m, label: "AP 50m"', "{key: ap50m, label: 50", "'leaderboard.columns[8].label' must be text"),
        ('description: "Development phase', "description: 7 #", "'phases[1].description' must be text"),
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


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("docker_image:", "dokcer_image:", "unknown key 'dokcer_image' (did you mean 'docker_image'?)"),
        ("  columns:", "  colums:", "unknown key 'leaderboard.colums' (did you mean 'leaderboard.columns'?)"),
        ("  title: Results", "  Title: Results", "unknown key 'leaderboard.Title' (did you mean 'leaderboard.title'?)"),
        ("  title: Results", "  title: Results\n  sort: asc", "unknown key 'leaderboard.sort' (known: columns, title)"),
        (
            '    deadline: "2019-04-09',
            '    dealine: "2019-04-09',
            "unknown key 'phases[2].dealine' (did you mean 'phases[2].deadline'?)",
        ),
        (
            "{key: ap50m, label:",
            "{key: ap50m, lable:",
            "unknown key 'leaderboard.columns[8].lable' (did you mean 'leaderboard.columns[8].label'?)",
        ),
        (
            "    on_leaderboard: true",
            "    on_leaderbord: true",
            "unknown key 'fact_sheet[2].on_leaderbord' (did you mean 'fact_sheet[2].on_leaderboard'?)",
        ),
    ],
)
def test_a_misspelt_key_is_named_with_the_closest_known_one(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ReferenceDataError) as caught:
        load_challenge(edited(tmp_path, old, new))
    text = str(caught.value)
    assert message in text and "missing" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'deadline: "2019-03-14 23:59:00"',
            "deadline: 2019-03-14 23:59:00",
            "'phases[1].deadline' at line {line} (2019-03-14 23:59:00) is unquoted, so YAML reads it as a timestamp: "
            'quote the date: deadline: "2019-03-14 23:59:00"',
        ),
        (
            'deadline: "2019-03-14 23:59:00"',
            "deadline: 2019-03-14T23:59:00+03:00",
            'quote the date: deadline: "2019-03-14 23:59:00" (local time in time_zone, without an offset)',
        ),
        (
            'deadline: "2019-03-14 23:59:00"',
            "deadline: 2019-03-14",
            'quote the date and give its time: deadline: "2019-03-14 23:59:00"',
        ),
        (
            'start: "2019-02-11 00:00:00"',
            "start: 2019-02-11",
            'quote the date and give its time: start: "2019-02-11 00:00:00"',
        ),
        (
            'deadline: "2019-03-14 23:59:00"',
            "deadline: 2019-02-30 23:59:00",
            "(2019-02-30 23:59:00) is not a real date: write one, quoted",
        ),
        ("    name: Phase 1", "    name: 2019-01-01", 'quote it: name: "2019-01-01"'),
    ],
)
def test_an_unquoted_date_is_shown_quoted(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ReferenceDataError) as caught:
        load_challenge(edited(tmp_path, old, new))
    assert message.format(line=line_of(old)) in str(caught.value) and "\n" not in str(caught.value)


def line_of(text: str) -> int:
    """The line of challenge.yaml where ``text`` first appears."""
    seed = DEFAULT_CHALLENGE_FILE.read_text()
    return seed[: seed.index(text)].count("\n") + 1


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    old = '    deadline: "2019-03-14 23:59:00"'
    path = edited(tmp_path, old, f'{old}\n    deadline: "2019-03-20 23:59:00"')
    with pytest.raises(ReferenceDataError, match=rf"the key 'deadline' is given twice at line {line_of(old) + 1}"):
        load_challenge(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('start: "2019-03-15 00:00:00"', 'start: "2019-03-31 02:30:00"', "does not exist in Europe/Berlin"),
        ('deadline: "2019-04-09 23:59:00"', 'deadline: "2019-10-27 02:30:00"', "happens twice in Europe/Berlin"),
    ],
)
def test_a_time_the_clocks_skip_or_repeat_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = edited(tmp_path, old, new)
    path.write_text(path.read_text().replace("time_zone: Europe/Moscow", "time_zone: Europe/Berlin"))
    with pytest.raises(ReferenceDataError, match=f"'phases\\[2\\]\\.{new.split(':')[0]}' .*{message}"):
        load_challenge(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"title: \xff\n", "is not UTF-8 text"),
        (b"max_submissions: !!int many\n", "not valid YAML (ValueError"),
        (b"[" * 5000, "not valid YAML"),
    ],
)
def test_an_unreadable_file_is_one_message_not_a_traceback(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "challenge.yaml"
    path.write_bytes(content)
    with pytest.raises(ReferenceDataError, match=re.escape(message)):
        load_challenge(path)
