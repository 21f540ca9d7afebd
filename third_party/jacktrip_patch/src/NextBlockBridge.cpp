// NextBlock hooks for JackTrip: see NextBlockBridge.h.
#include "NextBlockBridge.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "AudioInterface.h"
#include "nextblock/shm_producer.hpp"  // from NextBlock's repository (-I<repo>/csrc)

bool NextBlockBridge::sRequested = false;

namespace
{
// Checked once per this many received blocks (~0.7 s at 128 frames / 48 kHz).
constexpr uint64_t kConsumerCheckEvery = 256;
// How often the log thread prints what the real-time threads recorded.
constexpr auto kLogPeriod = std::chrono::milliseconds(50);

inline AudioInterface::audioBitResolutionT bitRes(int bytes)
{
    return static_cast<AudioInterface::audioBitResolutionT>(bytes);
}

inline float clampUnit(float v)
{
    return v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
}

// JackTrip's float -> 16-bit conversion (AudioInterface::fromSampleToBitConversion, BIT16: round
// half away from zero of x * 32767, within +-32767) for a sample in [-1, 1], inline: a block
// converts in one pass instead of one out-of-line call (and std::round) per sample, inside the
// buffer's lock. Bit-identical: x * 32767 is exact in double (24 + 15 significant bits), and so is
// adding +-0.5 to it (below 2^15, at most 40 bits), so truncating that rounds as std::round does.
inline int16_t toBit16(float unit)
{
    const double t = static_cast<double>(unit) * 32767.0;
    return static_cast<int16_t>(t >= 0.0 ? t + 0.5 : t - 0.5);
}

// One sample in [-1, 1] to JackTrip's bits, and back: inline for 16 bits (exactly as JackTrip's
// AudioInterface converters), theirs otherwise.
inline void unitToBits(float unit, int8_t* dst, AudioInterface::audioBitResolutionT res)
{
    if (res == AudioInterface::BIT16) {
        const int16_t v = toBit16(unit);
        std::memcpy(dst, &v, 2);
    } else {
        AudioInterface::fromSampleToBitConversion(&unit, dst, res);
    }
}

inline float bitsToSample(const int8_t* src, AudioInterface::audioBitResolutionT res)
{
    float v = 0.0f;
    if (res == AudioInterface::BIT16) {
        int16_t b;
        std::memcpy(&b, src, 2);
        v = static_cast<float>(b) / 32768.0f;  // exact, as JackTrip's
    } else {
        AudioInterface::fromBitToSampleConversion(src, &v, res);
    }
    return v;
}

// 1, 10, 100, ...: refusals worth a log line
inline bool powerOfTen(uint64_t n)
{
    while (n >= 10 && n % 10 == 0)
        n /= 10;
    return n == 1;
}
}  // namespace

//*******************************************************************************
// lock-free log ring (one pushing thread, the log thread pops)

