"""Where NextBlock keeps what it downloads, builds and learns: one cache root for every part.

``$NEXTBLOCK_CACHE`` (default ``~/.cache/nextblock``); the layout below it is described in
:mod:`nextblock.dataset.cache` (archives, debian/extracted, rendered, shards), beside
``jacktrip/`` (patched builds, :mod:`nextblock.jackio.patched_build`), ``models/live``
(:mod:`nextblock.learning.publish`) and ``test-models/``. Standard library only: the runtime
and the CLI import it without numpy.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "NEXTBLOCK_CACHE"
"""Environment variable that overrides the cache root."""


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """The cache root directory (not created): ``override`` (e.g. a ``--cache`` flag) when given,
    else ``$NEXTBLOCK_CACHE`` when set and non-empty, else ``~/.cache/nextblock``; ``~`` expanded."""
    if override is not None:
        return Path(override).expanduser()
    from_env = os.environ.get(CACHE_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "nextblock"
