"""Errors of the live predictor that the command line turns into one-line messages.

Every class here means "the user (or the setup) must change something"; the entry point
``python -m nextblock.attach`` prints ``str(err)`` and exits with status 2, without a traceback.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class AttachError(Exception):
    """A problem the user can fix (wrong PID, incompatible model, bad option). Exit status 2."""


class IncompatibleModel(AttachError):
    """The model cannot serve this stream (block size, sample rate, context) or is unreadable."""


class ProducerGone(Exception):
    """The producer (JackTrip) closed its segment or exited while we were attached.

    Not a user error: the supervisor waits for it to come back (or stops with ``--once``).
    """