bool NextBlockLogRing::push(uint32_t code, int64_t a, int64_t b) noexcept
{
    const uint32_t head = mHead.load(std::memory_order_relaxed);
    if (head - mTail.load(std::memory_order_acquire) >= kSize) {
        mDropped.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    mRing[head & (kSize - 1)] = Record{code, a, b};
    mHead.store(head + 1, std::memory_order_release);
    return true;
}

bool NextBlockLogRing::pop(Record* out) noexcept
{
    const uint32_t tail = mTail.load(std::memory_order_relaxed);
    if (tail == mHead.load(std::memory_order_acquire))
        return false;
    *out = mRing[tail & (kSize - 1)];
    mTail.store(tail + 1, std::memory_order_release);
    return true;
}

//*******************************************************************************
// set-up and shutdown (not real-time)

void NextBlockBridge::requestFromCommandLine()
{
    sRequested = true;
}

bool NextBlockBridge::requested()
{
    if (sRequested)
        return true;
    const char* env = std::getenv("NEXTBLOCK_JACKTRIP");
    return env != nullptr && env[0] != '\0' && std::strcmp(env, "0") != 0;
}

NextBlockBridge::NextBlockBridge() : mUnwrapper(new nextblock::SeqUnwrapper()) {}

NextBlockBridge::~NextBlockBridge()
{
    mStopLog.store(true, std::memory_order_release);
    if (mLogThread.joinable())
        mLogThread.join();
    drainLogs();
    // ~Producer marks the segment closed and shm_unlinks it
}

std::string NextBlockBridge::segmentName(bool perPort, int localPort)
{
    return perPort ? nextblock::segment_name_for_stream(getpid(), static_cast<unsigned>(localPort))
                   : nextblock::segment_name_for_pid(getpid());
}

NextBlockBridge::Stream* NextBlockBridge::makeStream(int frames, std::string* why) const
{
    nextblock::SegmentConfig cfg;
    cfg.sample_rate_hz   = static_cast<uint32_t>(mSampleRate);
    cfg.frames_per_block = static_cast<uint32_t>(frames);
    cfg.channels         = static_cast<uint32_t>(mChannels);
    nextblock::StreamIdentity identity{mStreamName, mPeerAddress,
                                       static_cast<uint32_t>(mLocalPort > 0 ? mLocalPort : 0)};
    std::unique_ptr<nextblock::Producer> producer =
        nextblock::Producer::create(mSegmentName, cfg, why, nullptr, &identity);
    if (!producer)
        return nullptr;
    auto* st     = new Stream();
    st->producer = std::move(producer);
    st->producer->defer_wakes(mDeferWakes.load(std::memory_order_acquire));
    st->frames = frames;
    st->rxFloat.assign(static_cast<size_t>(frames) * mChannels, 0.0f);
    st->repl.assign(2 * static_cast<size_t>(frames) * mChannels, 0.0f);
    st->staged.assign(st->repl.size(), 0.0f);
    st->replBits.assign(static_cast<size_t>(frames) * mChannels * mBitRes, 0);
    st->stagedBits.assign(st->replBits.size(), 0);
    const uint32_t fade =
        nextblock::recovery_fade_samples(static_cast<uint32_t>(mSampleRate), static_cast<uint32_t>(frames));
    for (uint32_t f = 0; f < fade; ++f)
        st->fadeUp.push_back(nextblock::recovery_fade_in(f, fade));
    return st;
}

NextBlockBridge* NextBlockBridge::create(bool perPort, int localPort, const std::string& streamName,
                                         const std::string& peerAddress, int sampleRate, int framesPerBlock,
                                         int channels, int bitResBytes)
{
    if (bitResBytes < 1 || bitResBytes > 4) {
        std::cerr << "NextBlock: unsupported bit resolution " << bitResBytes << " bytes; disabled"
                  << std::endl;
        return nullptr;
    }
    std::unique_ptr<NextBlockBridge> b(new NextBlockBridge());
    b->mSegmentName = segmentName(perPort, localPort);
    b->mStreamName  = streamName;
    b->mPeerAddress = peerAddress;
    b->mLocalPort   = localPort;
    b->mSampleRate  = sampleRate;
    b->mChannels    = channels;
    b->mBitRes      = bitResBytes;
    std::string err;
    Stream* st = b->makeStream(framesPerBlock, &err);
    if (st == nullptr) {
        std::cerr << "NextBlock: cannot create shared memory " << b->mSegmentName << ": " << err
                  << "; running with JackTrip's own concealment only" << std::endl;
        return nullptr;
    }
    b->mAll.emplace_back(st);
    b->mStream.store(st, std::memory_order_release);
    b->mAudioStream      = st;
    NextBlockBridge* raw = b.get();
    b->mLogThread        = std::thread([raw] {
        raw->serviceLoop();
    });
    std::cout << "NextBlock: publishing to shared memory " << b->mSegmentName << " (" << sampleRate << " Hz, "
              << framesPerBlock << " frames, " << channels << " channels"
              << (streamName.empty() ? "" : ", stream " + streamName)
              << (peerAddress.empty() ? "" : ", peer " + peerAddress) << ")" << std::endl;
    return b.release();
}

void NextBlockBridge::serviceLoop()
{
    while (!mStopLog.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(kLogPeriod);
        const int want = mWantFrames.exchange(0, std::memory_order_acq_rel);
        Stream* cur    = mStream.load(std::memory_order_acquire);
        if (want > 0 && want != cur->frames) {
            // the peer's block size: a new segment of the same name (consumers re-attach)
            std::string err;
            Stream* st = makeStream(want, &err);
            if (st == nullptr) {
                std::cerr << "NextBlock: cannot re-create " << mSegmentName << " for the peer's " << want
                          << " frames: " << err << std::endl;
            } else {
                mAll.emplace_back(st);
                cur->producer->mark_closed();
                mStream.store(st, std::memory_order_release);
                std::cout << "NextBlock: the peer sends " << want << " frames per block (JackTrip "
                          << cur->frames << "); " << mSegmentName << " now has the peer's blocks"
                          << std::endl;
            }
        }
        drainLogs();
    }
}

void NextBlockBridge::drainLogs()
{
    NextBlockLogRing::Record r{};
    for (NextBlockLogRing* ring : {&mRxLog, &mAudioLog}) {
        while (ring->pop(&r)) {
            switch (r.code) {
            case NextBlockLogRing::ConsumerAttached:
                std::cout << "NextBlock: consumer attached" << std::endl;
                break;
            case NextBlockLogRing::ConsumerLost:
                std::cerr << "NextBlock: consumer stopped posting replacements; JackTrip's own "
                             "concealment plays until it returns"
                          << std::endl;
                break;
            case NextBlockLogRing::PeerBlockMismatch:
                std::cerr << "NextBlock: peer block of " << r.a << " bytes is not " << r.b << " bytes x "
                          << mChannels << " channels x " << mBitRes << " bytes; blocks are not published"
                          << std::endl;
                break;
            case NextBlockLogRing::PeerRestart:
                std::cerr << "NextBlock: peer's sequence numbers jumped back (restart?); "
                             "continuing from seq "
                          << r.b << " after " << r.a << std::endl;
                break;
            case NextBlockLogRing::Refused:
                std::cerr << "NextBlock: refused replacement for seq " << r.a
                          << " (non-finite or out-of-range samples; " << r.b
                          << " refused so far); JackTrip's own concealment played" << std::endl;
                break;
            default:
                break;
            }
        }
    }
}

//*******************************************************************************
// network receive thread

int64_t NextBlockBridge::onPacket(uint16_t seq16, const int8_t* interleavedBits, int bytes)
{
    const int64_t last    = mUnwrapper->last();
    const uint64_t before = mUnwrapper->restarts();
    const int64_t seq     = mUnwrapper->next(seq16);
    if (mUnwrapper->restarts() != before)
        mRxLog.push(NextBlockLogRing::PeerRestart, last, seq);
    const uint64_t now = nextblock::monotonic_ns();
    const uint64_t gap = mLastArrivalNs ? now - mLastArrivalNs : 0;
    mLastArrivalNs     = now;

    Stream* st  = mStream.load(std::memory_order_acquire);
    const int n = st->frames * mChannels;
    if (bytes == n * mBitRes) {
        const auto res = bitRes(mBitRes);
        for (int i = 0; i < n; ++i)
            AudioInterface::fromBitToSampleConversion(interleavedBits + i * mBitRes, &st->rxFloat[i], res);
        st->producer->publish_block(static_cast<uint64_t>(seq), st->rxFloat.data(), now, gap);
    } else if (bytes > 0 && bytes % (mChannels * mBitRes) == 0) {
        // the peer's block size differs: the service thread makes a segment of its size
        const int peerFrames = bytes / (mChannels * mBitRes);
        if (peerFrames != mRequestedFrames && peerFrames <= 8192) {
            mRequestedFrames = peerFrames;
            mWantFrames.store(peerFrames, std::memory_order_release);
        }
    } else if (!mSizeMismatchLogged) {
        mSizeMismatchLogged = true;
        mRxLog.push(NextBlockLogRing::PeerBlockMismatch, bytes, st->frames);
    }
    mLastRx.store(mUnwrapper->last(), std::memory_order_release);
    if (++mPacketsSinceCheck >= kConsumerCheckEvery) {
        mPacketsSinceCheck = 0;
        checkConsumer(now);
    }
    return seq;
}

void NextBlockBridge::checkConsumer(uint64_t nowNs)
{
    const bool alive = mStream.load(std::memory_order_acquire)->producer->consumer_alive(nowNs);
    if (mConsumerWasAlive && !alive) {
        mRxLog.push(NextBlockLogRing::ConsumerLost);
        mConsumerLostPending.store(true, std::memory_order_release);
    } else if (!mConsumerWasAlive && alive) {
        mRxLog.push(NextBlockLogRing::ConsumerAttached);
    }
    mConsumerWasAlive = alive;
}

int64_t NextBlockBridge::unwrap(int64_t seqMod, int64_t modulus) const
{
    const int64_t ref = mLastRx.load(std::memory_order_acquire);
    if (ref < 0)
        return seqMod;
    int64_t d = (seqMod - ref % modulus) % modulus;
    if (d < 0)
        d += modulus;
    if (d > modulus / 2)
        d -= modulus;
    const int64_t s = ref + d;
    return s < 0 ? s + modulus : s;
}

//*******************************************************************************
// audio thread

bool NextBlockBridge::conceal(Kind kind, int64_t seq, int frames, int64_t detail)
{
    Stream* st   = mStream.load(std::memory_order_acquire);  // once: the caller's block is checked against it
    mAudioStream = st;
    if (mConsumerLostPending.exchange(false, std::memory_order_acq_rel))
        st->producer->post_event(nextblock::EventKind::ConsumerLost, static_cast<uint64_t>(seq),
                                 nextblock::Outcome::None);
    const nextblock::Take t =
        seq >= 0 && st->frames == frames ? takeStaged(st, seq) : nextblock::Take::Missing;
    nextblock::Outcome outcome = nextblock::Outcome::Fallback;
    if (t == nextblock::Take::Taken) {
        outcome = nextblock::Outcome::Replacement;
    } else if (t == nextblock::Take::Refused) {
        outcome = nextblock::Outcome::Refused;
        if (powerOfTen(++mRefused))
            mAudioLog.push(NextBlockLogRing::Refused, seq, static_cast<int64_t>(mRefused));
    }
    st->producer->post_event(static_cast<nextblock::EventKind>(kind), static_cast<uint64_t>(seq), outcome,
                             detail);
    return t == nextblock::Take::Taken;
}

nextblock::Take NextBlockBridge::takeStaged(Stream* st, int64_t seq)
{
    if (mStagedStream == st && mStagedSeq == seq) {
        mStagedSeq = -1;
        const nextblock::Take t =
            st->producer->take_peeked(static_cast<uint64_t>(seq), mStagedVersion, mStagedPlayable);
        if (t == nextblock::Take::Taken) {
            st->repl.swap(st->staged);  // no copy, no allocation: the buffers trade places
            st->replBits.swap(st->stagedBits);
            mReplBitsValid = true;
            return t;
        }
        if (t == nextblock::Take::Refused)
            return t;
        // the slot changed since the copy: take it as it is now
    }
    mReplBitsValid = false;
    return st->producer->take_replacement(static_cast<uint64_t>(seq), st->repl.data());
}

void NextBlockBridge::stageNext(Stream* st)
{
    if (mPlayoutSeq < 0)
        return;
    const int64_t seq = mPlayoutSeq + 1;
    if (mStagedStream == st && mStagedSeq == seq)
        return;  // staged already (a change since is caught by take_peeked)
    mStagedSeq    = -1;
    mStagedStream = st;
    bool playable = false;
    const uint64_t v =
        st->producer->peek_replacement(static_cast<uint64_t>(seq), st->staged.data(), &playable);
    if (v == 0)
        return;
    if (playable) {  // block 0 in bits, as replacementFramesToBits() would write it
        const int n    = st->frames * mChannels;
        const auto res = bitRes(mBitRes);
        for (int i = 0; i < n; ++i)
            unitToBits(clampUnit(st->staged[static_cast<size_t>(i)]), st->stagedBits.data() + i * mBitRes,
                       res);
    }
    mStagedVersion  = v;
    mStagedPlayable = playable;
    mStagedSeq      = seq;
}

void NextBlockBridge::post(Kind kind, int64_t seq, bool fallbackPlayed, int64_t detail)
{
    mStream.load(std::memory_order_acquire)
        ->producer->post_event(static_cast<nextblock::EventKind>(kind), static_cast<uint64_t>(seq),
                               fallbackPlayed ? nextblock::Outcome::Fallback : nextblock::Outcome::None,
                               detail);
}

void NextBlockBridge::playout(int64_t seq, int64_t queuedBlocks, uint32_t pullBlocks, uint32_t pullLeft)
{
    if (seq < 0)
        return;
    // A block that came late plays after its concealment, and the buffer's seqs step back for a
    // while. The clock stays at the newest seq played instead: consumers then expect later blocks
    // a little early, never late, and see no clock jump.
    if (seq < mPlayoutSeq && mPlayoutSeq - seq <= nextblock::SeqUnwrapper::kMaxReorder)
        seq = mPlayoutSeq;
    mPlayoutSeq = seq;
    mStream.load(std::memory_order_acquire)
        ->producer->note_playout(static_cast<uint64_t>(seq), nextblock::monotonic_ns(), queuedBlocks,
                                 pullBlocks, pullLeft);
}

void NextBlockBridge::flushWakes()
{
    Stream* st = mStream.load(std::memory_order_acquire);
    st->producer->flush_wakes();
    // only where the hooks run under a lock (deferWakes: the JitterBuffer, the ring buffer), whose
    // read and conceal() are this thread's; the Regulator's conceal() may run on its worker thread
    if (mDeferWakes.load(std::memory_order_relaxed))
        stageNext(st);
}

void NextBlockBridge::deferWakes()
{
    mDeferWakes.store(true, std::memory_order_release);
    mStream.load(std::memory_order_acquire)->producer->defer_wakes(true);
}

void NextBlockBridge::replacementFramesToBits(int b, int firstFrame, int nFrames, int8_t* dst) const
{
    if (firstFrame < 0 || nFrames <= 0 || firstFrame + nFrames > mAudioStream->frames)
        return;
    const int n = nFrames * mChannels;
    if (b == 0 && mReplBitsValid) {  // converted outside the lock (stageNext)
        std::memcpy(dst,
                    mAudioStream->replBits.data() + static_cast<size_t>(firstFrame) * mChannels * mBitRes,
                    static_cast<size_t>(n) * mBitRes);
        return;
    }
    const float* src = replacement(b) + firstFrame * mChannels;
    const auto res   = bitRes(mBitRes);
    for (int i = 0; i < n; ++i) {
        float v = clampUnit(src[i]);  // validated by take_replacement; the clamp is belt and braces
        unitToBits(v, dst + i * mBitRes, res);
    }
}

void NextBlockBridge::crossfadeFrameFromReplacement(int frame, int8_t* bits) const
{
    const int frames = mAudioStream->frames;
    if (frame < 0 || frame >= frames)
        return;
    const float* pred = replacement(1) + frame * mChannels;
    const auto res    = bitRes(mBitRes);
    // the splice of shm_layout.hpp: a short raised cosine, then the real block (frames past it
    // are left as they arrived); its weights were computed with the stream. Compared with our
    // validated copy of block 1, sample by sample: where it equals what arrived the fade would give
    // that sample back, so the bits stay as they came (bounded: the fade's frames x channels)
    const std::vector<float>& fadeUp = mAudioStream->fadeUp;
    if (static_cast<size_t>(frame) >= fadeUp.size())
        return;
    const float up = fadeUp[static_cast<size_t>(frame)];
    for (int c = 0; c < mChannels; ++c) {
        const float real = bitsToSample(bits + c * mBitRes, res);
        if (pred[c] == real)
            continue;  // a two-sided replacement's second block is this packet: it stays as it came
        float v = clampUnit((1.0f - up) * pred[c] + up * real);
        unitToBits(v, bits + c * mBitRes, res);
    }
}

void NextBlockBridge::crossfadeFromReplacement(int8_t* bits) const
{
    crossfadeFramesFromReplacement(0, mAudioStream->frames, bits);
}

void NextBlockBridge::crossfadeFramesFromReplacement(int firstFrame, int nFrames, int8_t* bits) const
{
    const int frameBytes = mChannels * mBitRes;
    // frames from the fade's end on stay as they arrived: no call for each of them
    const int end = std::min(firstFrame + nFrames, static_cast<int>(mAudioStream->fadeUp.size()));
    for (int f = firstFrame; f < end; ++f)
        crossfadeFrameFromReplacement(f, bits + (f - firstFrame) * frameBytes);
}
