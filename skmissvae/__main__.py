"""``python -m skmissvae``: the same command line as ``skmissvae`` (see ``skmissvae._cli``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
