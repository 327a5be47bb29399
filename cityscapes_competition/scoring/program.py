"""The scoring program: ``score.py INPUT OUTPUT``, the command both platforms run (CodaLab convention).

Refuses a failed ingestion, applies the submission rules, evaluates, and writes the score files and the
detailed page; every participant mistake is one line on stderr (exit 2). ``add_arguments`` and ``run``
are also the command line's ``score`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

from ..core.command_line import make_parser
from ..core.errors import UserFacingError, guarded

DESCRIPTION = "Score Cityscapes results (CodaLab convention): INPUT holds ref/ (ground truth) and res/ (results)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    status = run(make_parser("score.py", DESCRIPTION, add_arguments).parse_args(argv))
    if argv is None:
        gc.freeze()  # exit's last collections would walk every object (numpy's, the package's): for nothing
    return status


def run(args: argparse.Namespace) -> int:
    """Score; the exit status, a mistake reported as one message (``guarded``)."""
    return guarded(lambda: _scoring(args), "score.py", log_dir=args.output)


def _scoring(args: argparse.Namespace) -> None:
    from .score_files import await_watcher, prepare_output, watched_by_platform, write_failure_page

    watched = watched_by_platform(args.output)  # before prepare_output writes the first page
    prepare_output(args.output)
    try:
        with collections_paused():
            _score(args)
    except UserFacingError as error:
        write_failure_page(args.output, str(error))
        raise
    finally:
        if watched:
            await_watcher()


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """Python's cycle collector paused while scoring: what the scorer allocates (its imports, numpy's above all)
    triggers collections that walk every object (~30, 10-20 ms), to free a few cycles a little earlier. Worker
    processes collect as usual (``worker_pool``)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _score(args: argparse.Namespace) -> None:
    """Refuse a failed ingestion, apply the submission rules, evaluate, write the score files."""
    from ..core.challenge import load_challenge
    from ..core.ingestion_status import refuse_failed_ingestion
    from .evaluation import evaluate
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
        scores = evaluate(args.input / "ref", args.input / "res", args.workers)
        write_score_files(args.output, scores)
    except BaseException as error:
        _release_try(decision, error)  # a failed submission never counts
        raise
    decision.complete(scores.leaderboard())
    for warning in scores.reported_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(leaderboard_summary(scores))


def _release_try(decision, error: BaseException) -> None:
    """Release the ledger's try; if that fails too, say so, but the scoring error stays the one reported."""
    try:
        decision.fail(f"{type(error).__name__}: {error}")
    except UserFacingError as release_error:
        print(f"score.py: warning: the failed try could not be released: {release_error}", file=sys.stderr)


def leaderboard_summary(scores) -> str:
    return "\n".join(f"{key}: {value:.4f}" for key, value in scores.leaderboard().items())
