"""Splicing predicted audio into the real stream (cross-fades)."""

from .crossfade import crossfade, fade_windows

__all__ = ["crossfade", "fade_windows"]
