"""``python -m nextblock SUBCOMMAND ...``: the same as the ``nextblock`` command (:mod:`nextblock.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
