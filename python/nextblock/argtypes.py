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
            raise argparse.ArgumentTypeError(
                f"{what} must be a number from {low:g} to {high:g}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse


def int_list(text: str) -> list[int]:
    """``"44100,48000"`` → ``[44100, 48000]`` (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def group_weight(text: str) -> tuple[str, float]:
    """``"choir=3"`` → ``("choir", 3.0)`` (argparse type)."""
    name, _, weight = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GROUP=WEIGHT, got {text!r}") from None
    if not name or value < 0:
        raise argparse.ArgumentTypeError(f"expected GROUP=WEIGHT with a weight >= 0, got {text!r}")
    return name, value
