"""Stand-ins for the parts of a live session that a test, a benchmark or the demo cannot always
have: :mod:`~nextblock.lab.emulator` plays patched JackTrip's role (the same shared-memory
segments, real-time blocks, losses and play-out clock) when no patched JackTrip is built. Never
imported by the runtime (``nextblock.runtime``), which serves a real JackTrip.
"""
