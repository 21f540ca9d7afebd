"""Raw access to a live segment in /dev/shm, as a hostile or broken process would have it
(tests/test_shm_*.py, test_attach_cli.py).

* :func:`write_at` / :func:`read_at` – one value at a byte offset.
* :func:`poke` – one identity field of the header, by name (offsets from the C++ header).
"""

from __future__ import annotations

import struct

from nextblock import _core

HEADER = _core.header_field_offsets()


def write_at(name: str, offset: int, fmt: str, value) -> None:
    """Overwrite the ``struct`` value ``fmt`` at byte ``offset`` of segment ``name``."""
    with open("/dev/shm" + name, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def read_at(name: str, offset: int, fmt: str):
    """The ``struct`` value ``fmt`` at byte ``offset`` of segment ``name``."""
    with open("/dev/shm" + name, "rb") as f:
        f.seek(offset)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def poke(name: str, field: str, fmt: str, value) -> None:
    """Overwrite the header field ``field`` of segment ``name``."""
    write_at(name, HEADER[field], fmt, value)
