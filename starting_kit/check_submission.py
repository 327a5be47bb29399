"""Check a submission before uploading it: ``python starting_kit/check_submission.py SUBMISSION_FOLDER``.

Runs what the platform runs (metadata and model checks, safe loading, ingestion, scoring) on the sample
data, projects the time for the 500 test images, saves overlay pictures and writes the submission.zip
to upload. ``--help`` lists the options.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _root in (_HERE, _HERE.parent):  # the package sits beside starting_kit/ (kit and repository) or beside this file
    if (_root / "cityscapes_competition").is_dir():
        sys.path.insert(0, str(_root))
        break

from cityscapes_competition.kit.submission_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
