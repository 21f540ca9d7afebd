// NextBlock's JackTrip bridge on JackTrip's threads, for ThreadSanitizer (and ASan/UBSan):
// tests/test_jacktrip_bridge.py builds it with -fsanitize=thread and with -fsanitize=address,
// undefined and runs it once per buffer strategy.
//
//   bridge_threads STRATEGY [FRAMES] [CHANNELS] [BLOCKS]     STRATEGY: regulator | jitterbuffer | ringbuffer
//
// Three threads of one process, as in a patched JackTrip, plus a consumer process:
//   * receive thread: onPacket() for every packet that arrives (5 % are lost, by a hash of the
//     seq), then what the buffer's insert does with the bridge under its lock (lastReceived());
//     at 60 % of the run the peer switches to twice the block size (the service thread re-makes
//     the segment while the other threads run);
//   * audio thread: per block, the bridge calls the patch makes for that strategy
//     (jacktrip-2.7.2-nextblock.patch): Regulator (no lock): unwrap / Late / frames() check /
//     conceal / replacement() read by burg / playout; JitterBuffer and ring buffer (under the
//     buffer's lock, a std::mutex here standing for the QMutex): conceal / replacement to bits
//     (frame by frame or the whole slot) / cross-fade back / Overflow / Late / playout, then
//     flushWakes() after the lock is released, as JackTrip::receiveNetworkPacket does;
//   * the bridge's own service thread (logs, the re-made segment);
//   * consumer (a forked process, like nextblock attach): attaches (and re-attaches to the re-made
//     segment), sleeps in wait_for_blocks and on the missing-block word (so that both real-time
//     threads issue FUTEX_WAKEs), reads every block and event, posts replacements ahead.
// Prints one JSON object; exit 0 when replacements were taken and wakes were issued on both paths.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "NextBlockBridge.h"
#include "nextblock/shm_consumer.hpp"
#include "nextblock/shm_producer.hpp"

namespace
{
bool lost(int64_t seq)
{
    return ((static_cast<uint64_t>(seq) * 2654435761u) >> 8) % 20 == 0;
}

// The consumer process: serves every segment made under `name` until `stop_fd` closes.
int consumerMain(const std::string& name, int stop_fd)
{
    uint64_t blocks = 0, events = 0, posted = 0, attaches = 0, wakes = 0, missing_wakes = 0;
    auto stopped = [stop_fd] {
        char c;
        return read(stop_fd, &c, 1) == 0;  // the parent closed its end (non-blocking fd)
    };
    while (!stopped()) {
        std::string why;
        auto c = nextblock::Consumer::attach(name, true, &why);
        if (!c) {
            usleep(2000);
            continue;
        }
        ++attaches;
        c->set_missing_lookahead(1);
        const uint32_t frames = c->config().frames_per_block, chans = c->config().channels;
        std::vector<float> block(frames * chans), two(2 * frames * chans, 0.125f);
        uint64_t next = c->blocks_written(), nextEvent = c->events_written(), round = 0;
        while (!c->producer_closed() && !stopped()) {
            if (++round % 4 == 0) {  // sleep on the missing-block word now and then (audio thread's wake)
                const uint64_t now = nextblock::monotonic_ns();
                c->register_missing_wake(now, now + 20000000ULL);
                const uint32_t word = c->missing_word()->load(std::memory_order_seq_cst);
                timespec ts{0, 20000000L};
                nextblock::futex_wait_shared(c->missing_word(), word, &ts);
            }
            const uint64_t written = c->wait_for_blocks(next, 20000000ULL);  // the receive thread's wake
            for (; next < written; ++next) {
                uint64_t seq = 0;
                if (c->read_block(next, &seq, nullptr, nullptr, block.data()) == nextblock::ReadResult::Ok)
                    ++blocks;
            }
            if (written > 0) {
                uint64_t newest = 0;
                c->read_block(written - 1, &newest, nullptr, nullptr, block.data());
                for (uint64_t s = newest + 1; s <= newest + 3; ++s, ++posted)
                    c->post_replacement(s, two.data());
            }
            nextblock::EventSlot e{};
            for (; nextEvent < c->events_written(); ++nextEvent)
                if (c->read_event(nextEvent, &e) == nextblock::ReadResult::Ok)
                    ++events;
            c->heartbeat();
        }
        wakes += c->header().wakes_issued.load(std::memory_order_relaxed);
        missing_wakes += c->missing_wakes_issued();
    }
    std::printf(
        "consumer: %llu attaches, %llu blocks, %llu events, %llu posted, %llu wakes, %llu missing wakes\n",
        (unsigned long long)attaches, (unsigned long long)blocks, (unsigned long long)events,
        (unsigned long long)posted, (unsigned long long)wakes, (unsigned long long)missing_wakes);
    std::fflush(stdout);  // the caller _exits
    return attaches > 0 && blocks > 0 ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(
            stderr, "usage: bridge_threads regulator|jitterbuffer|ringbuffer [FRAMES] [CHANNELS] [BLOCKS]\n");
        return 2;
    }
    const std::string strategy = argv[1];
    if (strategy != "regulator" && strategy != "jitterbuffer" && strategy != "ringbuffer") {
        std::fprintf(stderr, "unknown strategy %s\n", strategy.c_str());
        return 2;
    }
    const int frames       = argc > 2 ? std::atoi(argv[2]) : 128;
    const int chans        = argc > 3 ? std::atoi(argv[3]) : 2;
    const int blocks       = argc > 4 ? std::atoi(argv[4]) : 3000;
    const int bitRes       = 2;
    const std::string name = NextBlockBridge::segmentName(false, 0);

