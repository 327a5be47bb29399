"""CodaLab/Codabench scoring entry point: ``python3 -I score.py INPUT OUTPUT``."""

import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
_ROOT = next(r for r in (_HERE, os.path.dirname(_HERE)) if os.path.isdir(os.path.join(r, "cityscapes_competition")))
sys.path.insert(0, _ROOT)  # the bundle ships the package beside this file; the repository one level up

from cityscapes_competition.core.isolation import isolate_imports  # noqa: E402 (uses only os and sys)

isolate_imports(_ROOT, "score.py")  # before anything else is imported: nothing from PYTHONPATH
# Before numpy is loaded in any of the scorer's processes: OpenBLAS starts a thread per core, which spin at its
# load (~40 ms of the other core each time), for nothing: the scorer runs one process per core and no large BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from cityscapes_competition.scoring.program import score_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(score_main())
