"""A batch that outruns the time budget is stopped by the watchdog, with the reason, before the platform's kill.
The platform's program arms it (ingestion.run_ingestion with the process's clock); the worker replays in
test_platform_worker.py run that program to the end, so it never fires early."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from cityscapes_competition.core.ingestion_status import FAILURE_REASON


def test_the_watchdog_stops_the_process_with_one_line_and_the_reason(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cityscapes_competition.ingestion.run import start_watchdog\n"
        f"start_watchdog(time.perf_counter() + 0.5, Path({str(tmp_path)!r}), sys.stdout)\n"
        "time.sleep(30)  # a batch that never ends\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 20  # not the 30 s of the batch
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "still predicting when the time limit" in done.stderr
    assert "time limit was about to end" in (tmp_path / FAILURE_REASON).read_text()
