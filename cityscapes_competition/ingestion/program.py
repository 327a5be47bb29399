"""The ingestion program: ``ingestion.py INPUT_DATA OUTPUT INGESTION_PROGRAM SUBMISSION``, the command both
platforms run (CodaLab v1.5 convention): the participant's model over the test images, into result files.
A participant mistake is one line on stderr (exit 2), and its reason is left for Codabench's scorer.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..core.errors import UserFacingError, guarded


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
        from ..core.ingestion_status import write_failure_reason
        from .run import process_start_counter, run_ingestion

        clock_started = process_start_counter() if own_process else None
        try:
            run_ingestion(args.input_data, args.output, args.submission, clock_started=clock_started)
        except UserFacingError as error:
            with contextlib.suppress(OSError):  # for Codabench's scorer, which runs anyway (ingestion_status)
                write_failure_reason(args.output, str(error))
            raise

    return guarded(run, "ingestion.py", args.output.parent if args.output.parent.exists() else None)
