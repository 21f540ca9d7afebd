// NextBlock hooks for JackTrip (part of NextBlock's JackTrip patch, not of JackTrip).
//
// Inactive unless JackTrip was started with --nextblock or with NEXTBLOCK_JACKTRIP=1 in its
// environment: then NextBlockBridge::get() returns nullptr and every hook site runs JackTrip's
// stock code unchanged.
//
// When active, JackTrip::setupRingBuffers() creates the shared-memory segment "/nextblock-<PID>"
// (csrc/nextblock/shm_protocol.hpp, included from NextBlock's repository, never copied).
//   * network receive thread (UdpDataProtocol): onPacket() publishes every received block as
//     float32 with its unwrapped 64-bit sequence number, arrival time and inter-arrival gap;
//   * audio thread (RingBuffer / Regulator / JitterBuffer read paths): conceal() takes the
//     replacement NextBlock posted for exactly the missing seq and posts one event per
//     underrun / skip / late block with that seq and the outcome (replacement or fallback).
// Nothing on those threads allocates, locks or waits: all buffers are sized in start(), the
// segment is pre-faulted and mlocked by Producer::create(), the shm calls are wait-free.
#ifndef NEXTBLOCK_BRIDGE_H
#define NEXTBLOCK_BRIDGE_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace nextblock
{
class Producer;
}

class NextBlockBridge
{
   public:
    // Mirrors nextblock::EventKind (kept here so JackTrip's headers need not include shm).
    enum Kind { Underrun = 1, Skip = 2, Late = 3, Overflow = 4 };
    // Event detail flags.
    enum Detail { DetailStalled = 1 };

    /// --nextblock on the command line (Settings.cpp).
    static void requestFromCommandLine();
    /// --nextblock given or NEXTBLOCK_JACKTRIP set to something other than "" / "0".
    static bool requested();
    /// The active bridge, or nullptr (feature off / segment could not be created).
    static NextBlockBridge* get() { return sInstance.load(std::memory_order_acquire); }
    /// Creates the segment (not real-time; JackTrip::setupRingBuffers). Logs and stays
    /// disabled on failure. bitResBytes: JackTrip's audio bit resolution (1..4 bytes).
    static void start(int sampleRate, int framesPerBlock, int channels, int bitResBytes);
    /// Removes the segment (JackTrip's destructor, after audio and network threads stopped).
    static void shutdown();

    int frames() const { return mFrames; }
    int channels() const { return mChannels; }
    /// Bytes of one block in JackTrip's bit resolution.
    int blockBytes() const { return mFrames * mChannels * mBitRes; }

    // ---- network receive thread ------------------------------------------------------
    /// Publishes one received block (interleaved, JackTrip's bit resolution, `bytes` long).
    /// Returns the unwrapped sequence number.
    int64_t onPacket(uint16_t seq16, const int8_t* interleavedBits, int bytes);
    /// The unwrapped seq of the last block passed to onPacket (-1 before the first).
    int64_t lastReceived() const { return mLastRx.load(std::memory_order_acquire); }
    /// Maps a sequence number known modulo `modulus` (Regulator slots: 4096, packet: 65536)
    /// to the unwrapped seq nearest to the last received one.
    int64_t unwrap(int64_t seqMod, int64_t modulus) const;

    // ---- audio thread (one thread at a time) -----------------------------------------
    /// JackTrip must play something for missing block `seq`. Tries the replacement posted
    /// for exactly `seq`; posts the event. Returns true if a replacement was taken (then
    /// replacement(0) is the block to play and replacement(1) the cross-fade source).
    bool conceal(Kind kind, int64_t seq, int64_t detail = 0);
    /// Posts an event without trying a replacement (Late, Skip of real blocks, stalls).
    void post(Kind kind, int64_t seq, bool fallbackPlayed, int64_t detail = 0);
    /// Block b (0: the missing one, 1: the next) of the last replacement taken, float32
    /// interleaved frames x channels.
    const float* replacement(int b) const { return mRepl.data() + b * mFrames * mChannels; }
    /// Writes replacement block b into `dst` in JackTrip's bit resolution.
    void replacementToBits(int b, int8_t* dst) const;
    /// Cross-fades from replacement block 1 into the real block `bits` (in place).
    void crossfadeFromReplacement(int8_t* bits) const;

   private:
    NextBlockBridge() = default;
    void checkConsumer(uint64_t nowNs);  // receive thread: logs consumer loss once

    static std::atomic<NextBlockBridge*> sInstance;
    static bool sRequested;

    std::unique_ptr<nextblock::Producer> mProducer;
    int mFrames = 0, mChannels = 0, mBitRes = 2;
    // receive thread
    std::vector<float> mRxFloat;
    std::atomic<int64_t> mLastRx{-1};
    uint64_t mLastArrivalNs = 0;
    uint64_t mPacketsSinceCheck = 0;
    bool mConsumerWasAlive = false;
    bool mSizeMismatchLogged = false;
    std::atomic<bool> mConsumerLostPending{false};
    // audio thread
    std::vector<float> mRepl;
};

#endif
