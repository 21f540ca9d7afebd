"""``python -m nextblock.dataset``: see :mod:`nextblock.dataset.cli`."""

import sys

from .cli import main

sys.exit(main())
