// Benchmark-only stand-in for JackTrip's JackTrip.h: what the patched RingBuffer.cpp and
// JitterBuffer.cpp use of it (bench/lock_bench.cpp times their locked read and insert paths
// outside JackTrip). bench/jacktrip_patch.py copies it beside the patched buffer sources.
#pragma once
#include <atomic>
class JackTrip
{
   public:
    static bool sAudioStopped;
    void queueLengthChanged(int) {}
};
