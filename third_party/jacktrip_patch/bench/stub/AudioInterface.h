// Benchmark-only stand-in for JackTrip's AudioInterface.h: just the two static sample
// converters NextBlockBridge.cpp calls, with the same signatures and per-sample semantics for
// 16/32-bit (JackTrip's own are out-of-line functions too: see bridge_bench_convert.cpp).
#pragma once
#include <cstdint>
typedef float sample_t;
class AudioInterface
{
   public:
    enum audioBitResolutionT { BIT8 = 1, BIT16 = 2, BIT24 = 3, BIT32 = 4 };
    static void fromSampleToBitConversion(const sample_t* const input, int8_t* output,
                                          const audioBitResolutionT targetBitResolution);
    static void fromBitToSampleConversion(const int8_t* const input, sample_t* output,
                                          const audioBitResolutionT sourceBitResolution);
};
