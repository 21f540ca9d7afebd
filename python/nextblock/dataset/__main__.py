"""``python -m nextblock.dataset``: see :mod:`nextblock.commands.dataset`."""

import sys

from nextblock.commands.dataset import main

sys.exit(main(prog="python -m nextblock.dataset"))
