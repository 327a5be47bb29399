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
from ..core.processes import ForkedHelper

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
    status = run(make_parser("score.py", DESCRIPTION, add_arguments).parse_args(argv), chart_process=argv is None)
    if argv is None:
        gc.freeze()  # exit's last collections would walk every object (matplotlib's, if drawn here): for nothing
    return status


def run(args: argparse.Namespace, chart_process: bool = False) -> int:
    """``chart_process``: draw the charts in a process forked now (see ``_load_chart_library``), where that is
    safe; score.py does, as the process's program. Called in a larger program (the tests, the command line),
    this process imports matplotlib while worker processes evaluate the frames, and draws them."""

    def scoring() -> None:
        charts = ForkedHelper.fork(_load_chart_library, _draw_charts) if chart_process else None
        try:
            _scoring(args, charts)
        finally:
            if charts is not None:
                charts.stop()

    return guarded(scoring, "score.py", log_dir=args.output)


def _scoring(args: argparse.Namespace, charts: ForkedHelper | None) -> None:
    from .score_files import await_watcher, prepare_output, watched_by_platform, write_failure_page

    watched = watched_by_platform(args.output)  # before prepare_output writes the first page
    prepare_output(args.output)
    try:
        with collections_paused():
            _score(args, charts)
    except UserFacingError as error:
        write_failure_page(args.output, str(error))
        raise
    finally:
        if charts is not None:
            charts.stop()  # before the watcher's wait, if scoring failed
        if watched:
            await_watcher()


def _load_chart_library() -> None:
    """The chart process's start: forked before this process imports numpy, it imports numpy and matplotlib
    (~0.2 s) on the second core, which is idle until the worker processes start: matplotlib's import no
    longer takes its turn with them, nor delays the charts of a run without workers."""
    gc.disable()  # it makes a few figures and ends (see collections_paused)
    from .report_charts import load_chart_library
    from .score_files import draw_charts_in_two_processes  # noqa: F401 (imported now, not when asked)

    load_chart_library()


def _draw_charts(jobs: list) -> dict[str, str | None]:
    """The chart process's answer: the charts of ``jobs`` (it forks once more to draw them in two processes)."""
    from .score_files import draw_charts_in_two_processes

    return draw_charts_in_two_processes(jobs)


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """Python's cycle collector paused while scoring: what the scorer allocates (imports, matplotlib's figures
    when it draws them here) triggers collections that walk every object (~180, 50-150 ms, with matplotlib;
    ~30 and 10-20 ms without), to free a few cycles a little earlier. Worker processes collect as usual
    (``worker_pool``)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _score(args: argparse.Namespace, charts: ForkedHelper | None = None) -> None:
    """Refuse a failed ingestion, apply the submission rules, evaluate, write the score files.

    ``charts``: the chart process, which draws the report's charts; without it, this process imports matplotlib
    in the background while worker processes evaluate the frames, and draws them."""
    from ..core.challenge import load_challenge
    from ..core.ingestion_status import refuse_failed_ingestion
    from .evaluation import evaluate
    from .report_charts import chart_jobs, prefetch_chart_library
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
        prefetch = prefetch_chart_library if charts is None else None
        scores = evaluate(args.input / "ref", args.input / "res", args.workers, prefetch)
        drawn = charts.ask(chart_jobs(scores)) if charts is not None else None
        write_score_files(args.output, scores, drawn if isinstance(drawn, dict) else None)  # None: drawn here
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
