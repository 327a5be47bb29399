"""The scoring program applies the submission rules before scoring: refusals, the ledger, the switch."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from helpers import finished_row, platform_input

from cityscapes_competition.scoring.program import score_main


def scoring_input(
    tiny_case, tmp_path: Path, submitted_at: str | None, number: int = 3, rows=(), phase: int = 1
) -> Path:
    """INPUT with ref/ and res/, and the platform's metadata when ``submitted_at`` is given."""
    if submitted_at is None:
        input_dir = tmp_path / "input"
        input_dir.mkdir()
    else:
        input_dir = platform_input(tmp_path, submitted_at, number, list(rows), phase=phase)
    shutil.copytree(tiny_case.ref, input_dir / "ref")
    shutil.copytree(tiny_case.res, input_dir / "res")
    return input_dir


def test_a_submission_inside_the_phase_is_scored(tiny_case, tmp_path, capsys) -> None:
    input_dir = scoring_input(tiny_case, tmp_path, "2019-03-10T08:00:00+00:00")
    assert score_main([str(input_dir), str(tmp_path / "out")]) == 0
    assert "Phase 1, submission 1 of 20 on 2019-03-10" in capsys.readouterr().out
    assert (tmp_path / "out" / "scores.txt").exists()


def test_a_late_submission_is_refused_before_scoring(tiny_case, tmp_path, capsys) -> None:
    input_dir = scoring_input(tiny_case, tmp_path, "2019-04-09T20:59:00+00:00", phase=2)  # 23:59:00 Moscow
    assert score_main([str(input_dir), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "deadline" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "scores.txt").exists()


def test_the_21st_of_a_moscow_day_is_refused(tiny_case, tmp_path, capsys) -> None:
    rows = [finished_row(n, f"2019-03-10 {6 + n // 4:02d}:{(n % 4) * 10:02d}:00+00:00") for n in range(1, 21)]
    input_dir = scoring_input(tiny_case, tmp_path, "2019-03-10T20:59:59+00:00", number=21, rows=rows)
    assert score_main([str(input_dir), str(tmp_path / "out")]) == 2
    assert "2019-03-11 00:00:00" in capsys.readouterr().err  # may submit again at Moscow midnight


def test_the_switch_scores_a_late_submission(tiny_case, tmp_path, capsys) -> None:
    input_dir = scoring_input(tiny_case, tmp_path, "2026-01-01T00:00:00+00:00", phase=2)
    assert score_main([str(input_dir), str(tmp_path / "out"), "--no-submission-rules"]) == 0
    assert "not checked" in capsys.readouterr().out


def test_the_ledger_records_scores_and_releases_failed_runs(tiny_case, tmp_path, capsys) -> None:
    ledger = tmp_path / "ledger.sqlite"
    settings_file = tmp_path / "challenge.yaml"
    from cityscapes_competition.core.challenge import DEFAULT_CHALLENGE_FILE

    # An open phase today, so that a local submission is on time.
    text = DEFAULT_CHALLENGE_FILE.read_text().replace('"2019-04-09 23:59:00"', '"2099-01-01 00:00:00"')
    settings_file.write_text(text)
    input_dir = scoring_input(tiny_case, tmp_path, None)
    options = ["--ledger", str(ledger), "--participant", "alice", "--challenge", str(settings_file)]
    assert score_main([str(input_dir), str(tmp_path / "out"), *options]) == 0
    assert "submission 1 of 20" in capsys.readouterr().out
    shutil.rmtree(input_dir / "res" / "pixel")
    shutil.rmtree(input_dir / "res" / "instance")
    (input_dir / "res" / "stray.txt").write_text("no results")
    assert score_main([str(input_dir), str(tmp_path / "out2"), *options]) != 0  # nothing to score: fails
    capsys.readouterr()
    assert score_main([str(input_dir.parent / "input"), str(tmp_path / "out3"), *options]) != 0
    with sqlite3.connect(ledger) as connection:
        statuses = [row[0] for row in connection.execute("SELECT status FROM submissions ORDER BY rowid")]
    assert statuses[0] == "completed" and all(status == "failed" for status in statuses[1:])
