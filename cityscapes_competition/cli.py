"""Command-line entry points. Each turns every user mistake into one line on stderr."""

from __future__ import annotations

import argparse
import contextlib
import gc
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserFacingError


def guarded(run: Callable[[], None], program: str, log_dir: Path | None = None) -> int:
    """Run ``run``; a user mistake becomes one message, an internal failure one line plus a log file."""
    try:
        run()
    except UserFacingError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the message must still be one line for the participant
        log = _write_crash_log(log_dir, program)
        where = f" (details in {log})" if log else ""
        print(f"{program}: internal error: {type(error).__name__}: {error}{where}", file=sys.stderr)
        return 3
    return 0


def _write_crash_log(log_dir: Path | None, program: str) -> Path | None:
    if log_dir is None:
        return None
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"{program}_internal_error.log"
        path.write_text(traceback.format_exc(), encoding="utf-8", errors="backslashreplace")  # odd file names
        return path
    except OSError:
        return None


SCORE_DESCRIPTION = "Score Cityscapes results (CodaLab convention): INPUT holds ref/ (ground truth) and res/ (results)."
INGEST_DESCRIPTION = (
    "Run a participant's Keras model on the test images. The platforms' command line (ingestion_program/metadata) "
    "also passes the ingestion program's own folder before SUBMISSION; it is accepted and not needed."
)
DEMO_DESCRIPTION = (
    "The main job on the default data: build the competition data and both bundles, then run the baseline "
    "submission through the ingestion program and score it, as the platform would."
)
INDEX_DESCRIPTION = "Build the reference index of a ground-truth folder (once per reference data set)."


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help: appended, unless the help already says what it is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "default" in action.help:
            return action.help
        return super()._get_help_string(action)


def _parser(prog: str, description: str, configure: Callable[[argparse.ArgumentParser], None]):
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=DefaultsFormatter)
    configure(parser)
    return parser


def _score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="folder holding ref/ and res/ (and the platform's metadata)")
    parser.add_argument("output", type=Path, help="folder that receives scores.txt, scores.json, detailed_results.html")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="self-hosted: the SQLite submission ledger that counts submissions where the platform gives no data "
        "(default: none, the platform's data)",
    )
    parser.add_argument("--participant", default=None, help="with --ledger: who submitted (default: the OS user)")
    parser.add_argument(
        "--no-submission-rules",
        action="store_true",
        help="score without checking deadlines and submission limits (organiser re-scoring)",
    )
    parser.add_argument(
        "--challenge", type=Path, default=None, help="the competition settings (default: the built-in challenge.yaml)"
    )


def score_main(argv: list[str] | None = None) -> int:
    """``score.py INPUT OUTPUT``: INPUT holds ref/ (ground truth) and res/ (results).

    Without ``argv`` (score.py) this is the process's program, and the process ends when it returns."""
    args = _parser("score.py", SCORE_DESCRIPTION, _score_arguments).parse_args(argv)
    status = _run_score(args)
    if argv is None:
        gc.freeze()  # exit's last collections would walk every object matplotlib made: ~80 ms, for nothing
    return status


def _run_score(args: argparse.Namespace) -> int:
    def run() -> None:
        from .score_files import await_watcher, prepare_output, watched_by_platform, write_failure_page

        watched = watched_by_platform(args.output)  # before prepare_output writes the first page
        prepare_output(args.output)
        try:
            _score(args)
        except UserFacingError as error:
            write_failure_page(args.output, str(error))
            raise
        finally:
            if watched:
                await_watcher()

    return guarded(run, "score.py", log_dir=args.output)


def _score(args: argparse.Namespace) -> None:
    """Refuse a failed ingestion, apply the submission rules, evaluate, write the score files."""
    from .challenge import load_challenge
    from .evaluation import evaluate
    from .ingestion_status import refuse_failed_ingestion
    from .report_html import prefetch_chart_library
    from .score_files import write_score_files
    from .submission_rules import check_submission

    refuse_failed_ingestion(args.input / "res")
    settings = load_challenge(args.challenge)
    decision = check_submission(
        args.input,
        settings,
        ledger_path=args.ledger,
        participant=args.participant,
        enforce=not args.no_submission_rules,
    )
    print(decision.summary)
    try:
        # the report's matplotlib is imported in the background while worker processes evaluate the frames
        scores = evaluate(args.input / "ref", args.input / "res", args.workers, prefetch_chart_library)
        write_score_files(args.output, scores)
    except BaseException as error:
        _release_try(decision, error)  # a failed submission never counts
        raise
    decision.complete(scores.leaderboard())
    for warning in scores.reported_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(_summary(scores))


