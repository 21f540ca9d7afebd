// NextBlock hooks for JackTrip (part of NextBlock's JackTrip patch, not of JackTrip).
//
// Inactive unless JackTrip was started with --nextblock or with NEXTBLOCK_JACKTRIP=1 in its
// environment: then no bridge exists (JackTrip::nextBlock() is nullptr) and every hook site runs
// JackTrip's stock code unchanged.
//
// When active, every JackTrip instance (a point-to-point JackTrip has one; a hub server one per
// connected client) owns one bridge, created in JackTrip::setupRingBuffers() and deleted by
// ~JackTrip, with its own shared-memory segment (csrc/nextblock/shm_producer.hpp, included from
// NextBlock's repository, never copied): "/nextblock-<PID>" for a point-to-point JackTrip,
// "/nextblock-<PID>-<PORT>" for a hub worker receiving on local UDP port PORT. The segment's
// header names the stream (JACK client name, peer address, port).
//   * network receive thread (UdpDataProtocol): onPacket() publishes every received block as
//     float32 with its unwrapped 64-bit sequence number, arrival time and inter-arrival gap;
//   * audio thread (RingBuffer / Regulator / JitterBuffer read paths): conceal() takes the
//     replacement NextBlock posted for exactly the missing seq and posts one event per
//     underrun / skip / late block with that seq and the outcome (replacement, fallback, or
//     refused: a replacement with a non-finite or out-of-range sample is never played).
// Nothing on those threads allocates, locks, waits or writes to a stream: all buffers are sized
// in create(), the segment is pre-faulted and mlocked by Producer::create(), the shm calls are
// wait-free, and log lines go through lock-free rings that a background thread prints.
// Whatever a consumer writes into the segment, JackTrip plays only finite samples in [-1, 1].
#ifndef NEXTBLOCK_BRIDGE_H
#define NEXTBLOCK_BRIDGE_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace nextblock
{
class Producer;
class SeqUnwrapper;
enum class Take : uint32_t;
}  // namespace nextblock

/// A single-producer single-consumer ring of fixed-size log records: the real-time threads push
/// (wait-free, a full ring drops the record and counts it), a background thread pops and prints.
class NextBlockLogRing
{
   public:
    enum Code : uint32_t {
        ConsumerAttached = 1,
        ConsumerLost,
        PeerBlockMismatch,  // a = bytes received, b = bytes expected
        PeerRestart,        // a = last seq before, b = first seq after
        Refused,            // a = seq, b = refusals so far
        Resized,            // a = old frames per block, b = new (the peer's)
    };
    struct Record {
        uint32_t code;
        int64_t a, b;
    };
    bool push(uint32_t code, int64_t a = 0, int64_t b = 0) noexcept;
    bool pop(Record* out) noexcept;
    uint64_t dropped() const noexcept { return mDropped.load(std::memory_order_relaxed); }

