// Time spent inside JackTrip's buffer lock per block, with NextBlock on: the patched RingBuffer.cpp
// and JitterBuffer.cpp themselves (copied from a patched JackTrip tree beside the stand-in
// stub_buffers/JackTrip.h), the real NextBlockBridge.cpp, a real segment, real QMutex.
//   audio thread:   readSlotNonBlocking() (holds mMutex from start to end: the stock read plus the
//                   hooks: replacement taken and converted, cross-fade back, events, play-out
//                   clock and, before the wake was deferred, the FUTEX_WAKEs), then flushWakes()
//                   after it where the bridge has it (JackTrip::receiveNetworkPacket);
//   receive thread: insertSlotNonBlocking() (mMutex held; the hooks record what was written).
// 5 % of the packets are lost (a hash of the seq); a consumer thread sleeps on the notify word (so
// wake-ups have a sleeper) and measures each underrun event's wake latency (its time_ns, stamped
// inside the lock, -> running again); the poster posts a replacement for each block before its read.
// Usage: lock_bench jitterbuffer|ringbuffer FRAMES CHANNELS BLOCKS [GAP_US]. Prints one JSON object.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "JitterBuffer.h"
#include "NextBlockBridge.h"
#include "RingBuffer.h"
#include "nextblock/shm_consumer.hpp"
#include "nextblock/shm_producer.hpp"

bool JackTrip::sAudioStopped = false;

