"""The ingestion program: ``ingestion.py INPUT_DATA OUTPUT [INGESTION_PROGRAM] SUBMISSION``, the command both
platforms run (CodaLab v1.5 convention): the participant's model over the test images, into result files.
A participant mistake is one line on stderr (exit 2), and its reason is left for Codabench's scorer.
``add_arguments`` and ``run`` are also the command line's ``ingest`` command.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..core.command_line import make_parser
from ..core.errors import UserFacingError, guarded

DESCRIPTION = (
    "Run a participant's Keras model on the test images. The platforms' command line (ingestion_program/metadata) "
    "also passes the ingestion program's own folder before SUBMISSION; it is accepted and not needed."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    return run(make_parser("ingestion.py", DESCRIPTION, add_arguments).parse_args(argv), own_process)


def run(args: argparse.Namespace, own_process: bool = False) -> int:
    def ingestion() -> None:
        from ..core.ingestion_status import write_failure_reason
        from .run import process_start_counter, run_ingestion

        clock_started = process_start_counter() if own_process else None
        try:
            run_ingestion(args.input_data, args.output, args.submission, clock_started=clock_started)
        except UserFacingError as error:
            with contextlib.suppress(OSError):  # for Codabench's scorer, which runs anyway (ingestion_status)
                write_failure_reason(args.output, str(error))
            raise

    return guarded(ingestion, "ingestion.py", args.output.parent if args.output.parent.exists() else None)
