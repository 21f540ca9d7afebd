// Cost of NextBlock's JackTrip hooks per block: the real NextBlockBridge.cpp, a real shm segment.
//   receive thread: onPacket()  (16-bit -> float, publish_block)
//   audio thread:   conceal() hit + replacementToBits(), conceal() miss, crossfadeFromReplacement(),
//                   and (alone) the sample validation that is part of every hit; playout() (the
//                   play-out clock + the missing-block check) with the next block there, and with it
//                   missing while a consumer sleeps (one FUTEX_WAKE)
// Prints one JSON object. Build: see bench/jacktrip_patch.py.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "NextBlockBridge.h"
#include "nextblock/shm_consumer.hpp"
#include "nextblock/shm_producer.hpp"

static double ns_per(const std::vector<double>& v, double q)
{
    std::vector<double> s(v);
    std::sort(s.begin(), s.end());
    return s[static_cast<size_t>(q * (s.size() - 1))];
}

int main(int argc, char** argv)
{
    const int frames    = argc > 1 ? atoi(argv[1]) : 128;
    const int chans     = argc > 2 ? atoi(argv[2]) : 2;
    const int iters     = argc > 3 ? atoi(argv[3]) : 20000;
    NextBlockBridge* nb = NextBlockBridge::create(false, 0, "bench", "127.0.0.1", 48000, frames, chans, 2);
    if (!nb)
        return 1;
    std::string why;
    auto consumer = nextblock::Consumer::attach(NextBlockBridge::segmentName(false, 0), true, &why);
    if (!consumer) {
        fprintf(stderr, "%s\n", why.c_str());
        return 1;
    }
    std::vector<int8_t> bits(frames * chans * 2, 1), out(frames * chans * 2);
    std::vector<float> two(2 * frames * chans, 0.25f);
    using clk = std::chrono::steady_clock;
    std::vector<double> rx, hit, miss, fade, check, clock_ok, clock_missing;
    rx.reserve(iters);
    hit.reserve(iters);
    miss.reserve(iters);
    fade.reserve(iters);
    check.reserve(iters);
    clock_ok.reserve(iters);
    clock_missing.reserve(iters);
    consumer->set_missing_lookahead(1);  // a just-in-time consumer: check the block after the one played
    std::vector<float> scratch(two);
    for (int i = 0; i < iters; ++i) {
        auto t0 = clk::now();
        nb->onPacket(static_cast<uint16_t>(i), bits.data(), static_cast<int>(bits.size()));
        auto t1 = clk::now();
        rx.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        t0 = clk::now();
        nb->playout(i - 1, 1);  // block i, just published, is there: no wake
        t1 = clk::now();
        if (i > 0)
            clock_ok.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        consumer->post_replacement(i + 1, two.data());  // the consumer, between blocks
        t0      = clk::now();
        bool ok = nb->conceal(NextBlockBridge::Underrun, i + 1, frames);
        if (ok)
            nb->replacementToBits(0, out.data());
        t1 = clk::now();
        if (!ok) {
            fprintf(stderr, "replacement not taken\n");
            return 1;
        }
        hit.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        t0 = clk::now();
        nb->crossfadeFromReplacement(out.data());
        t1 = clk::now();
        fade.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        t0 = clk::now();
        ok = nb->conceal(NextBlockBridge::Underrun, i + 1000003, frames);  // nothing posted: fallback
        t1 = clk::now();
        miss.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        std::copy(two.begin(), two.end(), scratch.begin());
        t0 = clk::now();
        ok = nextblock::sanitize_playable(scratch.data(), scratch.size());
        t1 = clk::now();
        if (!ok) {
            fprintf(stderr, "valid replacement refused\n");
            return 1;
        }
        check.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    const uint64_t found_before = consumer->missing_found();
    for (int j = 0; j < iters; ++j) {  // the block after each one played is missing, a consumer sleeps
        const uint64_t now = nextblock::monotonic_ns();
        consumer->register_missing_wake(now, now + 100000000ULL);
        auto t0 = clk::now();
        nb->playout(iters + 10 + 2 * j, 0);
        auto t1 = clk::now();
        clock_missing.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    if (consumer->missing_found() - found_before != static_cast<uint64_t>(iters)
        || consumer->missing_wakes_issued() == 0) {
        fprintf(stderr, "missing blocks not reported\n");
        return 2;
    }
    consumer->set_missing_lookahead(0);
    printf(
        "{\"frames\": %d, \"channels\": %d, \"iters\": %d,"
        " \"receive_publish_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"audio_replacement_hit_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"audio_crossfade_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"audio_miss_fallback_ns\": {\"median\": %.0f, \"p99\": %.0f}",
        frames, chans, iters, ns_per(rx, 0.5), ns_per(rx, 0.99), ns_per(hit, 0.5), ns_per(hit, 0.99),
        ns_per(fade, 0.5), ns_per(fade, 0.99), ns_per(miss, 0.5), ns_per(miss, 0.99));
    if (!check.empty())
        printf(", \"audio_validate_ns\": {\"median\": %.0f, \"p99\": %.0f}", ns_per(check, 0.5),
               ns_per(check, 0.99));
    printf(
        ", \"audio_playout_next_present_ns\": {\"median\": %.0f, \"p99\": %.0f}"
        ", \"audio_playout_next_missing_wake_ns\": {\"median\": %.0f, \"p99\": %.0f}",
        ns_per(clock_ok, 0.5), ns_per(clock_ok, 0.99), ns_per(clock_missing, 0.5),
        ns_per(clock_missing, 0.99));
    printf("}\n");
    // self-checks of the hardened paths (run under ASan/UBSan by tests/test_jacktrip_bridge.py)
    std::vector<float> bad(two);
    bad[7] = std::nanf("");
    consumer->post_replacement(5000003, bad.data());
    if (nb->conceal(NextBlockBridge::Underrun, 5000003, frames)) {
        fprintf(stderr, "NaN replacement taken\n");
        return 2;
    }
    bad[7] = 1e9f;
    consumer->post_replacement(5000004, bad.data());
    if (nb->conceal(NextBlockBridge::Underrun, 5000004, frames)) {
        fprintf(stderr, "1e9 replacement taken\n");
        return 2;
    }
    consumer->post_replacement(5000005, two.data());
    if (!nb->conceal(NextBlockBridge::Underrun, 5000005, frames)) {
        fprintf(stderr, "valid replacement refused\n");
        return 2;
    }
    // the 16-bit conversion is JackTrip's (AudioInterface::fromSampleToBitConversion, BIT16), ties too
    std::vector<float> sweep(two.size());
    for (size_t k = 0; k < sweep.size(); ++k)
        sweep[k] = k % 3 == 0 ? static_cast<float>((double(k % 65535) - 32767.0 + 0.5) / 32767.0)
                              : -1.0f + 2.0f * static_cast<float>(k) / static_cast<float>(sweep.size() - 1);
    for (float& v : sweep)
        v = std::max(-1.0f, std::min(1.0f, v));
    consumer->post_replacement(5000006, sweep.data());
    if (!nb->conceal(NextBlockBridge::Underrun, 5000006, frames)) {
        fprintf(stderr, "sweep refused\n");
        return 2;
    }
    nb->replacementToBits(0, out.data());
    for (int k = 0; k < frames * chans; ++k) {
        const int16_t want = static_cast<int16_t>(
            std::max<double>(-32767.0, std::min<double>(32767.0, std::round(sweep[k] * 32767.0))));
        int16_t got;
        memcpy(&got, out.data() + 2 * k, 2);
        if (got != want) {
            fprintf(stderr, "16-bit conversion of %a: %d, JackTrip's %d\n", sweep[k], got, want);
            return 2;
        }
    }
    // a replacement staged outside the lock (flushWakes: the block after the one played) plays
    // the same bits as one taken and converted under it; a re-post after the staging is the one
    // taken, a staged NaN is refused
    const std::vector<int8_t> unstaged(out.begin(), out.begin() + frames * chans * 2);
    nb->deferWakes();  // as the JitterBuffer / ring buffer do: flushWakes() stages from now on
    nb->playout(6000000, 0);
    nb->flushWakes();
    if (nb->stagedSeq() != -1) {
        fprintf(stderr, "staged with nothing posted\n");
        return 2;
    }
    consumer->post_replacement(6000001, sweep.data());
    nb->flushWakes();
    if (nb->stagedSeq() != 6000001) {
        fprintf(stderr, "next replacement not staged\n");
        return 2;
    }
    if (!nb->conceal(NextBlockBridge::Underrun, 6000001, frames)) {
        fprintf(stderr, "staged replacement refused\n");
        return 2;
    }
    std::fill(out.begin(), out.end(), 0);
    nb->replacementToBits(0, out.data());
    if (!std::equal(unstaged.begin(), unstaged.end(), out.begin())) {
        fprintf(stderr, "staged bits differ\n");
        return 2;
    }
    std::fill(out.begin(), out.end(), 0);
    nb->replacementFramesToBits(0, 3, frames - 3, out.data());
    if (!std::equal(unstaged.begin() + 3 * chans * 2, unstaged.end(), out.begin())) {
        fprintf(stderr, "staged frames differ\n");
        return 2;
    }
    if (std::memcmp(nb->replacement(1), sweep.data() + frames * chans, sizeof(float) * frames * chans) != 0) {
        fprintf(stderr, "staged block 1 differs\n");
        return 2;
    }
    nb->playout(6000001, 0);
    consumer->post_replacement(6000002, two.data());
    nb->flushWakes();
    consumer->post_replacement(6000002, sweep.data());  // re-posted after the staging
    if (!nb->conceal(NextBlockBridge::Underrun, 6000002, frames) || nb->replacement(0)[0] != sweep[0]) {
        fprintf(stderr, "re-post after staging not taken\n");
        return 2;
    }
    nb->replacementToBits(0, out.data());
    if (!std::equal(unstaged.begin(), unstaged.end(), out.begin())) {
        fprintf(stderr, "re-posted bits differ\n");
        return 2;
    }
    nb->playout(6000002, 0);
    bad[7] = std::nanf("");
    consumer->post_replacement(6000003, bad.data());
    nb->flushWakes();
    if (nb->conceal(NextBlockBridge::Underrun, 6000003, frames)) {
        fprintf(stderr, "staged NaN replacement taken\n");
        return 2;
    }
    const int64_t before = nb->lastReceived();
    for (int i = 0; i < 10; ++i)  // the peer restarts at 0: seqs keep moving forward
        nb->onPacket(static_cast<uint16_t>(i), bits.data(), static_cast<int>(bits.size()));
    if (nb->lastReceived() <= before) {
        fprintf(stderr, "seq went back after a peer restart\n");
        return 2;
    }
    // the play-out clock reaches the consumer
    nb->playout(1234, 3);
    nextblock::PlayoutClock clock;
    if (!consumer->read_playout(&clock) || clock.seq != 1234 || clock.queued_blocks != 3
        || clock.pull_blocks != 1) {
        fprintf(stderr, "play-out clock lost\n");
        return 2;
    }
    // a peer sending twice the block size: the segment is made again at the peer's size
    std::vector<int8_t> big(2 * bits.size(), 1);
    for (int i = 0; i < 50 && nb->frames() != 2 * frames; ++i) {
        nb->onPacket(static_cast<uint16_t>(20 + i), big.data(), static_cast<int>(big.size()));
        usleep(20000);
    }
    if (nb->frames() != 2 * frames || !consumer->producer_closed()) {
        fprintf(stderr, "not re-sized to the peer's blocks\n");
        return 2;
    }
    consumer.reset();
    consumer = nextblock::Consumer::attach(NextBlockBridge::segmentName(false, 0), true, &why);
    if (!consumer || consumer->config().frames_per_block != static_cast<uint32_t>(2 * frames)) {
        fprintf(stderr, "re-attach: %s\n", why.c_str());
        return 2;
    }
    nb->onPacket(100, big.data(), static_cast<int>(big.size()));
    if (consumer->blocks_written() != 1) {
        fprintf(stderr, "peer block not published\n");
        return 2;
    }
    std::vector<float> two2(4 * frames * chans, 0.5f);
    consumer->post_replacement(100, two2.data());
    // a caller whose slot still has JackTrip's block size gets no replacement (nothing written past its slot)
    if (nb->conceal(NextBlockBridge::Underrun, 100, frames)) {
        fprintf(stderr, "replacement of another block size taken\n");
        return 2;
    }
    if (!nb->conceal(NextBlockBridge::Underrun, 100, 2 * frames)
        || nb->replacement(1)[2 * frames * chans - 1] != 0.5f) {
        fprintf(stderr, "peer-size replacement not taken\n");
        return 2;
    }
    consumer.reset();
    delete nb;
    return 0;
}
