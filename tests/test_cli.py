"""The organiser's command line: one entry (``python -m cityscapes_competition``, ``... .cli``, the console
script), argparse subcommands with their defaults, and the platform's own command lines unchanged."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from cityscapes_competition import cli
from cityscapes_competition.ingestion.program import ingest_main


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser("prog")
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_help_lists_every_command_and_exits_0() -> None:
    for module in ("cityscapes_competition", "cityscapes_competition.cli"):
        done = run_module(module, "--help")
        assert done.returncode == 0 and not done.stderr, done.stderr
        assert done.stdout.startswith(f"usage: python -m {module} ")
        for name in cli.COMMANDS:
            assert f"    {name} " in done.stdout, name
    nothing = run_module("cityscapes_competition")
    assert nothing.returncode == 2 and "commands:" in nothing.stderr  # the whole help, not one usage line


def test_an_unknown_command_is_one_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["scroe"])
    assert exited.value.code == 2 and "invalid choice: 'scroe'" in capsys.readouterr().err


@pytest.mark.parametrize("name", [name for name, command in cli.COMMANDS.items() if command.configure])
def test_every_option_of_every_command_shows_its_default(name: str, capsys) -> None:
    parser = subcommands()[name]
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS and action.dest != "help":
            assert "default" in parser.formatter_class("x")._get_help_string(action), (name, action.dest)
    with pytest.raises(SystemExit) as exited:
        cli.main([name, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and out.startswith("usage: ") and "(unused)" not in out


def test_the_data_command_keeps_its_own_parser(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["data", "--help"])
    assert exited.value.code == 0 and "--cityscapes ROOT" in capsys.readouterr().out


def test_the_console_script_and_python_m_are_the_same_entry() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    (target,) = scripts.values()
    module, _, function = target.partition(":")
    assert getattr(importlib.import_module(module), function) is cli.main
    assert importlib.import_module("cityscapes_competition.__main__").main is cli.main


def test_ingest_takes_three_paths_and_the_platforms_four(tmp_path: Path, capsys) -> None:
    """competition.yaml's command passes $ingestion_program before the submission; a person leaves it out."""
    command = yaml.safe_load((REPO / "ingestion_program" / "metadata").read_text())["command"]
    assert command.split()[-4:] == ["$input", "$output", "$ingestion_program", "$submission_program"]
    missing = tmp_path / "no_submission"
    for argv in (
        ["ingest", str(tmp_path / "input"), str(tmp_path / "out"), str(missing)],
        ["ingest", str(tmp_path / "input"), str(tmp_path / "out"), str(REPO / "ingestion_program"), str(missing)],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{missing}: the submission folder does not exist" in err, err
    assert ingest_main([str(tmp_path / "input"), str(tmp_path / "out"), str(tmp_path), str(missing)]) == 2
    capsys.readouterr()


def test_the_platform_entry_points_take_exactly_the_platforms_arguments(tmp_path: Path) -> None:
    """ingestion.py and score.py as the platforms start them (the metadata's command, -I)."""
    missing = tmp_path / "no_submission"
    entry = REPO / "ingestion_program" / "ingestion.py"
    ingestion = subprocess.run(
        [sys.executable, "-I", "-u", entry, tmp_path / "input", tmp_path / "output", entry.parent, missing],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ingestion.returncode == 2 and "the submission folder does not exist" in ingestion.stderr
    assert "usage" not in ingestion.stderr
    scoring = subprocess.run(
        [sys.executable, "-I", "-u", REPO / "scoring_program" / "score.py", tmp_path / "input", tmp_path / "out"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert scoring.returncode == 2 and "usage" not in scoring.stderr and scoring.stderr.count("\n") == 1