namespace
{
bool lost(int64_t seq)
{
    return ((static_cast<uint64_t>(seq) * 2654435761u) >> 8) % 20 == 0;
}

// flushWakes() where the bridge has it (not in the bridge before the wake was deferred)
template<class B>
auto flush(B* b, int) -> decltype(b->flushWakes(), void())
{
    b->flushWakes();
}
template<class B>
void flush(B*, long)
{
}

double q(std::vector<double> v, double p)
{
    if (v.empty())
        return 0.0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(p * (v.size() - 1))];
}
}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2)
        return 2;
    const std::string strategy = argv[1];
    const int frames           = argc > 2 ? std::atoi(argv[2]) : 128;
    const int chans            = argc > 3 ? std::atoi(argv[3]) : 2;
    const int blocks           = argc > 4 ? std::atoi(argv[4]) : 20000;
    const int gapUs  = argc > 5 ? std::atoi(argv[5]) : 150;  // between blocks: 150 cold caches, 20 warm
    const int bitRes = 2, slot = frames * chans * bitRes;
    NextBlockBridge* nb =
        NextBlockBridge::create(false, 0, "lock", "127.0.0.1", 48000, frames, chans, bitRes);
    if (nb == nullptr)
        return 3;
    RingBuffer* buf = strategy == "jitterbuffer"
                          ? static_cast<RingBuffer*>(new JitterBuffer(frames, 4, 48000, 1, 0, chans, bitRes))
                          : new RingBuffer(slot, 8);
    buf->enableNextBlock(nb);
    std::string why;
    const std::string name = NextBlockBridge::segmentName(false, 0);
    auto poster            = nextblock::Consumer::attach(name, true, &why);
    auto sleeper           = nextblock::Consumer::attach(name, false, &why);
    if (!poster || !sleeper) {
        std::fprintf(stderr, "%s\n", why.c_str());
        return 3;
    }
    poster->set_missing_lookahead(1);
    std::atomic<bool> stop{false};
    std::vector<double> eventWakeNs;  // an event's post (its time_ns, inside the lock) -> the sleeper running
    eventWakeNs.reserve(blocks);
    std::thread sleeping([&] {  // a consumer asleep on the notify word whenever it can be
        uint64_t seen = sleeper->events_written();
        nextblock::EventSlot e{};
        while (!stop.load(std::memory_order_relaxed)) {
            const uint64_t now = nextblock::monotonic_ns();
            sleeper->register_notify_wake(now, now + 20000000ULL);
            const uint32_t word = sleeper->notify_word()->load(std::memory_order_seq_cst);
            if (sleeper->events_written() == seen) {
                timespec ts{0, 20000000L};
                nextblock::futex_wait_shared(sleeper->notify_word(), word, &ts);
            }
            const uint64_t woke = nextblock::monotonic_ns();
            for (; seen < sleeper->events_written(); ++seen)
                if (sleeper->read_event(seen, &e) == nextblock::ReadResult::Ok && e.kind == 1
                    && woke > e.time_ns)
                    eventWakeNs.push_back(static_cast<double>(woke - e.time_ns));
        }
    });
    std::vector<int8_t> bits(slot, 7), out(slot);
    std::vector<float> two(2 * frames * chans, 0.25f);
    std::vector<double> readNs, readConcealNs, insertNs, flushNs;
    readNs.reserve(blocks);
    insertNs.reserve(blocks);
    flushNs.reserve(blocks);
    using clk = std::chrono::steady_clock;
    auto ns   = [](clk::time_point a, clk::time_point b) {
        return std::chrono::duration<double, std::nano>(b - a).count();
    };
    const int lead = 3;  // blocks written ahead of the read
    int lostLen    = 0;
    for (int64_t i = 0; i < blocks + lead; ++i) {
        if (i < blocks) {  // receive: the packet (or its loss) arrives
            if (lost(i)) {
                lostLen += slot;
            } else {
                nb->onPacket(static_cast<uint16_t>(i), bits.data(), slot);
                const auto t0 = clk::now();
                buf->insertSlotNonBlocking(bits.data(), slot, lostLen, static_cast<int>(i));
                insertNs.push_back(ns(t0, clk::now()));
                lostLen = 0;
            }
            poster->post_replacement(static_cast<uint64_t>(i), two.data());  // in time for its read
            const uint64_t now = nextblock::monotonic_ns();
            poster->register_missing_wake(now, now + 100000000ULL);
        }
        if (i < lead)
            continue;
        std::this_thread::sleep_for(std::chrono::microseconds(gapUs));  // the sleeper back asleep
        const int64_t concealedBefore =
            poster->header().replacements_used.load() + poster->header().replacements_missed.load();
        const auto t0 = clk::now();
        buf->readSlotNonBlocking(out.data());  // mMutex held throughout
        const auto t1 = clk::now();
        flush(nb, 0);  // after the lock (JackTrip::receiveNetworkPacket)
        const auto t2 = clk::now();
        readNs.push_back(ns(t0, t1));
        flushNs.push_back(ns(t1, t2));
        if (poster->header().replacements_used.load() + poster->header().replacements_missed.load()
            != static_cast<uint64_t>(concealedBefore))
            readConcealNs.push_back(ns(t0, t1));
    }
    stop.store(true);
    nb->onPacket(0, bits.data(), slot);  // wake the sleeper
    sleeping.join();
    const uint64_t used         = poster->header().replacements_used.load();
    const uint64_t wakes        = poster->header().wakes_issued.load();
    const uint64_t missingWakes = poster->missing_wakes_issued();
    std::printf(
        "{\"strategy\": \"%s\", \"frames\": %d, \"channels\": %d, \"blocks\": %d,"
        " \"read_lock_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"read_lock_concealing_ns\": {\"median\": %.0f, \"p99\": %.0f, \"n\": %zu},"
        " \"insert_lock_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"flush_after_lock_ns\": {\"median\": %.0f, \"p99\": %.0f},"
        " \"event_wake_latency_ns\": {\"median\": %.0f, \"p99\": %.0f, \"n\": %zu},"
        " \"replacements_used\": %llu, \"wakes_issued\": %llu, \"missing_wakes_issued\": %llu}\n",
        strategy.c_str(), frames, chans, blocks, q(readNs, 0.5), q(readNs, 0.99), q(readConcealNs, 0.5),
        q(readConcealNs, 0.99), readConcealNs.size(), q(insertNs, 0.5), q(insertNs, 0.99), q(flushNs, 0.5),
        q(flushNs, 0.99), q(eventWakeNs, 0.5), q(eventWakeNs, 0.99), eventWakeNs.size(),
        (unsigned long long)used, (unsigned long long)wakes, (unsigned long long)missingWakes);
    poster.reset();
    sleeper.reset();
    delete buf;
    delete nb;
    return used > 0 ? 0 : 4;
}