def _release_try(decision, error: BaseException) -> None:
    """Release the ledger's try; if that fails too, say so, but the scoring error stays the one reported."""
    try:
        decision.fail(f"{type(error).__name__}: {error}")
    except UserFacingError as release_error:
        print(f"score.py: warning: the failed try could not be released: {release_error}", file=sys.stderr)


def _summary(scores) -> str:
    return "\n".join(f"{key}: {value:.4f}" for key, value in scores.leaderboard().items())


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input_data", type=Path, help="the test images (leftImg8bit/...)")
    parser.add_argument("output", type=Path, help="where the results go (pixel/, instance/)")
    # The platforms' command line passes $ingestion_program here (ingestion_program/metadata): taken, not shown.
    parser.add_argument("platform_program", type=Path, nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("submission", type=Path, help="the participant's files: metadata and one .keras/.h5 model")


def ingest_main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """``ingestion.py INPUT_DATA OUTPUT [INGESTION_PROGRAM] SUBMISSION``: the platforms pass all four
    (CodaLab v1.5 convention, competition.yaml), a person the three that matter.

    ``own_process``: started by the platform as this program (the entry point): the time limit's clock started
    with the process, so its start-up counts."""
    args = _parser("ingestion.py", INGEST_DESCRIPTION, _ingest_arguments).parse_args(argv)
    return _run_ingest(args, own_process)


def _run_ingest(args: argparse.Namespace, own_process: bool = False) -> int:
    def run() -> None:
        from .ingestion import process_start_counter, run_ingestion
        from .ingestion_status import write_failure_reason

        clock_started = process_start_counter() if own_process else None
        try:
            run_ingestion(args.input_data, args.output, args.submission, clock_started=clock_started)
        except UserFacingError as error:
            with contextlib.suppress(OSError):  # for Codabench's scorer, which runs anyway (ingestion_status)
                write_failure_reason(args.output, str(error))
            raise

    return guarded(run, "ingestion.py", args.output.parent if args.output.parent.exists() else None)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="where the generated data goes")
    parser.add_argument("--images", type=int, default=500, help="test images to generate (the competition has 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="where the bundles go")
    parser.add_argument("--submission", type=Path, default=Path("baseline_submission"), help="the submission to run")


def demo_main(argv: list[str] | None = None) -> int:
    """The main job on the default data (``DEMO_DESCRIPTION``)."""
    return _run_demo(_parser("demo", DEMO_DESCRIPTION, _demo_arguments).parse_args(argv))


def _run_demo(args: argparse.Namespace) -> int:
    def run() -> None:
        from .bundle import build_bundles, report_lines
        from .competition_data import build_competition_data
        from .evaluation import evaluate
        from .ingestion import run_ingestion
        from .score_files import DETAILED_RESULTS, write_score_files

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
        print(_summary(scores))
        print(f"Detailed results: {output / DETAILED_RESULTS}")

    return guarded(run, "demo")


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", type=Path, help="the folder holding gtFine/ (and disparity/, camera/)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")


def index_main(argv: list[str] | None = None) -> int:
    """Build the reference index of a ground-truth folder (``INDEX_DESCRIPTION``)."""
    return _run_index(_parser("index", INDEX_DESCRIPTION, _index_arguments).parse_args(argv))


def _run_index(args: argparse.Namespace) -> int:
    def run() -> None:
        from .reference_index import build_reference_index

        print(f"Wrote {build_reference_index(args.reference, args.workers)}")

    return guarded(run, "index")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    from .submission_check import add_arguments

    add_arguments(parser)


def _run_check(args: argparse.Namespace) -> int:
    from .submission_check import run_parsed

    return run_parsed(args)


@dataclass(frozen=True)
class Command:
    summary: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None] | None  # None: own_main parses the arguments
    run: Callable[[argparse.Namespace], int] | None
    own_main: Callable[[list[str]], int] | None = None  # a command whose parser lives in its own module


def _data_command(argv: list[str]) -> int:
    from .competition_data import main as data_main

    return data_main(argv)


COMMANDS = {
    "check": Command(
        "check a submission as the platform would, on sample data (the starting kit's checker)",
        "Check a submission folder or zip as the platform would, on sample data, and write submission.zip.",
        _check_arguments,
        _run_check,
    ),
    "ingest": Command(
        "run a model over test images (the ingestion program)", INGEST_DESCRIPTION, _ingest_arguments, _run_ingest
    ),
    "score": Command(
        "score results against ground truth (the scoring program)", SCORE_DESCRIPTION, _score_arguments, _run_score
    ),
    "data": Command(
        "build the competition data (reference, input and sample data)",
        "Build the competition's data folders; 'data --help' lists the options.",
        None,
        None,
        _data_command,
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
