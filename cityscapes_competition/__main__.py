"""``python -m cityscapes_competition COMMAND ...``: the same entry as the ``cityscapes-competition`` script."""

import sys

from cityscapes_competition.cli import main

if __name__ == "__main__":
    sys.exit(main())
