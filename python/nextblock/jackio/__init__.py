"""JACK and JackTrip process orchestration for the end-to-end path (demo, tests, benches).

* ``procs``     – ``ManagedProcess``: own process group, log file, SIGTERM→SIGKILL teardown,
  ``leftover_processes()`` (found by the ``NEXTBLOCK_OWNER`` env marker, never others')
* ``jackd``     – ``JackdServer``: a uniquely named ``jackd -d dummy`` server
* ``jacktrip``  – ``JackTripProcess``: P2P server/client, IO-stat parsing
* ``playrec`` / ``recorder`` – play numpy audio into send ports, record receive ports
* ``recording`` – a real recording from an allowed Debian package (shared cache)
* ``align``     – cross-correlation alignment (piecewise, follows jitter-buffer slips) + metrics
* ``e2e``       – ``run_e2e``: one full run; seams for the patched binary and ``nextblock.attach``
* ``patched_build`` – find or build the patched JackTrip 2.7.2 (``python3 -m nextblock.jackio.patched_build``)
* ``segment_tap`` – read-only reader of the patched JackTrip's event ring (which seqs were concealed, how)
"""
