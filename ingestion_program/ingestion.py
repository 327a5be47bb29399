"""CodaLab/Codabench ingestion entry point: ``python3 -I ingestion.py INPUT_DATA OUTPUT PROGRAM SUBMISSION``."""

import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
_ROOT = next(r for r in (_HERE, os.path.dirname(_HERE)) if os.path.isdir(os.path.join(r, "cityscapes_competition")))
sys.path.insert(0, _ROOT)  # the bundle ships the package beside this file; the repository one level up

from cityscapes_competition.core.isolation import isolate_imports  # noqa: E402 (uses only os and sys)

isolate_imports(_ROOT, "ingestion.py")  # before anything else is imported: nothing from the submission

from cityscapes_competition.ingestion.program import ingest_main  # noqa: E402

if __name__ == "__main__":
    code = ingest_main(own_process=True)
    # Every result file is written and closed: skip TensorFlow's interpreter teardown (about a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