   private:
    static constexpr uint32_t kSize = 64;  // power of two
    Record mRing[kSize]             = {};
    std::atomic<uint32_t> mHead{0}, mTail{0};
    std::atomic<uint64_t> mDropped{0};
};

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
    /// The segment name of a stream: "/nextblock-<PID>", or "/nextblock-<PID>-<port>" with perPort.
    static std::string segmentName(bool perPort, int localPort);
    /// Creates a stream's bridge and segment (not real-time; JackTrip::setupRingBuffers). Logs
    /// and returns nullptr on failure (JackTrip then plays its own concealment only). perPort:
    /// name the segment by localPort (hub workers); bitResBytes: JackTrip's audio bit
    /// resolution (1..4 bytes). Delete it after the threads that use it have stopped: that
    /// removes the segment (unless a newer stream already took its name).
    static NextBlockBridge* create(bool perPort, int localPort, const std::string& streamName,
                                   const std::string& peerAddress, int sampleRate, int framesPerBlock,
                                   int channels, int bitResBytes);

    ~NextBlockBridge();

    /// Frames per block of the segment now: JackTrip's own at first, the peer's once its
    /// packets showed another size (a new segment of the same name is made for them).
    int frames() const { return mStream.load(std::memory_order_acquire)->frames; }
    int channels() const { return mChannels; }
    /// Bytes of one block in JackTrip's bit resolution.
    int blockBytes() const { return frames() * mChannels * mBitRes; }

    // ---- network receive thread ------------------------------------------------------
    /// Publishes one received block (interleaved, JackTrip's bit resolution, `bytes` long).
    /// Returns the unwrapped sequence number.
    int64_t onPacket(uint16_t seq16, const int8_t* interleavedBits, int bytes);
    /// The unwrapped seq of the newest block passed to onPacket (-1 before the first).
    int64_t lastReceived() const { return mLastRx.load(std::memory_order_acquire); }
    /// Maps a sequence number known modulo `modulus` (Regulator slots: 4096, packet: 65536)
    /// to the unwrapped seq nearest to the last received one.
    int64_t unwrap(int64_t seqMod, int64_t modulus) const;

    // ---- audio thread (one thread at a time) -----------------------------------------
    /// JackTrip must play something for missing block `seq`, a block of `frames` frames (the
    /// caller's slot). Tries the replacement posted for exactly `seq`; posts the event. Returns
    /// true if a valid replacement was taken (then replacement(0) is the block to play and
    /// replacement(1) the cross-fade source, `frames` frames each, every sample finite and within
    /// [-1, 1]). Loads the stream once: when its block is not `frames` frames (the segment was
    /// just re-made at the peer's size), nothing is taken and the event says fallback.
    bool conceal(Kind kind, int64_t seq, int frames, int64_t detail = 0);
    /// Posts an event without trying a replacement (Late, Skip of real blocks, stalls).
    void post(Kind kind, int64_t seq, bool fallbackPlayed, int64_t detail = 0);
    /// Block b (0: the missing one, 1: the next) of the last replacement taken, float32
    /// interleaved frames x channels.
    const float* replacement(int b) const
    {
        return mAudioStream->repl.data() + b * mAudioStream->frames * mChannels;
    }
    /// Writes replacement block b into `dst` in JackTrip's bit resolution.
    void replacementToBits(int b, int8_t* dst) const
    {
        replacementFramesToBits(b, 0, mAudioStream->frames, dst);
    }
    /// Writes frames [firstFrame, firstFrame + nFrames) of replacement block b into `dst`.
    void replacementFramesToBits(int b, int firstFrame, int nFrames, int8_t* dst) const;
    /// Cross-fades from replacement block 1 into the real block `bits` (in place), over the
    /// recovery fade of nextblock/shm_layout.hpp (its first samples; the rest stays real).
    /// A sample where block 1 equals the real one stays as it came: after a two-sided
    /// replacement (block 1 is the packet that arrived) the splice is an identity.
    void crossfadeFromReplacement(int8_t* bits) const;
    /// The same for one frame (`frame` of the block, `bits` pointing at that frame).
    void crossfadeFrameFromReplacement(int frame, int8_t* bits) const;
    /// The same for frames [firstFrame, firstFrame + nFrames) (`bits` pointing at firstFrame);
    /// touches only those within the fade.
    void crossfadeFramesFromReplacement(int firstFrame, int nFrames, int8_t* bits) const;
    /// The play-out clock: block `seq` (real or concealed) plays now, `queuedBlocks` later
    /// blocks are already received. Called at every pull. Monotonic through short replays.
    /// A callback that plays several of the peer's blocks back to back (the Regulator with a
    /// peer block size below the local one) calls it for each: `pullBlocks` it plays,
    /// `pullLeft` of them after `seq` (Producer::note_playout).
    void playout(int64_t seq, int64_t queuedBlocks, uint32_t pullBlocks = 1, uint32_t pullLeft = 0);
    /// Audio thread, outside JackTrip's buffer lock (JackTrip::receiveNetworkPacket, after the
    /// read): issues the FUTEX_WAKEs that the hooks run under that lock deferred. Nothing when
    /// none is pending (one load); at most one syscall per futex word. Then, after deferWakes()
    /// (a buffer whose read and hooks run on this thread under its lock), stages the next
    /// block's replacement: the copy, the check and the conversion to bits that conceal() and
    /// replacementFramesToBits() would do under the lock are done here, for the block after the
    /// one the play-out clock last reported, if one is posted (two loads when none is). Under
    /// the lock conceal() then takes the staged copy with two loads and a buffer swap when the
    /// slot is unchanged since (the same samples a take there would copy), else takes as before.
    void flushWakes();
    /// The seq whose replacement flushWakes() staged (-1: none); for the self-checks.
    int64_t stagedSeq() const { return mStagedSeq; }

    /// Not real-time (enableNextBlock of a buffer whose read path holds its QMutex): the audio
    /// thread's hooks leave their FUTEX_WAKE to flushWakes() from now on, also on a segment
    /// re-made later.
    void deferWakes();

   private:
    /// Everything sized by the stream's block size. Replaced as a whole (by the service
    /// thread) when the peer's packets have another size; retired ones live until the bridge.
    struct Stream {
        std::unique_ptr<nextblock::Producer> producer;
        int frames = 0;
        std::vector<float> rxFloat;      // receive thread: one block as float
        std::vector<float> repl;         // audio thread: the last replacement taken
        std::vector<int8_t> replBits;    // audio thread: its block 0 in bits (when mReplBitsValid)
        std::vector<float> staged;       // audio thread: flushWakes()' copy of the next replacement
        std::vector<int8_t> stagedBits;  // audio thread: its block 0 in bits
        std::vector<float> fadeUp;       // the recovery fade's weights of real audio (its frames only)
    };

    NextBlockBridge();
    Stream* makeStream(int frames, std::string* why) const;  // not real-time
    void checkConsumer(uint64_t nowNs);                      // receive thread: logs consumer loss once
    void stageNext(Stream* st);                              // audio thread, outside the lock (flushWakes)
    nextblock::Take takeStaged(Stream* st, int64_t seq);     // audio thread: conceal()'s take
    void drainLogs();                                        // service thread
    void serviceLoop();                                      // service thread: logs, re-sizes the segment

    static bool sRequested;

    // set once in create()
    std::string mSegmentName, mStreamName, mPeerAddress;
    int mLocalPort = 0, mSampleRate = 0, mChannels = 0, mBitRes = 2;
    std::atomic<Stream*> mStream{nullptr};      // the current one
    std::vector<std::unique_ptr<Stream>> mAll;  // every one made (service thread appends)
    std::atomic<int> mWantFrames{0};            // receive thread -> service thread
    std::atomic<bool> mDeferWakes{false};       // deferWakes() -> service thread (makeStream)
    // receive thread
    std::unique_ptr<nextblock::SeqUnwrapper> mUnwrapper;
    int mRequestedFrames = 0;
    std::atomic<int64_t> mLastRx{-1};
    uint64_t mLastArrivalNs     = 0;
    uint64_t mPacketsSinceCheck = 0;
    bool mConsumerWasAlive      = false;
    bool mSizeMismatchLogged    = false;
    std::atomic<bool> mConsumerLostPending{false};
    NextBlockLogRing mRxLog;
    // audio thread
    Stream* mAudioStream    = nullptr;  // the stream of the last conceal() (replacement() reads it)
    int64_t mPlayoutSeq     = -1;       // the newest seq the play-out clock reported
    Stream* mStagedStream   = nullptr;  // the stream, seq and slot version of the staged copy
    int64_t mStagedSeq      = -1;       // (-1: none staged)
    uint64_t mStagedVersion = 0;
    bool mStagedPlayable    = false;
    bool mReplBitsValid     = false;  // repl's block 0 is in replBits (taken from the staged copy)
    uint64_t mRefused       = 0;
    NextBlockLogRing mAudioLog;
    // log thread
    std::atomic<bool> mStopLog{false};
    std::thread mLogThread;
};

#endif
