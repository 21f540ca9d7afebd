// Out-of-line converters for the benchmark (like JackTrip's, not inlined into the bridge).
#include <cmath>
#include <cstring>

#include "AudioInterface.h"

void AudioInterface::fromSampleToBitConversion(const sample_t* const input, int8_t* output,
                                               const audioBitResolutionT res)
{
    if (res == BIT16) {
        int16_t v = static_cast<int16_t>(std::lrint(*input * 32767.0f));
        std::memcpy(output, &v, 2);
    } else {
        std::memcpy(output, input, 4);
    }
}

void AudioInterface::fromBitToSampleConversion(const int8_t* const input, sample_t* output,
                                               const audioBitResolutionT res)
{
    if (res == BIT16) {
        int16_t v;
        std::memcpy(&v, input, 2);
        *output = static_cast<sample_t>(v) / 32768.0f;
    } else {
        std::memcpy(output, input, 4);
    }
}
