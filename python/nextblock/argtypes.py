"""argparse types shared by the command lines: a clear message for a value out of range."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def number_in(kind: Callable[[str], float], low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse ``type`` that parses with ``kind`` (``int``, ``float``) and accepts ``low`` to
    ``high`` inclusive; ``what`` names the value in the error (``"--seconds"``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number from {low:g} to {high:g}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse
