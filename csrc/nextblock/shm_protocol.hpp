// NextBlock shared-memory protocol: the one source of truth for the segment layout.
//
// Header-only C++17, depends on libc/librt only. Included unchanged by
//   * csrc/core_module.cpp        (the Python extension nextblock._core), and
//   * JackTrip's NextBlock patch   (third_party/jacktrip_patch/, -I<repo>/csrc).
//
// One POSIX shared-memory object per producer (patched JackTrip), named "/nextblock-<PID>",
// mode 0600. Layout version 2 (all offsets from the start of the mapping):
//
//   producer region (written only by the producer; consumers map it read-only)
//     [0, kHeaderBytes)            SegmentHeader: identity, geometry, producer counters
//     block ring                   block_ring_slots  x BlockSlot  (seqlock stamp, seq, times, samples)
//     event ring                   event_ring_slots  x EventSlot  (seqlock stamp, kind, outcome, seq, ...)
//   consumer region (page aligned at control_offset; consumers map it read-write)
//     [control_offset, +kControlBytes)  ControlPage: futex word, wake registration, poster, heartbeat
//     replacement slots            replacement_slots x ReplacementSlot (seqlock version, seq, 2 blocks)
//
// Samples are float32. A block is interleaved, frame-major: sample[frame * channels + ch].
// A replacement holds two blocks (the missing block and the next one, for the cross-fade),
// block-major: sample[(block * frames + frame) * channels + ch].
//
// Trust: the producer is JackTrip, the musician's lifeline; consumers are helpers. Any process of
// the same user can write anything anywhere in the segment, so the producer
//   * caches its geometry at create() and never reads back anything it wrote (ring indices,
//     counters, offsets are private copies; the mapping only receives stores);
//   * bounds every index it derives from consumer-written memory by its cached geometry, copies
//     a replacement out of the segment before looking at it, and refuses it unless every sample
//     is finite and within [-1, 1] (Take::Refused: the caller plays its own fallback);
//   * never blocks on, and never pays more than one FUTEX_WAKE per block for, what consumers
//     write (a wake registration expires by itself; a far-future one is ignored).
//
// Concurrency:
//   * Block and event rings: one writer (producer), any number of readers. Each slot carries a
//     stamp 2*i+2 once slot index i is complete (2*i+1 while being written). A reader copies the
//     slot and re-reads the stamp: a changed stamp means the writer lapped it (overrun), never a
//     torn read. The writer never waits for readers.
//   * Replacement slots: one poster (the consumer holding the poster token), one taker (the
//     producer's audio thread). Slot = seq % replacement_slots, guarded by a seqlock version that
//     is odd while being written, whatever state a dead poster left it in. The taker copies,
//     re-checks and validates; a torn, mismatching or invalid slot is refused and the producer
//     plays its own fallback. The taker never waits.
//   * Wake-up: notify_word (a futex word in the control page) is bumped on every block and event.
//     A reader about to sleep registers the end of its sleep in wake_until_ns (at most
//     kMaxWakeRegistrationNs ahead); the producer issues FUTEX_WAKE only while a registration is
//     current. A reader killed in futex_wait costs at most one registration's worth of wakes.
//
// Real-time discipline (producer side after create()): no allocation, no locks, no waiting;
// publish_block / post_event / take_replacement are wait-free (one optional FUTEX_WAKE syscall
// when somebody sleeps; with defer_wakes() post_event / note_playout leave it to flush_wakes(), for
// an audio thread that calls them inside a lock). publish_block runs on the receive thread, the
// rest on the audio thread; what both touch (the wake count) is atomic (ThreadSanitizer-checked:
// csrc/tests/shm_stress.cpp threads).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <string>

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace nextblock {

// ---------------------------------------------------------------------------------------------
// Constants and enums
// ---------------------------------------------------------------------------------------------

inline constexpr uint64_t kMagic = 0x31304B4C4254584EULL;  // "NXTBLK01" read little-endian
inline constexpr uint32_t kLayoutVersion = 3;
inline constexpr uint32_t kSampleFormatFloat32 = 1;
inline constexpr uint64_t kPageBytes = 4096;
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kControlBytes = 4096;
inline constexpr uint64_t kAlign = 64;

inline constexpr uint32_t kMinSampleRateHz = 8000;
inline constexpr uint32_t kMaxSampleRateHz = 384000;
inline constexpr uint32_t kMaxFramesPerBlock = 8192;
inline constexpr uint32_t kMaxChannels = 64;
inline constexpr uint32_t kMaxRingSlots = 1u << 16;
inline constexpr uint32_t kMaxReplacementSlots = 64;
inline constexpr uint64_t kConsumerTimeoutNs = 1000000000ULL;  // heartbeat older than this: dead
/// A reader sleeps at most this long per futex wait, and registers at most this far ahead.
inline constexpr uint64_t kMaxWakeRegistrationNs = 200000000ULL;
/// Added to a registration for timer slack and clock reads on both sides.
inline constexpr uint64_t kWakeSlackNs = 5000000ULL;
/// The missing-block wake looks at most this many blocks past the one being played.
inline constexpr uint32_t kMaxMissingLookahead = 16;
/// Received seqs the producer remembers for the missing-block check (a power of two > the lookahead).
inline constexpr uint32_t kReceivedHistory = 64;

/// The splice back into real audio after a replacement: the first block that arrives is
/// cross-faded from the replacement's second block over this many samples at 48 kHz (0.67 ms; in
/// proportion at other rates, at most one block), a raised cosine; the rest of the block is real.
/// JackTrip's own fade after a Burg guess spans the whole block, linearly: with NextBlock's
/// guesses the short fade keeps more real audio and measured better (validation set, 48 kHz x 128,
/// Bernoulli 5 %: SNR 5.84 -> 7.03 dB, LSD 3.19 -> 2.85 dB, ViSQOL 4.671 -> 4.686).
inline constexpr uint32_t kRecoveryFadeSamplesAt48k = 32;

/// Samples of the recovery cross-fade for a stream (>= 1, <= frames_per_block).
inline uint32_t recovery_fade_samples(uint32_t sample_rate_hz, uint32_t frames_per_block) noexcept {
  const uint64_t scaled = (uint64_t(kRecoveryFadeSamplesAt48k) * sample_rate_hz + 24000) / 48000;
  return uint32_t(std::clamp<uint64_t>(scaled, 1, std::max<uint32_t>(frames_per_block, 1)));
}

/// Weight of the real audio at `frame` of the recovery block (0..1; 1 from `fade_samples` on): a
/// raised cosine sampled at frame centres. Allocation-free, for the audio thread.
inline float recovery_fade_in(uint32_t frame, uint32_t fade_samples) noexcept {
  if (frame >= fade_samples) return 1.0f;
  const double x = (double(frame) + 0.5) / double(fade_samples);
  return float(0.5 - 0.5 * std::cos(3.14159265358979323846 * x));
}

/// What happened at the point where the producer decided what to play.
enum class EventKind : uint32_t {
  Underrun = 1,      ///< the block for `seq` was missing when it had to be played
  Skip = 2,          ///< `detail` blocks were dropped to catch up (buffer over-full)
  Late = 3,          ///< block `seq` arrived after its play-out time (discarded)
  Overflow = 4,      ///< the receive buffer overflowed at `seq`
  ConsumerLost = 5,  ///< the replacement poster stopped posting (logged once)
};

/// What was played for an event's block.
enum class Outcome : uint32_t {
  None = 0,         ///< nothing was substituted (e.g. Late, Skip)
  Replacement = 1,  ///< NextBlock's posted block was played
  Fallback = 2,     ///< the producer's own concealment was played
  Refused = 3,      ///< a replacement was posted but refused (non-finite or |x| > 1); fallback played
};

/// Result of Producer::take_replacement.
enum class Take : uint32_t {
  Taken = 0,    ///< a valid replacement for exactly this seq was copied out
  Missing = 1,  ///< none posted for this seq (or the slot holds another seq)
  Torn = 2,     ///< the poster was mid-write (or died mid-write)
  Refused = 3,  ///< posted, complete, but a sample is non-finite or outside [-1, 1]
};

/// Why opening or validating a segment failed.
enum class ErrorCode : int {
  Ok = 0,
  NotFound = 1,         ///< no such segment / no such producer process
  Permission = 2,       ///< owned by another user, or access denied
  TooSmall = 3,         ///< smaller than its header or than its declared size
  BadMagic = 4,         ///< not a NextBlock segment
  VersionMismatch = 5,  ///< another layout version
  BadGeometry = 6,      ///< sample rate / frames / channels / ring sizes out of range or inconsistent
  Stale = 7,            ///< the producer that made it is dead (crashed) or the PID was reused
  InUse = 8,            ///< a live producer owns this name, or another consumer posts replacements
  System = 9,           ///< an unexpected system-call failure
  InvalidArgument = 10,
  NotReady = 11,  ///< its producer has not published it yet (still creating it)
};

// ---------------------------------------------------------------------------------------------
// Small platform helpers
// ---------------------------------------------------------------------------------------------

/// CLOCK_MONOTONIC in nanoseconds: the time base of every *_ns field in the segment.
inline uint64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

inline uint64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

/// The segment name of a process's only (or first) stream: "/nextblock-<pid>".
inline std::string segment_name_for_pid(long pid) { return "/nextblock-" + std::to_string(pid); }

/// The segment name of one received stream of a process that receives several (a hub server's
/// workers, one per client): "/nextblock-<pid>-<local UDP port>".
inline std::string segment_name_for_stream(long pid, unsigned port) {
  return "/nextblock-" + std::to_string(pid) + "-" + std::to_string(port);
}

inline constexpr size_t kIdentityTextBytes = 64;

/// Who a stream is, for people and tools that list a process's streams (not used by the protocol).
struct StreamIdentity {
  std::string stream_name;   ///< e.g. JackTrip's client name for this peer
  std::string peer_address;  ///< the peer's address as text
  uint32_t local_port = 0;   ///< the UDP port this stream is received on
};

/// Process start time in clock ticks since boot (field 22 of /proc/PID/stat); 0 if unknown.
/// Together with the PID it identifies a process even when PIDs are reused.
inline uint64_t process_start_ticks(long pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // comm may contain spaces; fields restart after ')'
  if (!p) return 0;
  p += 2;  // skip ") "; now at field 3 (state)
  for (int field = 3; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  return std::strtoull(p, nullptr, 10);
}

/// True when process `pid` exists (also when it belongs to another user).
inline bool process_exists(long pid) noexcept {
  if (pid <= 0) return false;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

/// True when process `pid` runs and is the one that started at `start_ticks` (a reused PID is not).
inline bool process_running_since(long pid, uint64_t start_ticks) noexcept {
  return process_exists(pid) && process_start_ticks(pid) == start_ticks;
}

/// A 64-bit identity of a running process: PID in the low 32 bits, the low 32 bits of its start
/// time above. A reused PID gives another token.
inline uint64_t process_token(long pid) noexcept {
  return (uint64_t(uint32_t(process_start_ticks(pid))) << 32) | uint32_t(pid);
}

inline int32_t token_pid(uint64_t token) noexcept { return int32_t(uint32_t(token)); }

/// True when the process a token names is still the one running under its PID.
inline bool token_alive(uint64_t token) noexcept {
  const int32_t pid = token_pid(token);
  return pid > 0 && process_exists(pid) && uint32_t(process_start_ticks(pid)) == uint32_t(token >> 32);
}

inline long futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected, const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, timeout, nullptr, 0);
}

inline long futex_wake_shared(std::atomic<uint32_t>* word) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

inline constexpr uint64_t align_up(uint64_t n, uint64_t to = kAlign) noexcept { return (n + to - 1) / to * to; }
inline constexpr bool is_power_of_two(uint64_t n) noexcept { return n && !(n & (n - 1)); }

/// Loads a plain 64-bit field of shared memory that another process may be writing.
inline uint64_t load_shared(const uint64_t* p) noexcept { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/// One sample's check: sets `bad` if NaN, ±Inf or |x| > 1; returns the bits to play (a subnormal
/// or -0 becomes +0: slow arithmetic downstream, inaudible).
inline uint32_t playable_bits(uint32_t bits, uint32_t& bad) noexcept {
  const uint32_t magnitude = bits & 0x7fffffffu;
  bad |= uint32_t(magnitude > 0x3f800000u);  // > 1.0f, and every Inf / NaN
  return magnitude < 0x00800000u ? 0u : bits;
}

/// Copies `n` samples from `src` to `dst` (the same array, or distinct ones) and makes the copy
/// safe to play: returns false if any is NaN, ±Inf or |x| > 1 (then none of them may be played);
/// flushes subnormals to zero. Branch-free, one pass: a plain loop that GCC vectorises at -O2 and
/// -O3 alike (for distinct arrays; JackTrip builds at -O3). 4096 floats, GCC 12, a loaded 2-core
/// machine: ~0.9 µs at -O3, where the earlier groups-of-8 form took ~5 µs at -O3 (3 µs at -O2).
inline bool copy_playable(float* dst, const float* src, size_t n) noexcept {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, sizeof bits);
    bits = playable_bits(bits, bad);
    std::memcpy(dst + i, &bits, sizeof bits);
  }
  return bad == 0;
}

/// copy_playable() in place.
inline bool sanitize_playable(float* samples, size_t n) noexcept { return copy_playable(samples, samples, n); }

/// Unwraps JackTrip's 16-bit packet sequence numbers into 64-bit ones that never repeat and stay
/// congruent to the packet's number modulo 65536 (so JackTrip's own modular slot indices map back).
/// A packet up to kMaxReorder behind the newest is a late one (its own, smaller number); further
/// behind, the peer restarted (or its counter jumped): the stream continues forward from there.
class SeqUnwrapper {
 public:
  static constexpr int kMaxReorder = 64;

  int64_t next(uint16_t seq16) noexcept {
    if (last_ < 0) {
      last_ = seq16;
      return last_;
    }
    const uint16_t forward = uint16_t(seq16 - uint16_t(last_));
    const int16_t delta = int16_t(forward);
    int64_t seq;
    if (delta >= -kMaxReorder) {
      seq = last_ + delta;
      if (seq < 0) seq += 65536;  // a late packet from before the first one seen
    } else {
      seq = last_ + forward;  // a jump back: a restarted peer, continue forward
      ++restarts_;
    }
    if (seq > last_) last_ = seq;
    return seq;
  }
  /// The newest unwrapped seq (-1 before the first packet).
  int64_t last() const noexcept { return last_; }
  /// Backward jumps treated as restarts.
  uint64_t restarts() const noexcept { return restarts_; }

 private:
  int64_t last_ = -1;
  uint64_t restarts_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/// What the producer asks for. Ring sizes must be powers of two.
struct SegmentConfig {
  uint32_t sample_rate_hz = 48000;
  uint32_t frames_per_block = 128;
  uint32_t channels = 2;
  uint32_t block_ring_slots = 1024;  ///< ~2.7 s of history at 128 frames / 48 kHz
  uint32_t event_ring_slots = 1024;
  uint32_t replacement_slots = 8;
};

struct BlockSlotHeader {
  std::atomic<uint64_t> stamp;  ///< 2*i+2 when slot holds complete block index i; odd while written
  uint64_t seq;                 ///< producer's (unwrapped, 64-bit) sequence number
  uint64_t arrival_ns;          ///< monotonic_ns() when the block arrived
  uint64_t gap_ns;              ///< time since the previous block arrived
};
static_assert(sizeof(BlockSlotHeader) == 32, "BlockSlotHeader layout");

struct EventSlot {
  std::atomic<uint64_t> stamp;
  uint32_t kind;     ///< EventKind
  uint32_t outcome;  ///< Outcome
  uint64_t seq;
  uint64_t time_ns;
  int64_t detail;
  uint8_t pad_[24];
};
static_assert(sizeof(EventSlot) == 64, "EventSlot layout");

struct ReplacementSlotHeader {
  std::atomic<uint64_t> version;  ///< seqlock: odd while being written
  uint64_t seq;                   ///< the sequence number the two blocks replace (first block)
  uint64_t posted_ns;
  uint64_t pad_;
};
static_assert(sizeof(ReplacementSlotHeader) == 32, "ReplacementSlotHeader layout");

/// The producer's page. Identity and geometry are written once before `magic` is published; the
/// runtime fields after them are stores of the producer's private counters (never read back by
/// the producer), each group on its own cache line.
struct SegmentHeader {
  // --- identity (written once; magic last, with release) ---
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint32_t sample_rate_hz;
  uint32_t frames_per_block;
  uint32_t channels;
  uint32_t sample_format;
  uint32_t block_ring_slots;
  uint32_t event_ring_slots;
  uint32_t replacement_slots;
  int32_t producer_pid;
  uint64_t producer_start_ticks;
  uint64_t created_unix_ns;
  uint64_t block_slot_bytes;
  uint64_t block_ring_offset;
  uint64_t event_slot_bytes;
  uint64_t event_ring_offset;
  uint64_t control_offset;
  uint64_t replacement_slot_bytes;
  uint64_t replacement_offset;
  uint64_t total_bytes;
  char stream_name[kIdentityTextBytes];   ///< StreamIdentity, NUL-terminated ("" if unknown)
  char peer_address[kIdentityTextBytes];  ///< StreamIdentity, NUL-terminated ("" if unknown)
  uint32_t local_port;                    ///< StreamIdentity (0 if unknown)
  uint32_t identity_pad_;
  // --- runtime (producer-written) ---
  alignas(64) std::atomic<uint64_t> blocks_written;
  alignas(64) std::atomic<uint64_t> events_written;
  alignas(64) std::atomic<uint32_t> producer_closed;  ///< 1 once the producer has shut down
  alignas(64) std::atomic<uint64_t> replacements_used;
  std::atomic<uint64_t> replacements_missed;   ///< taken for a seq with no (matching) replacement
  std::atomic<uint64_t> replacements_torn;     ///< refused because the poster was mid-write
  std::atomic<uint64_t> replacements_refused;  ///< refused: non-finite or out-of-range samples
  std::atomic<uint64_t> wakes_issued;          ///< FUTEX_WAKE calls made for sleeping readers
  std::atomic<uint64_t> missing_found;         ///< pulls at which the looked-ahead block was missing
  std::atomic<uint64_t> missing_wakes_issued;  ///< FUTEX_WAKE calls made on missing_word
  // --- play-out clock (producer-written at every pull of the audio thread; see note_playout) ---
  alignas(64) std::atomic<uint64_t> playout_version;  ///< odd while the three below are written
  std::atomic<uint64_t> playout_seq;                  ///< seq of the block played at playout_ns
  std::atomic<uint64_t> playout_ns;                   ///< monotonic_ns() of that pull (0: no pull yet)
  std::atomic<int64_t> playout_queued_blocks;         ///< blocks already received beyond playout_seq
};
static_assert(sizeof(SegmentHeader) <= kHeaderBytes, "header must fit its page");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "64-bit atomics must be lock-free for shared memory");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "32-bit atomics must be lock-free for shared memory");

/// The consumers' page (read-write for every consumer; the producer bounds what it reads here).
struct ControlPage {
  alignas(64) std::atomic<uint32_t> notify_word;    ///< futex word: bumped on every block and event
  alignas(64) std::atomic<uint64_t> wake_until_ns;  ///< latest end of a registered reader's sleep
  alignas(64) std::atomic<uint64_t> poster_token;   ///< process_token() of the poster (0: none)
  std::atomic<uint64_t> consumer_heartbeat_ns;      ///< monotonic_ns() of the poster's last sign of life
  std::atomic<uint64_t> replacements_posted;
  // --- missing-block wake (see Producer::note_playout) ---
  alignas(64) std::atomic<uint32_t> missing_word;  ///< futex word: bumped when a looked-ahead block is missing
  std::atomic<uint32_t> missing_lookahead_blocks;  ///< 0: off; else check seq + this at each pull (clamped)
  std::atomic<uint64_t> missing_wake_until_ns;     ///< registration for missing_word, as wake_until_ns
};
static_assert(sizeof(ControlPage) <= kControlBytes, "control block must fit its page");

/// Byte sizes and offsets implied by a configuration.
struct Layout {
  uint64_t block_slot_bytes = 0, block_ring_offset = 0;
  uint64_t event_slot_bytes = 0, event_ring_offset = 0;
  uint64_t control_offset = 0;
  uint64_t replacement_slot_bytes = 0, replacement_offset = 0;
  uint64_t total_bytes = 0;
};

inline const char* error_name(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::Ok: return "ok";
    case ErrorCode::NotFound: return "not found";
    case ErrorCode::Permission: return "permission denied";
    case ErrorCode::TooSmall: return "too small";
    case ErrorCode::BadMagic: return "bad magic";
    case ErrorCode::VersionMismatch: return "layout version mismatch";
    case ErrorCode::BadGeometry: return "bad geometry";
    case ErrorCode::Stale: return "stale segment";
    case ErrorCode::InUse: return "in use";
    case ErrorCode::System: return "system error";
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::NotReady: return "not ready";
  }
  return "unknown";
}

/// Checks a configuration's ranges and computes its layout. Returns Ok or BadGeometry (+ reason).
inline ErrorCode compute_layout(const SegmentConfig& c, Layout* out, std::string* why) {
  auto fail = [&](const std::string& msg) {
    if (why) *why = msg;
    return ErrorCode::BadGeometry;
  };
  if (c.sample_rate_hz < kMinSampleRateHz || c.sample_rate_hz > kMaxSampleRateHz)
    return fail("sample rate " + std::to_string(c.sample_rate_hz) + " Hz is outside 8000..384000");
  if (c.frames_per_block < 1 || c.frames_per_block > kMaxFramesPerBlock)
    return fail("frames per block " + std::to_string(c.frames_per_block) + " is outside 1..8192");
  if (c.channels < 1 || c.channels > kMaxChannels)
    return fail("channel count " + std::to_string(c.channels) + " is outside 1..64");
  if (!is_power_of_two(c.block_ring_slots) || c.block_ring_slots < 2 || c.block_ring_slots > kMaxRingSlots)
    return fail("block ring slots " + std::to_string(c.block_ring_slots) + " must be a power of two in 2..65536");
  if (!is_power_of_two(c.event_ring_slots) || c.event_ring_slots < 2 || c.event_ring_slots > kMaxRingSlots)
    return fail("event ring slots " + std::to_string(c.event_ring_slots) + " must be a power of two in 2..65536");
  if (c.replacement_slots < 1 || c.replacement_slots > kMaxReplacementSlots)
    return fail("replacement slots " + std::to_string(c.replacement_slots) + " is outside 1..64");
  const uint64_t block_floats = uint64_t(c.frames_per_block) * c.channels;
  Layout l;
  l.block_slot_bytes = align_up(sizeof(BlockSlotHeader) + block_floats * sizeof(float));
  l.block_ring_offset = kHeaderBytes;
  l.event_slot_bytes = sizeof(EventSlot);
  l.event_ring_offset = l.block_ring_offset + l.block_slot_bytes * c.block_ring_slots;
  l.control_offset = align_up(l.event_ring_offset + l.event_slot_bytes * c.event_ring_slots, kPageBytes);
  l.replacement_slot_bytes = align_up(sizeof(ReplacementSlotHeader) + 2 * block_floats * sizeof(float));
  l.replacement_offset = l.control_offset + kControlBytes;
  l.total_bytes = align_up(l.replacement_offset + l.replacement_slot_bytes * c.replacement_slots, kPageBytes);
  if (out) *out = l;
  return ErrorCode::Ok;
}

/// Validates the identity and geometry of a segment image of `size_bytes` bytes (untrusted
/// input: never reads past `size_bytes`). Returns Ok or the first problem, with a reason; on Ok
/// fills `cfg_out` / `layout_out` with the geometry (a copy: later writes to the image do not
/// change it).
inline ErrorCode validate_header(const void* data, uint64_t size_bytes, std::string* why,
                                 SegmentConfig* cfg_out = nullptr, Layout* layout_out = nullptr) {
  auto fail = [&](ErrorCode code, const std::string& msg) {
    if (why) *why = msg;
    return code;
  };
  if (data == nullptr || size_bytes < kHeaderBytes)
    return fail(ErrorCode::TooSmall, "segment is " + std::to_string(size_bytes) + " bytes, smaller than its " +
                                         std::to_string(kHeaderBytes) + "-byte header");
  SegmentHeader h;  // copy the identity fields out (the source may be concurrently written)
  std::memcpy(static_cast<void*>(&h), data, offsetof(SegmentHeader, blocks_written));  // NOLINT
  h.magic = __atomic_load_n(static_cast<const uint64_t*>(data), __ATOMIC_ACQUIRE);
  if (h.magic == 0)  // Producer::create publishes magic last: zero until the header is complete
    return fail(ErrorCode::NotReady, "not published yet (its producer is still creating it)");
  if (h.magic != kMagic) return fail(ErrorCode::BadMagic, "not a NextBlock segment (wrong magic number)");
  if (h.layout_version != kLayoutVersion)
    return fail(ErrorCode::VersionMismatch, "segment has layout version " + std::to_string(h.layout_version) +
                                                ", this NextBlock speaks version " + std::to_string(kLayoutVersion) +
                                                " (update JackTrip's patch or NextBlock so they match)");
  if (h.header_bytes != kHeaderBytes)
    return fail(ErrorCode::BadGeometry,
                "header size " + std::to_string(h.header_bytes) + " != " + std::to_string(kHeaderBytes));
  if (h.sample_format != kSampleFormatFloat32)
    return fail(ErrorCode::BadGeometry, "sample format " + std::to_string(h.sample_format) + " is not float32");
  SegmentConfig c;
  c.sample_rate_hz = h.sample_rate_hz;
  c.frames_per_block = h.frames_per_block;
  c.channels = h.channels;
  c.block_ring_slots = h.block_ring_slots;
  c.event_ring_slots = h.event_ring_slots;
  c.replacement_slots = h.replacement_slots;
  Layout l;
  std::string geometry_why;
  if (compute_layout(c, &l, &geometry_why) != ErrorCode::Ok) return fail(ErrorCode::BadGeometry, geometry_why);
  if (h.block_slot_bytes != l.block_slot_bytes || h.block_ring_offset != l.block_ring_offset ||
      h.event_slot_bytes != l.event_slot_bytes || h.event_ring_offset != l.event_ring_offset ||
      h.control_offset != l.control_offset || h.replacement_slot_bytes != l.replacement_slot_bytes ||
      h.replacement_offset != l.replacement_offset || h.total_bytes != l.total_bytes)
    return fail(ErrorCode::BadGeometry, "ring sizes and offsets in the header do not add up");
  if (h.total_bytes > size_bytes)
    return fail(ErrorCode::TooSmall, "segment declares " + std::to_string(h.total_bytes) + " bytes but has only " +
                                         std::to_string(size_bytes));
  if (h.producer_pid <= 0)
    return fail(ErrorCode::BadGeometry, "producer PID " + std::to_string(h.producer_pid) + " is invalid");
  if (why) why->clear();
  if (cfg_out) *cfg_out = c;
  if (layout_out) *layout_out = l;
  return ErrorCode::Ok;
}

// ---------------------------------------------------------------------------------------------
// A mapped segment (shared by producer and consumer)
// ---------------------------------------------------------------------------------------------

/// A mapping plus the geometry its owner trusts (its own at create(), a validated copy at
/// attach). Every address comes from that private copy, never from the mapped header, so a
/// corrupted header cannot send an access outside the mapping.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, uint64_t bytes, const SegmentConfig& cfg, const Layout& layout)
      : base_(static_cast<uint8_t*>(base)), bytes_(bytes), cfg_(cfg), layout_(layout) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base_) ::munmap(base_, bytes_);
  }
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  ControlPage* control() const noexcept { return reinterpret_cast<ControlPage*>(base_ + layout_.control_offset); }
  BlockSlotHeader* block_slot(uint64_t index) const noexcept {
    return reinterpret_cast<BlockSlotHeader*>(base_ + layout_.block_ring_offset +
                                              (index & (cfg_.block_ring_slots - 1)) * layout_.block_slot_bytes);
  }
  static float* block_samples(BlockSlotHeader* s) noexcept { return reinterpret_cast<float*>(s + 1); }
  EventSlot* event_slot(uint64_t index) const noexcept {
    return reinterpret_cast<EventSlot*>(base_ + layout_.event_ring_offset +
                                        (index & (cfg_.event_ring_slots - 1)) * layout_.event_slot_bytes);
  }
  ReplacementSlotHeader* replacement_slot(uint64_t seq) const noexcept {
    return reinterpret_cast<ReplacementSlotHeader*>(base_ + layout_.replacement_offset +
                                                    (seq % cfg_.replacement_slots) * layout_.replacement_slot_bytes);
  }
  static float* replacement_samples(ReplacementSlotHeader* s) noexcept { return reinterpret_cast<float*>(s + 1); }
  uint8_t* base() const noexcept { return base_; }
  uint64_t bytes() const noexcept { return bytes_; }
  const SegmentConfig& config() const noexcept { return cfg_; }
  const Layout& layout() const noexcept { return layout_; }
  /// floats in one block (frames * channels)
  uint64_t block_floats() const noexcept { return uint64_t(cfg_.frames_per_block) * cfg_.channels; }

 private:
  uint8_t* base_ = nullptr;
  uint64_t bytes_ = 0;
  SegmentConfig cfg_{};
  Layout layout_{};
};

// ---------------------------------------------------------------------------------------------
// Producer (patched JackTrip; also the Python test/demo producer)
// ---------------------------------------------------------------------------------------------

class Producer {
 public:
  /// Creates (or safely replaces a stale) segment `name`. Not real-time: call at start-up.
  /// Returns nullptr and fills `why` / `code` on failure.
  static std::unique_ptr<Producer> create(const std::string& name, const SegmentConfig& cfg, std::string* why,
                                          ErrorCode* code = nullptr, const StreamIdentity* identity = nullptr) {
    auto fail = [&](ErrorCode c, const std::string& msg) -> std::unique_ptr<Producer> {
      if (why) *why = msg;
      if (code) *code = c;
      return nullptr;
    };
    if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 250)
      return fail(ErrorCode::InvalidArgument, "segment name '" + name + "' must be '/name' without further slashes");
    Layout l;
    std::string geometry_why;
    if (compute_layout(cfg, &l, &geometry_why) != ErrorCode::Ok) return fail(ErrorCode::BadGeometry, geometry_why);

    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
      // Someone left a segment with this name. Replace it only if its producer is gone.
      int old = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (old >= 0) {
        struct stat st{};
        bool live = false;
        if (::fstat(old, &st) == 0 && uint64_t(st.st_size) >= kHeaderBytes) {
          void* p = ::mmap(nullptr, kHeaderBytes, PROT_READ, MAP_SHARED, old, 0);
          if (p != MAP_FAILED) {
            const auto* h = static_cast<const SegmentHeader*>(p);
            const int32_t pid = __atomic_load_n(&h->producer_pid, __ATOMIC_RELAXED);
            const uint64_t ticks = load_shared(&h->producer_start_ticks);
            if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == kMagic && pid != getpid() &&
                process_running_since(pid, ticks))
              live = true;
            ::munmap(p, kHeaderBytes);
          }
        }
        ::close(old);
        if (live) return fail(ErrorCode::InUse, "segment " + name + " belongs to a running producer");
      }
      ::shm_unlink(name.c_str());  // stale: from a crashed producer with the same name
      fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0)
      return fail(errno == EACCES ? ErrorCode::Permission : ErrorCode::System,
                  "cannot create segment " + name + ": " + std::strerror(errno));
    ::fchmod(fd, 0600);  // independent of the umask
    if (::ftruncate(fd, off_t(l.total_bytes)) != 0) {
      int e = errno;
      ::close(fd);
      ::shm_unlink(name.c_str());
      return fail(ErrorCode::System, "cannot size segment " + name + ": " + std::strerror(e));
    }
    void* base = ::mmap(nullptr, l.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      ::shm_unlink(name.c_str());
      return fail(ErrorCode::System, "cannot map segment " + name + ": " + std::strerror(e));
    }
    std::memset(base, 0, l.total_bytes);   // also pre-faults every page before real-time use
    ::mlock(base, l.total_bytes);          // best effort: keep the audio path free of page faults
    auto* h = new (base) SegmentHeader();  // constructs the atomics in place
    new (static_cast<uint8_t*>(base) + l.control_offset) ControlPage();
    h->layout_version = kLayoutVersion;
    h->header_bytes = uint32_t(kHeaderBytes);
    h->sample_rate_hz = cfg.sample_rate_hz;
    h->frames_per_block = cfg.frames_per_block;
    h->channels = cfg.channels;
    h->sample_format = kSampleFormatFloat32;
    h->block_ring_slots = cfg.block_ring_slots;
    h->event_ring_slots = cfg.event_ring_slots;
    h->replacement_slots = cfg.replacement_slots;
    h->producer_pid = int32_t(getpid());
    h->producer_start_ticks = process_start_ticks(getpid());
    h->created_unix_ns = realtime_ns();
    h->block_slot_bytes = l.block_slot_bytes;
    h->block_ring_offset = l.block_ring_offset;
    h->event_slot_bytes = l.event_slot_bytes;
    h->event_ring_offset = l.event_ring_offset;
    h->control_offset = l.control_offset;
    h->replacement_slot_bytes = l.replacement_slot_bytes;
    h->replacement_offset = l.replacement_offset;
    h->total_bytes = l.total_bytes;
    if (identity) {
      std::snprintf(h->stream_name, sizeof h->stream_name, "%s", identity->stream_name.c_str());
      std::snprintf(h->peer_address, sizeof h->peer_address, "%s", identity->peer_address.c_str());
      h->local_port = identity->local_port;
    }
    struct stat own{};
    const ino_t inode = ::fstat(fd, &own) == 0 ? own.st_ino : 0;
    ::close(fd);
    __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);  // published: attachers may validate now
    if (code) *code = ErrorCode::Ok;
    return std::unique_ptr<Producer>(new Producer(name, base, cfg, l, inode));
  }

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Marks the segment closed, wakes readers and removes the name, unless the name now belongs
  /// to a newer segment (a hub reusing this stream's port, say): that one is left alone.
  ~Producer() {
    mark_closed();
    int fd = ::shm_open(name_.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
      struct stat st{};
      const bool ours = ::fstat(fd, &st) == 0 && st.st_ino == inode_;
      ::close(fd);
      if (ours) ::shm_unlink(name_.c_str());
    }
  }

  /// Tells consumers this segment is finished (they see producer_closed and are woken) while
  /// the object stays usable for calls already under way; the destructor does the rest.
  void mark_closed() noexcept {
    map_.header()->producer_closed.store(1, std::memory_order_release);
    map_.control()->notify_word.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_shared(&map_.control()->notify_word);
  }

  const std::string& name() const noexcept { return name_; }
  const SegmentHeader& header() const noexcept { return *map_.header(); }
  const ControlPage& control() const noexcept { return *map_.control(); }
  const SegmentConfig& config() const noexcept { return map_.config(); }
  const Layout& layout() const noexcept { return map_.layout(); }
  uint32_t frames_per_block() const noexcept { return map_.config().frames_per_block; }
  uint32_t channels() const noexcept { return map_.config().channels; }
  /// The producer's own counts (what it stores into the header; never read back from it).
  uint64_t blocks_written() const noexcept { return blocks_; }
  uint64_t events_written() const noexcept { return events_; }
  uint64_t wakes_issued() const noexcept { return wakes_.load(std::memory_order_relaxed); }
  /// FUTEX_WAKEs on missing_word that publish_block issued for a block after a missing one.
  uint64_t gap_wakes_issued() const noexcept { return gap_wakes_.load(std::memory_order_relaxed); }
  uint64_t replacements_used() const noexcept { return used_; }
  uint64_t replacements_refused() const noexcept { return refused_; }
  uint64_t replacements_missed() const noexcept { return missed_; }
  uint64_t replacements_torn() const noexcept { return torn_; }

  /// Makes post_event() and note_playout() leave their FUTEX_WAKE to flush_wakes() (they still
  /// bump the futex words and check the registrations). For a producer whose audio thread calls
  /// them inside a lock (JackTrip's buffer QMutex): no syscall under it. Not real-time; call before
  /// the audio thread runs. publish_block() always wakes at once.
  void defer_wakes(bool on) noexcept { defer_wakes_ = on; }

  /// Issues the wake-ups post_event() / note_playout() deferred (at most one FUTEX_WAKE per
  /// futex word; nothing when none is pending). Wait-free; the thread that calls post_event() and
  /// note_playout(), after leaving the lock they ran under.
  void flush_wakes() noexcept {
    if (pending_wakes_ == 0) return;
    const uint32_t pending = pending_wakes_;
    pending_wakes_ = 0;
    if (pending & kPendingNotify) wake_notify_word();
    if (pending & kPendingMissing) {
      futex_wake_shared(&map_.control()->missing_word);
      map_.header()->missing_wakes_issued.store(++missing_wakes_, std::memory_order_relaxed);
    }
  }

  /// Publishes one received block (frames*channels interleaved floats). Wait-free; called from
  /// the network receive thread for every block that arrives.
  void publish_block(uint64_t seq, const float* interleaved, uint64_t arrival_ns, uint64_t gap_ns) noexcept {
    const uint64_t i = blocks_++;
    BlockSlotHeader* s = map_.block_slot(i);
    s->stamp.store(2 * i + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s->seq = seq;
    s->arrival_ns = arrival_ns;
    s->gap_ns = gap_ns;
    std::memcpy(Mapping::block_samples(s), interleaved, sizeof(float) * map_.block_floats());
    s->stamp.store(2 * i + 2, std::memory_order_release);
    map_.header()->blocks_written.store(blocks_, std::memory_order_release);
    received_[seq & (kReceivedHistory - 1)].store(seq, std::memory_order_release);
    notify_readers(false);
    // the block after a missing one: the loss is known now, while the missing block may still be
    // queued. A consumer asleep on its missing-block wake is woken (it may fill the gap from both
    // sides): one check per block, a syscall only per gap and only while a sleep is registered
    if (i > 0 && seq > 0 && received_[(seq - 1) & (kReceivedHistory - 1)].load(std::memory_order_relaxed) != seq - 1)
      wake_missing_after_gap();
  }

  /// Records an event (underrun, skip, late, ...) with the sequence number concerned. Wait-free.
  /// Must be called from one thread at a time (in JackTrip: the audio thread).
  void post_event(EventKind kind, uint64_t seq, Outcome outcome, int64_t detail = 0, uint64_t time_ns = 0) noexcept {
    const uint64_t i = events_++;
    EventSlot* e = map_.event_slot(i);
    e->stamp.store(2 * i + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e->kind = uint32_t(kind);
    e->outcome = uint32_t(outcome);
    e->seq = seq;
    e->time_ns = time_ns ? time_ns : monotonic_ns();
    e->detail = detail;
    e->stamp.store(2 * i + 2, std::memory_order_release);
    map_.header()->events_written.store(events_, std::memory_order_release);
    notify_readers(defer_wakes_);
  }

  /// Copies the replacement posted for exactly `seq` (2*frames*channels floats, block-major) into
  /// `out_two_blocks` and checks it. Anything but Take::Taken leaves `out_two_blocks` unusable
  /// (untouched or partially written) and the caller plays its own fallback. Wait-free; called
  /// from one thread at a time (in JackTrip: the audio thread).
  Take take_replacement(uint64_t seq, float* out_two_blocks) noexcept {
    SegmentHeader* h = map_.header();
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    const uint64_t v1 = s->version.load(std::memory_order_acquire);
    if (v1 & 1) {
      h->replacements_torn.store(++torn_, std::memory_order_relaxed);
      return Take::Torn;
    }
    if (v1 == 0 || load_shared(&s->seq) != seq) {
      h->replacements_missed.store(++missed_, std::memory_order_relaxed);
      return Take::Missing;
    }
    // copy and check in one pass; the check counts only if the copy was not torn
    const bool playable = copy_playable(out_two_blocks, Mapping::replacement_samples(s), 2 * map_.block_floats());
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->version.load(std::memory_order_relaxed) != v1 || load_shared(&s->seq) != seq) {
      h->replacements_torn.store(++torn_, std::memory_order_relaxed);
      return Take::Torn;
    }
    if (!playable) {
      h->replacements_refused.store(++refused_, std::memory_order_relaxed);
      return Take::Refused;
    }
    h->replacements_used.store(++used_, std::memory_order_relaxed);
    return Take::Taken;
  }

  /// take_replacement() in two halves, for an audio thread that takes inside a lock. Outside
  /// it, peek_replacement() copies and checks the replacement posted for `seq` into
  /// `out_two_blocks` (the same copy as take_replacement's, 2 x block floats) and counts nothing;
  /// it returns the slot version it copied (0: none posted for `seq`, or torn: nothing to use)
  /// and sets `*playable`. Inside the lock, take_peeked() reloads the slot's version and seq
  /// (two loads, no copy): unchanged since the peek means the copy is exactly what
  /// take_replacement would copy now, and it returns and counts what take_replacement would
  /// (Taken / Refused); changed, it returns Torn and counts nothing (the caller then takes).
  /// Wait-free; the audio thread only.
  uint64_t peek_replacement(uint64_t seq, float* out_two_blocks, bool* playable) noexcept {
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    const uint64_t v1 = s->version.load(std::memory_order_acquire);
    if ((v1 & 1) || v1 == 0 || load_shared(&s->seq) != seq) return 0;
    *playable = copy_playable(out_two_blocks, Mapping::replacement_samples(s), 2 * map_.block_floats());
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->version.load(std::memory_order_relaxed) != v1 || load_shared(&s->seq) != seq) return 0;
    return v1;
  }

  Take take_peeked(uint64_t seq, uint64_t peeked_version, bool playable) noexcept {
    SegmentHeader* h = map_.header();
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    if (peeked_version == 0 || s->version.load(std::memory_order_acquire) != peeked_version ||
        load_shared(&s->seq) != seq)
      return Take::Torn;
    if (!playable) {
      h->replacements_refused.store(++refused_, std::memory_order_relaxed);
      return Take::Refused;
    }
    h->replacements_used.store(++used_, std::memory_order_relaxed);
    return Take::Taken;
  }

  /// The play-out clock: the audio thread just played (or concealed) block `seq` at `now_ns`,
  /// with `queued_blocks` later blocks already received. Consumers derive from it when each
  /// later seq will be due (seq + k at about now_ns + k block periods). Wait-free; one thread.
  ///
  /// Then the missing-block wake: if a consumer asked for it (missing_lookahead_blocks = k > 0),
  /// block seq + k is checked once; if it has not been published, missing_word is bumped and,
  /// while a registration in missing_wake_until_ns is current, one FUTEX_WAKE is issued. A
  /// just-in-time consumer sleeps on that word instead of waking at every block, so that its idle
  /// cost follows the losses. At most one check per pull, one syscall per missing block.
  void note_playout(uint64_t seq, uint64_t now_ns, int64_t queued_blocks) noexcept {
    SegmentHeader* h = map_.header();
    h->playout_version.store(++playout_version_, std::memory_order_relaxed);  // odd
    std::atomic_thread_fence(std::memory_order_release);
    h->playout_seq.store(seq, std::memory_order_relaxed);
    h->playout_ns.store(now_ns, std::memory_order_relaxed);
    h->playout_queued_blocks.store(queued_blocks, std::memory_order_relaxed);
    h->playout_version.store(++playout_version_, std::memory_order_release);  // even
    check_upcoming(seq, now_ns);
  }

  /// True when a consumer holds the poster role and showed a sign of life within the last second.
  /// Reads only consumer-written words (any value is harmless: it decides a log line).
  bool consumer_alive(uint64_t now_ns) const noexcept {
    const ControlPage* c = map_.control();
    if (c->poster_token.load(std::memory_order_acquire) == 0) return false;
    const uint64_t beat = c->consumer_heartbeat_ns.load(std::memory_order_acquire);
    return beat != 0 && now_ns >= beat ? (now_ns - beat) < kConsumerTimeoutNs : beat != 0;
  }

 private:
  Producer(std::string name, void* base, const SegmentConfig& cfg, const Layout& layout, ino_t inode)
      : name_(std::move(name)), map_(base, layout.total_bytes, cfg, layout), inode_(inode) {}

  /// Wakes sleeping readers after a block or event was published: one FUTEX_WAKE, and only while
  /// a reader's registration is current (not past, not implausibly far ahead). `defer`: leave the
  /// FUTEX_WAKE to flush_wakes() (the caller holds a lock).
  void notify_readers(bool defer) noexcept {
    ControlPage* c = map_.control();
    c->notify_word.fetch_add(1, std::memory_order_seq_cst);
    const uint64_t until = c->wake_until_ns.load(std::memory_order_seq_cst);
    if (until == 0) return;
    const uint64_t now = monotonic_ns();
    if (until > now && until - now <= kMaxWakeRegistrationNs + 2 * kWakeSlackNs) {
      if (defer)
        pending_wakes_ |= kPendingNotify;
      else
        wake_notify_word();
    }
  }

  /// One FUTEX_WAKE on notify_word, counted. Runs on the receive thread (publish_block) and on
  /// the audio thread (post_event, flush_wakes) at once: the count is a relaxed atomic (wait-free;
  /// the header's copy may lag one concurrent wake behind until the next).
  void wake_notify_word() noexcept {
    futex_wake_shared(&map_.control()->notify_word);
    map_.header()->wakes_issued.store(wakes_.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// The missing-block wake of note_playout. Reads two consumer-written words and bounds both.
  void check_upcoming(uint64_t seq, uint64_t now_ns) noexcept {
    ControlPage* c = map_.control();
    uint32_t k = c->missing_lookahead_blocks.load(std::memory_order_relaxed);
    if (k == 0) return;
    if (k > kMaxMissingLookahead) k = kMaxMissingLookahead;
    const uint64_t target = seq + k;
    if (checked_any_ && target <= checked_upto_) return;  // a replayed or repeated pull: checked already
    checked_any_ = true;
    checked_upto_ = target;
    if (received_[target & (kReceivedHistory - 1)].load(std::memory_order_acquire) == target) return;
    SegmentHeader* h = map_.header();
    h->missing_found.store(++missing_found_, std::memory_order_relaxed);
    c->missing_word.fetch_add(1, std::memory_order_seq_cst);
    const uint64_t until = c->missing_wake_until_ns.load(std::memory_order_seq_cst);
    if (until > now_ns && until - now_ns <= kMaxWakeRegistrationNs + 2 * kWakeSlackNs) {
      if (defer_wakes_) {
        pending_wakes_ |= kPendingMissing;
        return;
      }
      futex_wake_shared(&c->missing_word);
      h->missing_wakes_issued.store(++missing_wakes_, std::memory_order_relaxed);
    }
  }

  /// publish_block's wake for a gap before the block (receive thread; the audio thread's
  /// check_upcoming bumps the same word, atomically). Counted apart from the audio thread's wakes.
  void wake_missing_after_gap() noexcept {
    ControlPage* c = map_.control();
    if (c->missing_lookahead_blocks.load(std::memory_order_relaxed) == 0) return;  // no consumer sleeps on it
    c->missing_word.fetch_add(1, std::memory_order_seq_cst);
    const uint64_t until = c->missing_wake_until_ns.load(std::memory_order_seq_cst);
    const uint64_t now_ns = monotonic_ns();
    if (until > now_ns && until - now_ns <= kMaxWakeRegistrationNs + 2 * kWakeSlackNs) {
      futex_wake_shared(&c->missing_word);
      gap_wakes_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  std::string name_;
  Mapping map_;
  ino_t inode_ = 0;  ///< the object this producer created (its name may be reused later)
  // private counters: the segment only receives copies
  uint64_t blocks_ = 0, events_ = 0;
  std::atomic<uint64_t> wakes_{0};      ///< receive and audio thread both wake (wake_notify_word)
  std::atomic<uint64_t> gap_wakes_{0};  ///< publish_block's missing-word wakes for a gap (receive thread)
  // deferred wakes (defer_wakes): set by post_event / note_playout, issued by flush_wakes (audio thread)
  static constexpr uint32_t kPendingNotify = 1, kPendingMissing = 2;
  bool defer_wakes_ = false;
  uint32_t pending_wakes_ = 0;
  uint64_t used_ = 0, missed_ = 0, torn_ = 0, refused_ = 0;
  uint64_t playout_version_ = 0;
  // missing-block wake: seqs published lately (receive thread writes, audio thread reads)
  std::atomic<uint64_t> received_[kReceivedHistory] = {};
  uint64_t checked_upto_ = 0, missing_found_ = 0, missing_wakes_ = 0;
  bool checked_any_ = false;
};

// ---------------------------------------------------------------------------------------------
// Consumer (NextBlock's predictor, the online learner, tests)
// ---------------------------------------------------------------------------------------------

enum class ReadResult { Ok, NotYet, Overwritten };

class Consumer {
 public:
  /// Attaches to segment `name`: the producer region is mapped read-only, the consumer region
  /// read-write. With `post_replacements`, claims the single poster role (fails with InUse while
  /// another live consumer holds it). Not real-time.
  static std::unique_ptr<Consumer> attach(const std::string& name, bool post_replacements, std::string* why,
                                          ErrorCode* code = nullptr) {
    auto fail = [&](ErrorCode c, const std::string& msg) -> std::unique_ptr<Consumer> {
      if (why) *why = msg;
      if (code) *code = c;
      return nullptr;
    };
    if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 250)
      return fail(ErrorCode::InvalidArgument, "segment name '" + name + "' must be '/name' without further slashes");
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      if (errno == ENOENT) return fail(ErrorCode::NotFound, "no NextBlock segment " + name);
      if (errno == EACCES)
        return fail(ErrorCode::Permission, "segment " + name + " exists but access is denied (owned by another user?)");
      return fail(ErrorCode::System, "cannot open segment " + name + ": " + std::strerror(errno));
    }
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return fail(ErrorCode::System, std::string("cannot stat segment: ") + std::strerror(e));
    }
    if (st.st_uid != geteuid()) {
      ::close(fd);
      return fail(ErrorCode::Permission, "segment " + name + " is owned by uid " + std::to_string(st.st_uid) +
                                             ", not by this user (uid " + std::to_string(geteuid()) + ")");
    }
    if (st.st_size == 0) {  // between the producer's shm_open and its ftruncate
      ::close(fd);
      return fail(ErrorCode::NotReady, "segment " + name + " is empty: its producer is still creating it");
    }
    if (uint64_t(st.st_size) < kHeaderBytes) {
      ::close(fd);
      return fail(ErrorCode::TooSmall,
                  "segment " + name + " is " + std::to_string(st.st_size) +
                      " bytes, smaller than a NextBlock header (producer still starting, or not ours)");
    }
    const uint64_t bytes = uint64_t(st.st_size);
    void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) return fail(ErrorCode::System, std::string("cannot map segment: ") + std::strerror(errno));
    SegmentConfig cfg;
    Layout layout;
    std::string v;
    ErrorCode vc = validate_header(base, bytes, &v, &cfg, &layout);
    if (vc == ErrorCode::NotReady) {
      // Unpublished: still being created, or its producer died while creating it (the PID is
      // written before magic; a dead writer's stores are all visible now).
      const auto* h = static_cast<const SegmentHeader*>(base);
      const int32_t pid = __atomic_load_n(&h->producer_pid, __ATOMIC_RELAXED);
      const uint64_t ticks = load_shared(&h->producer_start_ticks);
      // ticks is written after the PID: until then only the PID's existence can be checked
      const bool dead = pid > 0 && !(ticks == 0 ? process_exists(pid) : process_running_since(pid, ticks));
      ::munmap(base, bytes);
      if (dead)
        return fail(ErrorCode::Stale, "segment " + name + " is stale: its producer (PID " + std::to_string(pid) +
                                          ") died while creating it");
      return fail(vc, "segment " + name + ": " + v);
    }
    if (vc != ErrorCode::Ok) {
      ::munmap(base, bytes);
      return fail(vc, "segment " + name + ": " + v);
    }
    // the producer's region is read-only here: a consumer cannot corrupt what others read
    ::mprotect(base, layout.control_offset, PROT_READ);
    std::unique_ptr<Consumer> c(new Consumer(name, base, bytes, cfg, layout));
    const SegmentHeader* h = c->map_.header();
    c->producer_pid_ = h->producer_pid;
    c->producer_start_ticks_ = load_shared(&h->producer_start_ticks);
    if (!process_running_since(c->producer_pid_, c->producer_start_ticks_))
      return fail(ErrorCode::Stale, "segment " + name + " is stale: its producer (PID " +
                                        std::to_string(c->producer_pid_) + ") is no longer running");
    if (post_replacements) {
      ErrorCode pc = c->claim_poster(why);
      if (pc != ErrorCode::Ok) {
        if (code) *code = pc;
        return nullptr;
      }
    }
    if (code) *code = ErrorCode::Ok;
    return c;
  }

  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;
  ~Consumer() {
    if (poster_) {
      uint64_t me = token_;
      map_.control()->poster_token.compare_exchange_strong(me, 0);
    }
  }

  const std::string& name() const noexcept { return name_; }
  const SegmentHeader& header() const noexcept { return *map_.header(); }
  const ControlPage& control() const noexcept { return *map_.control(); }
  /// The geometry validated at attach (later writes to the header do not change it).
  const SegmentConfig& config() const noexcept { return map_.config(); }
  const Layout& layout() const noexcept { return map_.layout(); }
  int32_t producer_pid() const noexcept { return producer_pid_; }
  bool is_poster() const noexcept { return poster_; }
  uint64_t blocks_written() const noexcept { return map_.header()->blocks_written.load(std::memory_order_acquire); }
  uint64_t events_written() const noexcept { return map_.header()->events_written.load(std::memory_order_acquire); }
  bool producer_closed() const noexcept { return map_.header()->producer_closed.load(std::memory_order_acquire) != 0; }
  bool producer_alive() const noexcept {
    return !producer_closed() && process_running_since(producer_pid_, producer_start_ticks_);
  }

  /// Sleeps until more than `after_count` blocks were written, the producer closed, or
  /// `timeout_ns` passed. Returns blocks_written(). Each futex wait lasts at most
  /// kMaxWakeRegistrationNs and is registered in the control page first, so the producer wakes
  /// this reader and stops paying for wakes soon after the reader is gone (even if killed).
  uint64_t wait_for_blocks(uint64_t after_count, uint64_t timeout_ns) noexcept {
    ControlPage* ctl = map_.control();
    const uint64_t deadline = monotonic_ns() + timeout_ns;
    for (;;) {
      uint64_t n = blocks_written();
      if (n > after_count || producer_closed()) return n;
      const uint64_t now = monotonic_ns();
      if (now >= deadline) return n;
      const uint64_t sleep_ns = std::min<uint64_t>(deadline - now, kMaxWakeRegistrationNs);
      register_wake(ctl->wake_until_ns, now, now + sleep_ns + kWakeSlackNs);
      const uint32_t word = ctl->notify_word.load(std::memory_order_seq_cst);
      n = blocks_written();
      if (n > after_count || producer_closed()) return n;
      timespec ts{time_t(sleep_ns / 1000000000ULL), long(sleep_ns % 1000000000ULL)};
      futex_wait_shared(&ctl->notify_word, word, &ts);
    }
  }

  /// Copies block `index` (0-based count of published blocks). NotYet if not published,
  /// Overwritten if the ring has lapped it (the reader was too slow).
  ReadResult read_block(uint64_t index, uint64_t* seq, uint64_t* arrival_ns, uint64_t* gap_ns,
                        float* out) const noexcept {
    if (index >= blocks_written()) return ReadResult::NotYet;
    BlockSlotHeader* s = map_.block_slot(index);
    const uint64_t want = 2 * index + 2;
    const uint64_t s1 = s->stamp.load(std::memory_order_acquire);
    if (s1 != want) return ReadResult::Overwritten;
    const uint64_t q = load_shared(&s->seq), a = load_shared(&s->arrival_ns), g = load_shared(&s->gap_ns);
    std::memcpy(out, Mapping::block_samples(s), sizeof(float) * map_.block_floats());
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->stamp.load(std::memory_order_relaxed) != want) return ReadResult::Overwritten;
    if (seq) *seq = q;
    if (arrival_ns) *arrival_ns = a;
    if (gap_ns) *gap_ns = g;
    return ReadResult::Ok;
  }

  /// The newest play-out clock reading (see Producer::note_playout); false if the producer has
  /// not played a block yet or kept writing while this read (then try again).
  bool read_playout(uint64_t* seq, uint64_t* at_ns, int64_t* queued_blocks) const noexcept {
    const SegmentHeader* h = map_.header();
    const uint64_t v1 = h->playout_version.load(std::memory_order_acquire);
    if (v1 & 1) return false;
    const uint64_t q = h->playout_seq.load(std::memory_order_relaxed);
    const uint64_t t = h->playout_ns.load(std::memory_order_relaxed);
    const int64_t b = h->playout_queued_blocks.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h->playout_version.load(std::memory_order_relaxed) != v1 || t == 0) return false;
    *seq = q;
    *at_ns = t;
    *queued_blocks = b;
    return true;
  }

  /// Copies event `index`; same results as read_block.
  ReadResult read_event(uint64_t index, EventSlot* out) const noexcept {
    if (index >= events_written()) return ReadResult::NotYet;
    EventSlot* e = map_.event_slot(index);
    const uint64_t want = 2 * index + 2;
    if (e->stamp.load(std::memory_order_acquire) != want) return ReadResult::Overwritten;
    out->kind = __atomic_load_n(&e->kind, __ATOMIC_RELAXED);
    out->outcome = __atomic_load_n(&e->outcome, __ATOMIC_RELAXED);
    out->seq = load_shared(&e->seq);
    out->time_ns = load_shared(&e->time_ns);
    out->detail = __atomic_load_n(&e->detail, __ATOMIC_RELAXED);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e->stamp.load(std::memory_order_relaxed) != want) return ReadResult::Overwritten;
    out->stamp.store(want, std::memory_order_relaxed);
    return ReadResult::Ok;
  }

  /// Posts the two blocks (2*frames*channels floats, block-major) that replace block `seq` and
  /// follow it. Only the poster may post. Also counts as a heartbeat. The slot's version is odd
  /// from the first store to the last, whatever a poster that died mid-post left in it.
  bool post_replacement(uint64_t seq, const float* two_blocks) noexcept {
    if (!poster_) return false;
    ControlPage* ctl = map_.control();
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    const uint64_t begin = (s->version.load(std::memory_order_relaxed) + 1) | 1;  // odd: being written
    s->version.store(begin, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const uint64_t now = monotonic_ns();
    __atomic_store_n(&s->seq, seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->posted_ns, now, __ATOMIC_RELAXED);
    std::memcpy(Mapping::replacement_samples(s), two_blocks, sizeof(float) * 2 * map_.block_floats());
    s->version.store(begin + 1, std::memory_order_release);  // even: complete
    ctl->replacements_posted.fetch_add(1, std::memory_order_relaxed);
    ctl->consumer_heartbeat_ns.store(now, std::memory_order_release);
    return true;
  }

  /// Asks the producer to check, at each pull, whether the block `blocks` past the one played
  /// has arrived, and to bump missing_word (waking a registered sleeper) when it has not. 0 turns
  /// the check off; more than kMaxMissingLookahead is clamped (by both sides).
  void set_missing_lookahead(uint32_t blocks) noexcept {
    map_.control()->missing_lookahead_blocks.store(std::min(blocks, kMaxMissingLookahead), std::memory_order_relaxed);
  }
  uint32_t missing_lookahead() const noexcept {
    return std::min(map_.control()->missing_lookahead_blocks.load(std::memory_order_relaxed), kMaxMissingLookahead);
  }
  /// The futex words a reader sleeps on: every block and event (notify), looked-ahead blocks
  /// found missing (missing). Read their value *before* checking the state they guard.
  std::atomic<uint32_t>* notify_word() noexcept { return &map_.control()->notify_word; }
  std::atomic<uint32_t>* missing_word() noexcept { return &map_.control()->missing_word; }
  /// Registers a sleep on notify_word / missing_word lasting until `until_ns` (at most
  /// kMaxWakeRegistrationNs ahead): only then does the producer issue FUTEX_WAKE.
  void register_notify_wake(uint64_t now_ns, uint64_t until_ns) noexcept {
    register_wake(map_.control()->wake_until_ns, now_ns, until_ns);
  }
  void register_missing_wake(uint64_t now_ns, uint64_t until_ns) noexcept {
    register_wake(map_.control()->missing_wake_until_ns, now_ns, until_ns);
  }
  uint64_t missing_found() const noexcept { return map_.header()->missing_found.load(std::memory_order_relaxed); }
  uint64_t missing_wakes_issued() const noexcept {
    return map_.header()->missing_wakes_issued.load(std::memory_order_relaxed);
  }

  /// Tells the producer the poster is alive even when it has nothing to post.
  void heartbeat() noexcept {
    if (poster_) map_.control()->consumer_heartbeat_ns.store(monotonic_ns(), std::memory_order_release);
  }

  const Mapping& mapping() const noexcept { return map_; }

 private:
  Consumer(std::string name, void* base, uint64_t bytes, const SegmentConfig& cfg, const Layout& layout)
      : name_(std::move(name)), map_(base, bytes, cfg, layout) {}

  /// Raises a registration (wake_until_ns, missing_wake_until_ns) to `until` unless a current,
  /// plausible one already lasts longer; replaces a past or implausibly far one (left by a dead or
  /// hostile writer).
  static void register_wake(std::atomic<uint64_t>& reg, uint64_t now, uint64_t until) noexcept {
    uint64_t cur = reg.load(std::memory_order_seq_cst);
    for (;;) {
      const bool current = cur > now && cur - now <= kMaxWakeRegistrationNs + 2 * kWakeSlackNs;
      const uint64_t want = current && cur > until ? cur : until;
      if (want == cur) {
        reg.fetch_add(0, std::memory_order_seq_cst);  // a full barrier, as a store would be
        return;
      }
      if (reg.compare_exchange_weak(cur, want, std::memory_order_seq_cst)) return;
    }
  }

  ErrorCode claim_poster(std::string* why) {
    ControlPage* ctl = map_.control();
    const uint64_t me = process_token(getpid());
    bool claimed = false;
    for (int attempt = 0; attempt < 8 && !claimed; ++attempt) {
      uint64_t holder = ctl->poster_token.load(std::memory_order_acquire);
      if (holder != 0 && (holder == me || token_alive(holder))) {  // also another consumer of this very process
        if (why)
          *why =
              "another consumer (PID " + std::to_string(token_pid(holder)) + ") already posts replacements to " + name_;
        return ErrorCode::InUse;
      }
      claimed = ctl->poster_token.compare_exchange_strong(holder, me, std::memory_order_acq_rel);
    }
    if (!claimed) {
      if (why) *why = "could not claim the replacement poster role of " + name_;
      return ErrorCode::InUse;
    }
    poster_ = true;
    token_ = me;
    ctl->consumer_heartbeat_ns.store(monotonic_ns(), std::memory_order_release);
    return ErrorCode::Ok;
  }

  std::string name_;
  Mapping map_;
  int32_t producer_pid_ = 0;
  uint64_t producer_start_ticks_ = 0;
  bool poster_ = false;
  uint64_t token_ = 0;
};

}  // namespace nextblock
