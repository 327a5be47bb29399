"""The command line: ``python -m cityscapes_competition COMMAND ...`` (also ``... .cli`` and the
``cityscapes-competition`` script). Each command is a module's ``add_arguments`` and ``run`` (or its own
``main``); each turns every user mistake into one line on stderr."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core.command_line import DefaultsFormatter, make_parser
from .core.errors import guarded
from .ingestion import program as ingestion_program
from .scoring import program as scoring_program

DEMO_DESCRIPTION = (
    "The main job on the default data: build the competition data and both bundles, then run the baseline "
    "submission through the ingestion program and score it, as the platform would."
)
INDEX_DESCRIPTION = (
    "Build the reference index of a ground-truth folder (once per reference data set), with re-encoded copies"
    " of the files that decode slowly; the files themselves are left as they are."
)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="where the generated data goes")
    parser.add_argument("--images", type=int, default=500, help="test images to generate (the competition has 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="where the bundles go")
    parser.add_argument("--submission", type=Path, default=Path("baseline_submission"), help="the submission to run")


def demo_main(argv: list[str] | None = None) -> int:
    """The main job on the default data (``DEMO_DESCRIPTION``)."""
    return _run_demo(make_parser("demo", DEMO_DESCRIPTION, _demo_arguments).parse_args(argv))


def _run_demo(args: argparse.Namespace) -> int:
    def run() -> None:
        from .ingestion.run import run_ingestion
        from .organiser.bundle import build_bundles, report_lines
        from .organiser.competition_data import build_competition_data
        from .scoring.evaluation import evaluate
        from .scoring.score_files import DETAILED_RESULTS, write_score_files

        competition = args.data / "competition" if args.images == 500 else args.data / f"competition_{args.images}"
        print(f"1/4 Competition data ({args.images} synthetic test images, 2048x1024) in {competition} ...", flush=True)
        data = build_competition_data(competition, synthetic_count=args.images, seed=args.seed)
        print(f"2/4 Bundles in {args.dist} ...", flush=True)
        report = build_bundles(competition, args.dist)
        for line in [*report_lines(report), *(f"warning: {warning}" for warning in report.warnings)]:
            print(f"    {line}")
        results, output = args.data / "demo" / "res", args.data / "demo" / "output"
        print(f"3/4 Ingestion: {args.submission} on {data.input_data} ...", flush=True)
        shutil.rmtree(results, ignore_errors=True)
        run_ingestion(data.input_data, results, args.submission)
        print(f"4/4 Scoring {results} against {data.reference_data} ...", flush=True)
        scores = evaluate(data.reference_data, results)
        write_score_files(output, scores)
        print(scoring_program.leaderboard_summary(scores))
        print(f"Detailed results: {output / DETAILED_RESULTS}")

    return guarded(run, "demo")


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", type=Path, help="the folder holding gtFine/ (and disparity/, camera/)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")


def index_main(argv: list[str] | None = None) -> int:
    """Build the reference index of a ground-truth folder (``INDEX_DESCRIPTION``)."""
    return _run_index(make_parser("index", INDEX_DESCRIPTION, _index_arguments).parse_args(argv))


def _run_index(args: argparse.Namespace) -> int:
    def run() -> None:
        from .scoring.reference_index import COPIES_DIR, build_reference_index, index_copies

        index = build_reference_index(args.reference, args.workers)
        copies = len(index_copies(index.parent))
        print(f"Wrote {index}")
        if copies:
            print(
                f"and {copies} copies of ground-truth files re-encoded to decode faster (the files themselves are "
                f"unchanged) in {index.parent / COPIES_DIR}: upload them with the index"
            )

    return guarded(run, "index")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    from .kit.submission_check import add_arguments

    add_arguments(parser)


def _run_check(args: argparse.Namespace) -> int:
    from .kit.submission_check import run_parsed

    return run_parsed(args)


def _data_command(argv: list[str]) -> int:
    from .organiser.competition_data import main as data_main

    return data_main(argv)


def _bundle_command(argv: list[str]) -> int:
    from .organiser.bundle import main as bundle_main

    return bundle_main(argv)


@dataclass(frozen=True)
class Command:
    summary: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None] | None  # None: own_main parses the arguments
    run: Callable[[argparse.Namespace], int] | None
    own_main: Callable[[list[str]], int] | None = None  # a command whose parser lives in its own module


COMMANDS = {
    "check": Command(
        "check a submission as the platform would, on sample data (the starting kit's checker)",
        "Check a submission folder or zip as the platform would, on sample data, and write submission.zip.",
        _check_arguments,
        _run_check,
    ),
    "ingest": Command(
        "run a model over test images (the ingestion program)",
        ingestion_program.DESCRIPTION,
        ingestion_program.add_arguments,
        ingestion_program.run,
    ),
    "score": Command(
        "score results against ground truth (the scoring program)",
        scoring_program.DESCRIPTION,
        scoring_program.add_arguments,
        scoring_program.run,
    ),
    "data": Command(
        "build the competition data (reference, input and sample data)",
        "Build the competition's data folders; 'data --help' lists the options.",
        None,
        None,
        _data_command,
    ),
    "bundle": Command(
        "check challenge.yaml and build both platforms' bundles",
        "Check challenge.yaml as the platforms' rules require, then build the bundles ('bundle --help': the options).",
        None,
        None,
        _bundle_command,
    ),
    "demo": Command("build everything and run the baseline end to end", DEMO_DESCRIPTION, _demo_arguments, _run_demo),
    "index": Command(
        "build the reference index of a ground-truth folder", INDEX_DESCRIPTION, _index_arguments, _run_index
    ),
}


def program_name() -> str:
    """How the user started this: ``python -m cityscapes_competition``, ``... .cli`` or the console script."""
    started = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if started == "__main__.py":
        return "python -m cityscapes_competition"
    if started == "cli.py":
        return "python -m cityscapes_competition.cli"
    return started or "cityscapes-competition"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The commands as argparse subcommands, each with its options and their defaults."""
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description="The Cityscapes competition's programs and tools.",
        epilog="Each command's options and defaults: COMMAND --help.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for name, command in COMMANDS.items():
        if command.configure is None:  # listed here; its own parser reads its arguments
            commands.add_parser(name, help=command.summary, description=command.description, add_help=False)
            continue
        sub = commands.add_parser(
            name,
            help=command.summary,
            description=command.description,
            formatter_class=DefaultsFormatter,
        )
        command.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m cityscapes_competition COMMAND ...`` (also ``... .cli`` and the ``cityscapes-competition``
    script): ``--help`` lists the commands, ``COMMAND --help`` each one's options with their defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    own_main = COMMANDS[argv[0]].own_main if argv[0] in COMMANDS else None
    if own_main is not None:
        return own_main(argv[1:])
    args = parser.parse_args(argv)
    run = COMMANDS[args.command].run
    assert run is not None  # every command without own_main has one
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
