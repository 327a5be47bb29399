"""Command-line entry points. Each turns every user mistake into one line on stderr."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .core.errors import guarded
from .ingestion.program import ingest_main
from .scoring.program import leaderboard_summary, score_main


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
        print(leaderboard_summary(scores))
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
