// NextBlock shared-memory protocol, the layout: the one source of truth for the segment.
//
// Header-only C++17, depends on libc/librt only. The protocol is three headers by role:
//   * nextblock/shm_layout.hpp    (this one) what both sides share: constants, the POD structs of
//                                 the segment, compute_layout / validate_header, error codes, the
//                                 recovery fade, process identity, futex words, Mapping;
//   * nextblock/shm_producer.hpp  the real-time Producer (JackTrip's patch includes only this one,
//                                 and through it this header; its real-time rules are at its top);
//   * nextblock/shm_consumer.hpp  the non-real-time Consumer (csrc/bind_shm.cpp for nextblock._core,
//                                 csrc/nextblock/stream_tap.hpp, the C++ tests and benches).
//
// One POSIX shared-memory object per received stream, mode 0600: "/nextblock-<PID>" for a
// point-to-point JackTrip, "/nextblock-<PID>-<PORT>" for each worker of a hub server. Layout
// version kLayoutVersion (3); all offsets from the start of the mapping:
//
//   producer region (written only by the producer; consumers map it read-only)
//     [0, kHeaderBytes)            SegmentHeader: identity, geometry, producer counters, play-out clock
//     block ring                   block_ring_slots  x BlockSlot  (seqlock stamp, seq, times, samples)
//     event ring                   event_ring_slots  x EventSlot  (seqlock stamp, kind, outcome, seq, ...)
//   consumer region (page aligned at control_offset; consumers map it read-write)
//     [control_offset, +kControlBytes)  ControlPage: futex words, wake registrations, missing-block
//                                       lookahead, poster token, heartbeat
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
//   * bounds every index it derives from consumer-written memory by its cached geometry (Mapping),
//     copies a replacement out of the segment before looking at it, and refuses it unless every
//     sample is finite and within [-1, 1] (Take::Refused: the caller plays its own fallback);
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
//     missing_word / missing_wake_until_ns work the same way for looked-ahead blocks found missing.
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
#include <string>

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
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
/// The most blocks one pull may say it plays (PlayoutClock::pull_blocks): a 1024-frame callback
/// of a 16-frame peer; a larger value read from a segment is taken as 1.
inline constexpr uint32_t kMaxPullBlocks = 64;
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

/// The pull fields as the protocol allows them: 0 or more than kMaxPullBlocks blocks per pull
/// (a producer older than the fields, or a hostile one) is one; `left` is below `blocks`.
inline void clamp_pull(uint32_t& blocks, uint32_t& left) noexcept {
  if (blocks == 0 || blocks > kMaxPullBlocks) blocks = 1;
  if (left >= blocks) left = blocks - 1;
}

/// One play-out clock reading (SegmentHeader's playout_* fields, Producer::note_playout): block
/// `seq` was played at `at_ns` by a pull that plays `pull_blocks` blocks back to back, `pull_left`
/// of them after `seq`; the next pull comes `pull_blocks` block periods later. A producer whose
/// local period equals the peer's (or is longer: one pull every few periods) plays one block per
/// pull, and the clock is linear: seq + k is due k periods after at_ns.
struct PlayoutClock {
  uint64_t seq = 0;
  uint64_t at_ns = 0;
  int64_t queued_blocks = 0;
  uint32_t pull_blocks = 1;  ///< at least 1 (a reading of 0 is taken as 1)
  uint32_t pull_left = 0;    ///< below pull_blocks

  /// When block `s` is played: at its pull, the pulls `pull_blocks` periods apart, the last block
  /// of the reading's pull being seq + pull_left. Blocks of the reading's own pull are due at at_ns.
  int64_t due_ns(int64_t s, int64_t period_ns) const noexcept {
    const int64_t r = pull_blocks ? int64_t(pull_blocks) : 1;
    const int64_t last = int64_t(seq) + int64_t(pull_left);
    const int64_t k = s - last + r - 1;  // pulls after this one, times r (floored below)
    const int64_t pulls = k >= 0 ? k / r : -((-k + r - 1) / r);
    return int64_t(at_ns) + pulls * r * period_ns;
  }
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
  /// Blocks the pull that played playout_seq plays (a hub at 128 frames pulls four 32-frame blocks
  /// of a client back to back, then none for a period); 0 (a producer older than this field) or 1:
  /// one block per pull. See PlayoutClock.
  std::atomic<uint32_t> playout_pull_blocks;
  std::atomic<uint32_t> playout_pull_left;  ///< blocks that same pull plays after playout_seq
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

}  // namespace nextblock