    // the consumer first: fork before any thread exists
    int stop[2];
    if (pipe(stop) != 0)
        return 2;
    const pid_t child = fork();
    if (child == 0) {
        close(stop[1]);
        fcntl(stop[0], F_SETFL, O_NONBLOCK);
        _exit(consumerMain(name, stop[0]));
    }
    close(stop[0]);

    NextBlockBridge* nb =
        NextBlockBridge::create(false, 0, "threads", "127.0.0.1", 48000, frames, chans, bitRes);
    if (nb == nullptr)
        return 3;
    const bool locked = strategy != "regulator";  // the Regulator's hooks run without a lock
    if (locked)
        nb->deferWakes();   // as RingBuffer / JitterBuffer::enableNextBlock do
    std::mutex bufferLock;  // JackTrip's RingBuffer::mMutex
    std::atomic<int64_t> rxUpTo{-1};
    std::atomic<int> peerFrames{frames};
    const int switchAt = blocks * 6 / 10;

    std::thread receive([&] {
        std::vector<int8_t> bits(2 * frames * chans * bitRes, 3);
        for (int64_t seq = 0; seq < blocks; ++seq) {
            const int f = seq < switchAt ? frames : 2 * frames;
            peerFrames.store(f, std::memory_order_release);
            if (!lost(seq)) {
                nb->onPacket(static_cast<uint16_t>(seq), bits.data(), f * chans * bitRes);
                if (locked) {  // the buffer's insertSlotNonBlocking, under its lock
                    std::lock_guard<std::mutex> g(bufferLock);
                    volatile int64_t s = nb->lastReceived();
                    (void)s;
                }
            }
            rxUpTo.store(seq, std::memory_order_release);
            std::this_thread::sleep_for(std::chrono::microseconds(150));
        }
    });

    uint64_t concealed = 0, taken = 0;
    std::thread audio([&] {
        std::vector<int8_t> slot(frames * chans * bitRes);  // the buffer's slot: JackTrip's own block size
        std::vector<float> burgIn(2 * 2 * frames * chans);
        bool fadePending      = false;
        int64_t lastConcealed = -1;
        for (int64_t seq = 0; seq < blocks; ++seq) {
            while (rxUpTo.load(std::memory_order_acquire) < seq + 2 && rxUpTo.load() < blocks - 1)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            if (strategy == "regulator") {  // Regulator::nbBeforeBurg + burg()
                const int peer = peerFrames.load(std::memory_order_acquire);  // mPeerFPP
                if (!lost(seq)) {
                    const int64_t s = nb->unwrap(seq % 4096, 4096);
                    if (lastConcealed >= 0 && s <= lastConcealed)
                        nb->post(NextBlockBridge::Late, s, false);
                    nb->playout(s, 2);
                    continue;
                }
                ++concealed;
                if (nb->frames() == peer && nb->channels() == chans) {
                    if (nb->conceal(NextBlockBridge::Underrun, seq, peer)) {
                        ++taken;
                        const float* r = nb->replacement(0);  // burg() reads both blocks
                        std::memcpy(burgIn.data(), r, sizeof(float) * 2 * peer * chans);
                    }
                } else {
                    nb->post(NextBlockBridge::Underrun, seq, true);
                }
                lastConcealed = seq;
                nb->playout(seq, 2);
                continue;
            }
            {
                std::lock_guard<std::mutex> g(bufferLock);  // readSlotNonBlocking
                if (seq % 500 == 499)
                    nb->post(NextBlockBridge::Overflow, seq, false, 3);
                if (lost(seq)) {
                    ++concealed;
                    const bool ok = nb->conceal(NextBlockBridge::Underrun, seq, frames);
                    taken += ok;
                    if (ok && strategy == "jitterbuffer") {  // nbConcealFrame
                        nb->replacementFramesToBits(0, 0, frames, slot.data());
                    } else if (ok) {  // RingBuffer::nbReadHole
                        nb->replacementToBits(0, slot.data());
                    }
                    fadePending   = ok;
                    lastConcealed = seq;
                } else {
                    if (fadePending && strategy == "jitterbuffer") {
                        for (int f = 0; f < frames; ++f)
                            nb->crossfadeFrameFromReplacement(f, slot.data() + f * chans * bitRes);
                    } else if (fadePending) {
                        nb->crossfadeFromReplacement(slot.data());
                    }
                    fadePending = false;
                    if (lastConcealed >= 0 && seq <= lastConcealed)
                        nb->post(NextBlockBridge::Late, seq, false);
                }
                nb->playout(seq, 2);
            }
            nb->flushWakes();  // JackTrip::receiveNetworkPacket, the lock released
        }
    });

    receive.join();
    audio.join();
    const int finalFrames = nb->frames();
    delete nb;  // joins the service thread, closes and removes the segment
    close(stop[1]);
    int status = 0;
    waitpid(child, &status, 0);
    std::fflush(stdout);
    std::printf(
        "{\"strategy\": \"%s\", \"frames\": %d, \"channels\": %d, \"blocks\": %d, \"concealed\": %llu,"
        " \"replacements_taken\": %llu, \"final_frames\": %d, \"consumer_exit\": %d}\n",
        strategy.c_str(), frames, chans, blocks, (unsigned long long)concealed, (unsigned long long)taken,
        finalFrames, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 4;
    if (taken == 0 || finalFrames != 2 * frames)
        return 5;
    return 0;
}
