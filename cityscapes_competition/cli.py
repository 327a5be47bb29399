"""Command-line entry points. Each turns every user mistake into one line on stderr."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

from .core.errors import UserFacingError, guarded


def score_main(argv: list[str] | None = None) -> int:
    """``score.py INPUT OUTPUT``: INPUT holds ref/ (ground truth) and res/ (results)."""
    parser = argparse.ArgumentParser(prog="score.py", description="Score Cityscapes results (CodaLab convention).")
    parser.add_argument("input", type=Path, help="folder holding ref/ and res/ (and the platform's metadata)")
    parser.add_argument("output", type=Path, help="folder that receives scores.txt, scores.json, detailed_results.html")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="self-hosted: the SQLite submission ledger that counts submissions where the platform gives no data",
    )
    parser.add_argument("--participant", default=None, help="with --ledger: who submitted (default: the OS user)")
    parser.add_argument(
        "--no-submission-rules",
        action="store_true",
        help="score without checking deadlines and submission limits (organiser re-scoring)",
    )
    parser.add_argument("--challenge", type=Path, default=None, help="the competition settings (default: built in)")
    args = parser.parse_args(argv)

    def run() -> None:
        from .scoring.score_files import await_watcher, prepare_output, watched_by_platform, write_failure_page

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
    from .core.challenge import load_challenge
    from .scoring.evaluation import evaluate
    from .scoring.ingestion_status import refuse_failed_ingestion
    from .scoring.score_files import write_score_files
    from .scoring.submission_rules import check_submission

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
        scores = evaluate(args.input / "ref", args.input / "res", args.workers)
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


def ingest_main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """``ingestion.py INPUT_DATA OUTPUT INGESTION_PROGRAM SUBMISSION`` (CodaLab v1.5 convention).

    ``own_process``: started by the platform as this program (the entry point): the time limit's clock started
    with the process, so its start-up counts."""
    parser = argparse.ArgumentParser(
        prog="ingestion.py", description="Run a participant's Keras model on the test images."
    )
    parser.add_argument("input_data", type=Path, help="the test images (leftImg8bit/...)")
    parser.add_argument("output", type=Path, help="where the results go (pixel/, instance/)")
    parser.add_argument("ingestion_program", type=Path, help="this program's folder (unused)")
    parser.add_argument("submission", type=Path, help="the participant's files: metadata and one .keras/.h5 model")
    args = parser.parse_args(argv)

    def run() -> None:
        from .ingestion.run import process_start_counter, run_ingestion
        from .scoring.ingestion_status import write_failure_reason

        clock_started = process_start_counter() if own_process else None
        try:
            run_ingestion(args.input_data, args.output, args.submission, clock_started=clock_started)
        except UserFacingError as error:
            with contextlib.suppress(OSError):  # for Codabench's scorer, which runs anyway (ingestion_status)
                write_failure_reason(args.output, str(error))
            raise

    return guarded(run, "ingestion.py", args.output.parent if args.output.parent.exists() else None)


def demo_main(argv: list[str] | None = None) -> int:
    """The main job on the default data: build the competition data and both bundles, then run the
    baseline submission through the ingestion program and score it, as the platform would."""
    parser = argparse.ArgumentParser(prog="demo", description=demo_main.__doc__)
    parser.add_argument("--data", type=Path, default=Path("data"), help="where the generated data goes")
    parser.add_argument("--images", type=int, default=500, help="test images to generate (the competition has 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="where the bundles go")
    parser.add_argument("--submission", type=Path, default=Path("baseline_submission"), help="the submission to run")
    args = parser.parse_args(argv)

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
        print(_summary(scores))
        print(f"Detailed results: {output / DETAILED_RESULTS}")

    return guarded(run, "demo")


def index_main(argv: list[str] | None = None) -> int:
    """Build the reference index of a ground-truth folder (once per reference data set)."""
    parser = argparse.ArgumentParser(prog="index", description=index_main.__doc__)
    parser.add_argument("reference", type=Path, help="the folder holding gtFine/ (and disparity/, camera/)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)

    def run() -> None:
        from .scoring.reference_index import build_reference_index

        print(f"Wrote {build_reference_index(args.reference, args.workers)}")

    return guarded(run, "index")


def _check_main(argv: list[str]) -> int:
    from .kit.submission_check import main as check_main

    return check_main(argv)


def _data_main(argv: list[str]) -> int:
    from .organiser.competition_data import main as data_main

    return data_main(argv)


def main(argv: list[str] | None = None) -> int:
    """``python -m cityscapes_competition.cli {score,demo,index,ingest,check,data} ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "score": score_main,
        "demo": demo_main,
        "index": index_main,
        "ingest": ingest_main,
        "check": _check_main,
        "data": _data_main,
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python -m cityscapes_competition.cli {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
