// NextBlock shared-memory protocol: the one source of truth for the segment layout.
//
// Header-only C++17, depends on libc/librt only. Included unchanged by
//   * csrc/core_module.cpp        (the Python extension nextblock._core), and
//   * JackTrip's NextBlock patch   (third_party/jacktrip_patch/, -I<repo>/csrc).
//
// One POSIX shared-memory object per producer (patched JackTrip), named "/nextblock-<PID>",
// mode 0600. Layout (all offsets from the start of the mapping, every region 64-byte aligned):
//
//   [0, kHeaderBytes)            SegmentHeader: identity, geometry, counters, futex word
//   block ring                   block_ring_slots  x BlockSlot  (seqlock stamp, seq, times, samples)
//   event ring                   event_ring_slots  x EventSlot  (seqlock stamp, kind, outcome, seq, ...)
//   replacement slots            replacement_slots x ReplacementSlot (seqlock version, seq, 2 blocks)
//
// Samples are float32. A block is interleaved, frame-major: sample[frame * channels + ch].
// A replacement holds two blocks (the missing block and the next one, for the cross-fade),
// block-major: sample[(block * frames + frame) * channels + ch].
//
// Concurrency:
//   * Block and event rings: one writer (producer), any number of readers. Each slot carries a
//     stamp 2*i+2 once slot index i is complete (2*i+1 while being written). A reader copies the
//     slot and re-reads the stamp: a changed stamp means the writer lapped it (overrun), never a
//     torn read. The writer never waits for readers.
//   * Replacement slots: one poster (the consumer that claimed poster_pid), one taker (the
//     producer's audio thread). Slot = seq % replacement_slots, guarded by a seqlock version
//     (odd while being written). The taker copies and re-checks; a torn or mismatching slot is
//     refused and the producer plays its own fallback. The taker never waits.
//   * Wake-up: notify_word (a shared futex word) is bumped on every block and event; the producer
//     issues FUTEX_WAKE only when a reader has registered in `waiters`. Readers sleep in
//     FUTEX_WAIT with a timeout.
//
// Real-time discipline (producer side after create()): no allocation, no locks, no waiting;
// publish_block / post_event / take_replacement are wait-free (one optional FUTEX_WAKE syscall
// when somebody sleeps).
#pragma once

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
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
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint32_t kSampleFormatFloat32 = 1;
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kAlign = 64;

inline constexpr uint32_t kMinSampleRateHz = 8000;
inline constexpr uint32_t kMaxSampleRateHz = 384000;
inline constexpr uint32_t kMaxFramesPerBlock = 8192;
inline constexpr uint32_t kMaxChannels = 64;
inline constexpr uint32_t kMaxRingSlots = 1u << 16;
inline constexpr uint32_t kMaxReplacementSlots = 64;
inline constexpr uint64_t kConsumerTimeoutNs = 1000000000ULL;  // heartbeat older than this: dead

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

/// The segment name a producer with process id `pid` uses: "/nextblock-<pid>".
inline std::string segment_name_for_pid(long pid) { return "/nextblock-" + std::to_string(pid); }

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

inline long futex_wait_shared(std::atomic<uint32_t>* word, uint32_t expected, const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, timeout, nullptr, 0);
}

inline long futex_wake_shared(std::atomic<uint32_t>* word) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

inline constexpr uint64_t align_up(uint64_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }
inline constexpr bool is_power_of_two(uint64_t n) noexcept { return n && !(n & (n - 1)); }

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

/// Fixed part of the segment. Identity and geometry are written once before `magic` is
/// published; the runtime fields after them are atomics, each group on its own cache line.
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
  uint64_t replacement_slot_bytes;
  uint64_t replacement_offset;
  uint64_t total_bytes;
  // --- runtime ---
  alignas(64) std::atomic<uint64_t> blocks_written;
  alignas(64) std::atomic<uint64_t> events_written;
  alignas(64) std::atomic<uint32_t> notify_word;  ///< futex word: bumped on every block and event
  std::atomic<uint32_t> waiters;                  ///< readers currently sleeping on notify_word
  std::atomic<uint32_t> producer_closed;          ///< 1 once the producer has shut down
  alignas(64) std::atomic<uint64_t> replacements_posted;
  std::atomic<uint64_t> replacements_used;
  std::atomic<uint64_t> replacements_missed;  ///< taken for a seq with no (matching) replacement
  std::atomic<uint64_t> replacements_torn;    ///< refused because the poster was mid-write
  alignas(64) std::atomic<int32_t> poster_pid;  ///< the one consumer allowed to post (0: none)
  std::atomic<uint64_t> consumer_heartbeat_ns;  ///< monotonic_ns() of the poster's last sign of life
};
static_assert(sizeof(SegmentHeader) <= kHeaderBytes, "header must fit its page");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "64-bit atomics must be lock-free for shared memory");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "32-bit atomics must be lock-free for shared memory");

/// Byte sizes and offsets implied by a configuration.
struct Layout {
  uint64_t block_slot_bytes = 0, block_ring_offset = 0;
  uint64_t event_slot_bytes = 0, event_ring_offset = 0;
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
  l.replacement_slot_bytes = align_up(sizeof(ReplacementSlotHeader) + 2 * block_floats * sizeof(float));
  l.replacement_offset = l.event_ring_offset + l.event_slot_bytes * c.event_ring_slots;
  l.total_bytes = l.replacement_offset + l.replacement_slot_bytes * c.replacement_slots;
  if (out) *out = l;
  return ErrorCode::Ok;
}

/// Validates the identity and geometry of a segment image of `size_bytes` bytes (untrusted
/// input: never reads past `size_bytes`). Returns Ok or the first problem, with a reason.
inline ErrorCode validate_header(const void* data, uint64_t size_bytes, std::string* why) {
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
  if (h.magic != kMagic) return fail(ErrorCode::BadMagic, "not a NextBlock segment (wrong magic number)");
  if (h.layout_version != kLayoutVersion)
    return fail(ErrorCode::VersionMismatch, "segment has layout version " + std::to_string(h.layout_version) +
                                                 ", this NextBlock speaks version " + std::to_string(kLayoutVersion) +
                                                 " (update JackTrip's patch or NextBlock so they match)");
  if (h.header_bytes != kHeaderBytes)
    return fail(ErrorCode::BadGeometry, "header size " + std::to_string(h.header_bytes) + " != " + std::to_string(kHeaderBytes));
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
      h.replacement_slot_bytes != l.replacement_slot_bytes || h.replacement_offset != l.replacement_offset ||
      h.total_bytes != l.total_bytes)
    return fail(ErrorCode::BadGeometry, "ring sizes and offsets in the header do not add up");
  if (h.total_bytes > size_bytes)
    return fail(ErrorCode::TooSmall, "segment declares " + std::to_string(h.total_bytes) + " bytes but has only " +
                                         std::to_string(size_bytes));
  if (h.producer_pid <= 0) return fail(ErrorCode::BadGeometry, "producer PID " + std::to_string(h.producer_pid) + " is invalid");
  if (why) why->clear();
  return ErrorCode::Ok;
}

// ---------------------------------------------------------------------------------------------
// A mapped segment (shared by producer and consumer)
// ---------------------------------------------------------------------------------------------

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, uint64_t bytes) : base_(static_cast<uint8_t*>(base)), bytes_(bytes) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base_) ::munmap(base_, bytes_);
  }
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  BlockSlotHeader* block_slot(uint64_t index) const noexcept {
    const SegmentHeader* h = header();
    return reinterpret_cast<BlockSlotHeader*>(base_ + h->block_ring_offset +
                                              (index & (h->block_ring_slots - 1)) * h->block_slot_bytes);
  }
  static float* block_samples(BlockSlotHeader* s) noexcept { return reinterpret_cast<float*>(s + 1); }
  EventSlot* event_slot(uint64_t index) const noexcept {
    const SegmentHeader* h = header();
    return reinterpret_cast<EventSlot*>(base_ + h->event_ring_offset + (index & (h->event_ring_slots - 1)) * h->event_slot_bytes);
  }
  ReplacementSlotHeader* replacement_slot(uint64_t seq) const noexcept {
    const SegmentHeader* h = header();
    return reinterpret_cast<ReplacementSlotHeader*>(base_ + h->replacement_offset +
                                                    (seq % h->replacement_slots) * h->replacement_slot_bytes);
  }
  static float* replacement_samples(ReplacementSlotHeader* s) noexcept { return reinterpret_cast<float*>(s + 1); }
  uint8_t* base() const noexcept { return base_; }
  uint64_t bytes() const noexcept { return bytes_; }

 private:
  uint8_t* base_ = nullptr;
  uint64_t bytes_ = 0;
};

/// Wakes sleeping readers after a block or event was published (one syscall only if needed).
inline void notify_readers(SegmentHeader* h) noexcept {
  h->notify_word.fetch_add(1, std::memory_order_seq_cst);
  if (h->waiters.load(std::memory_order_seq_cst) != 0) futex_wake_shared(&h->notify_word);
}

// ---------------------------------------------------------------------------------------------
// Producer (patched JackTrip; also the Python test/demo producer)
// ---------------------------------------------------------------------------------------------

class Producer {
 public:
  /// Creates (or safely replaces a stale) segment `name`. Not real-time: call at start-up.
  /// Returns nullptr and fills `why` / `code` on failure.
  static std::unique_ptr<Producer> create(const std::string& name, const SegmentConfig& cfg, std::string* why,
                                          ErrorCode* code = nullptr) {
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
            if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == kMagic && h->producer_pid != getpid() &&
                process_exists(h->producer_pid) && process_start_ticks(h->producer_pid) == h->producer_start_ticks)
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
    if (fd < 0) return fail(errno == EACCES ? ErrorCode::Permission : ErrorCode::System,
                            "cannot create segment " + name + ": " + std::strerror(errno));
    ::fchmod(fd, 0600);  // independent of the umask
    if (::ftruncate(fd, off_t(l.total_bytes)) != 0) {
      int e = errno;
      ::close(fd);
      ::shm_unlink(name.c_str());
      return fail(ErrorCode::System, "cannot size segment " + name + ": " + std::strerror(e));
    }
    void* base = ::mmap(nullptr, l.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
      int e = errno;
      ::shm_unlink(name.c_str());
      return fail(ErrorCode::System, "cannot map segment " + name + ": " + std::strerror(e));
    }
    std::memset(base, 0, l.total_bytes);  // also pre-faults every page before real-time use
    ::mlock(base, l.total_bytes);         // best effort: keep the audio path free of page faults
    auto* h = new (base) SegmentHeader();  // constructs the atomics in place
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
    h->replacement_slot_bytes = l.replacement_slot_bytes;
    h->replacement_offset = l.replacement_offset;
    h->total_bytes = l.total_bytes;
    __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);  // published: attachers may validate now
    if (code) *code = ErrorCode::Ok;
    return std::unique_ptr<Producer>(new Producer(name, base, l.total_bytes));
  }

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  /// Marks the segment closed, wakes readers and removes the name.
  ~Producer() {
    SegmentHeader* h = map_.header();
    h->producer_closed.store(1, std::memory_order_release);
    notify_readers(h);
    ::shm_unlink(name_.c_str());
  }

  const std::string& name() const noexcept { return name_; }
  const SegmentHeader& header() const noexcept { return *map_.header(); }
  uint32_t frames_per_block() const noexcept { return map_.header()->frames_per_block; }
  uint32_t channels() const noexcept { return map_.header()->channels; }

  /// Publishes one received block (frames*channels interleaved floats). Wait-free; called from
  /// the network receive thread for every block that arrives.
  void publish_block(uint64_t seq, const float* interleaved, uint64_t arrival_ns, uint64_t gap_ns) noexcept {
    SegmentHeader* h = map_.header();
    const uint64_t i = h->blocks_written.load(std::memory_order_relaxed);  // single writer
    BlockSlotHeader* s = map_.block_slot(i);
    s->stamp.store(2 * i + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s->seq = seq;
    s->arrival_ns = arrival_ns;
    s->gap_ns = gap_ns;
    std::memcpy(Mapping::block_samples(s), interleaved, sizeof(float) * h->frames_per_block * h->channels);
    s->stamp.store(2 * i + 2, std::memory_order_release);
    h->blocks_written.store(i + 1, std::memory_order_release);
    notify_readers(h);
  }

  /// Records an event (underrun, skip, late, ...) with the sequence number concerned. Wait-free.
  /// Must be called from one thread at a time (in JackTrip: the audio thread).
  void post_event(EventKind kind, uint64_t seq, Outcome outcome, int64_t detail = 0, uint64_t time_ns = 0) noexcept {
    SegmentHeader* h = map_.header();
    const uint64_t i = h->events_written.load(std::memory_order_relaxed);
    EventSlot* e = map_.event_slot(i);
    e->stamp.store(2 * i + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e->kind = uint32_t(kind);
    e->outcome = uint32_t(outcome);
    e->seq = seq;
    e->time_ns = time_ns ? time_ns : monotonic_ns();
    e->detail = detail;
    e->stamp.store(2 * i + 2, std::memory_order_release);
    h->events_written.store(i + 1, std::memory_order_release);
    notify_readers(h);
  }

  /// Copies the replacement posted for exactly `seq` (2*frames*channels floats, block-major) into
  /// `out_two_blocks`. Returns false – and leaves `out_two_blocks` untouched or partially written –
  /// when none is posted for that seq or the poster was mid-write; the caller then plays its own
  /// fallback. Wait-free; called from the audio thread.
  bool take_replacement(uint64_t seq, float* out_two_blocks) noexcept {
    SegmentHeader* h = map_.header();
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    const uint64_t v1 = s->version.load(std::memory_order_acquire);
    if (v1 & 1) {
      h->replacements_torn.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (v1 == 0 || s->seq != seq) {
      h->replacements_missed.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::memcpy(out_two_blocks, Mapping::replacement_samples(s), sizeof(float) * 2 * h->frames_per_block * h->channels);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->version.load(std::memory_order_relaxed) != v1 || s->seq != seq) {
      h->replacements_torn.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    h->replacements_used.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  /// True when a consumer holds the poster role and showed a sign of life within the last second.
  bool consumer_alive(uint64_t now_ns) const noexcept {
    const SegmentHeader* h = map_.header();
    if (h->poster_pid.load(std::memory_order_acquire) == 0) return false;
    const uint64_t beat = h->consumer_heartbeat_ns.load(std::memory_order_acquire);
    return beat != 0 && now_ns >= beat ? (now_ns - beat) < kConsumerTimeoutNs : beat != 0;
  }

 private:
  Producer(std::string name, void* base, uint64_t bytes) : name_(std::move(name)), map_(base, bytes) {}
  std::string name_;
  Mapping map_;
};

// ---------------------------------------------------------------------------------------------
// Consumer (NextBlock's predictor, the online learner, tests)
// ---------------------------------------------------------------------------------------------

enum class ReadResult { Ok, NotYet, Overwritten };

class Consumer {
 public:
  /// Attaches to segment `name`. With `post_replacements`, claims the single poster role (fails
  /// with InUse while another live consumer holds it). Not real-time.
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
      if (errno == EACCES) return fail(ErrorCode::Permission, "segment " + name + " exists but access is denied (owned by another user?)");
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
    if (uint64_t(st.st_size) < kHeaderBytes) {
      ::close(fd);
      return fail(ErrorCode::TooSmall, "segment " + name + " is " + std::to_string(st.st_size) +
                                           " bytes, smaller than a NextBlock header (producer still starting, or not ours)");
    }
    void* base = ::mmap(nullptr, uint64_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) return fail(ErrorCode::System, std::string("cannot map segment: ") + std::strerror(errno));
    std::unique_ptr<Consumer> c(new Consumer(name, base, uint64_t(st.st_size)));
    std::string v;
    ErrorCode vc = validate_header(base, uint64_t(st.st_size), &v);
    if (vc != ErrorCode::Ok) return fail(vc, "segment " + name + ": " + v);
    const SegmentHeader* h = c->map_.header();
    if (!process_exists(h->producer_pid) || process_start_ticks(h->producer_pid) != h->producer_start_ticks)
      return fail(ErrorCode::Stale, "segment " + name + " is stale: its producer (PID " + std::to_string(h->producer_pid) +
                                        ") is no longer running");
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
      int32_t me = int32_t(getpid());
      map_.header()->poster_pid.compare_exchange_strong(me, 0);
    }
  }

  const std::string& name() const noexcept { return name_; }
  const SegmentHeader& header() const noexcept { return *map_.header(); }
  bool is_poster() const noexcept { return poster_; }
  uint64_t blocks_written() const noexcept { return map_.header()->blocks_written.load(std::memory_order_acquire); }
  uint64_t events_written() const noexcept { return map_.header()->events_written.load(std::memory_order_acquire); }
  bool producer_closed() const noexcept { return map_.header()->producer_closed.load(std::memory_order_acquire) != 0; }
  bool producer_alive() const noexcept {
    const SegmentHeader* h = map_.header();
    return !producer_closed() && process_exists(h->producer_pid) &&
           process_start_ticks(h->producer_pid) == h->producer_start_ticks;
  }

  /// Sleeps until more than `after_count` blocks were written, the producer closed, or
  /// `timeout_ns` passed. Returns blocks_written().
  uint64_t wait_for_blocks(uint64_t after_count, uint64_t timeout_ns) noexcept {
    SegmentHeader* h = map_.header();
    const uint64_t deadline = monotonic_ns() + timeout_ns;
    for (;;) {
      uint64_t n = blocks_written();
      if (n > after_count || producer_closed()) return n;
      const uint64_t now = monotonic_ns();
      if (now >= deadline) return n;
      h->waiters.fetch_add(1, std::memory_order_seq_cst);
      const uint32_t word = h->notify_word.load(std::memory_order_seq_cst);
      n = blocks_written();
      if (n > after_count || producer_closed()) {
        h->waiters.fetch_sub(1, std::memory_order_seq_cst);
        return n;
      }
      const uint64_t left = deadline - now;
      timespec ts{time_t(left / 1000000000ULL), long(left % 1000000000ULL)};
      futex_wait_shared(&h->notify_word, word, &ts);
      h->waiters.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  /// Copies block `index` (0-based count of published blocks). NotYet if not published,
  /// Overwritten if the ring has lapped it (the reader was too slow).
  ReadResult read_block(uint64_t index, uint64_t* seq, uint64_t* arrival_ns, uint64_t* gap_ns, float* out) const noexcept {
    const SegmentHeader* h = map_.header();
    if (index >= blocks_written()) return ReadResult::NotYet;
    BlockSlotHeader* s = map_.block_slot(index);
    const uint64_t want = 2 * index + 2;
    const uint64_t s1 = s->stamp.load(std::memory_order_acquire);
    if (s1 != want) return ReadResult::Overwritten;
    const uint64_t q = s->seq, a = s->arrival_ns, g = s->gap_ns;
    std::memcpy(out, Mapping::block_samples(s), sizeof(float) * h->frames_per_block * h->channels);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->stamp.load(std::memory_order_relaxed) != want) return ReadResult::Overwritten;
    if (seq) *seq = q;
    if (arrival_ns) *arrival_ns = a;
    if (gap_ns) *gap_ns = g;
    return ReadResult::Ok;
  }

  /// Copies event `index`; same results as read_block.
  ReadResult read_event(uint64_t index, EventSlot* out) const noexcept {
    if (index >= events_written()) return ReadResult::NotYet;
    EventSlot* e = map_.event_slot(index);
    const uint64_t want = 2 * index + 2;
    if (e->stamp.load(std::memory_order_acquire) != want) return ReadResult::Overwritten;
    out->kind = e->kind;
    out->outcome = e->outcome;
    out->seq = e->seq;
    out->time_ns = e->time_ns;
    out->detail = e->detail;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e->stamp.load(std::memory_order_relaxed) != want) return ReadResult::Overwritten;
    out->stamp.store(want, std::memory_order_relaxed);
    return ReadResult::Ok;
  }

  /// Posts the two blocks (2*frames*channels floats, block-major) that replace block `seq` and
  /// follow it. Only the poster may post. Also counts as a heartbeat.
  bool post_replacement(uint64_t seq, const float* two_blocks) noexcept {
    if (!poster_) return false;
    SegmentHeader* h = map_.header();
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    const uint64_t v = s->version.load(std::memory_order_relaxed);
    s->version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s->seq = seq;
    s->posted_ns = monotonic_ns();
    std::memcpy(Mapping::replacement_samples(s), two_blocks, sizeof(float) * 2 * h->frames_per_block * h->channels);
    s->version.store(v + 2, std::memory_order_release);
    h->replacements_posted.fetch_add(1, std::memory_order_relaxed);
    h->consumer_heartbeat_ns.store(s->posted_ns, std::memory_order_release);
    return true;
  }

  /// Tells the producer the poster is alive even when it has nothing to post.
  void heartbeat() noexcept {
    if (poster_) map_.header()->consumer_heartbeat_ns.store(monotonic_ns(), std::memory_order_release);
  }

  const Mapping& mapping() const noexcept { return map_; }

 private:
  Consumer(std::string name, void* base, uint64_t bytes) : name_(std::move(name)), map_(base, bytes) {}

  ErrorCode claim_poster(std::string* why) {
    SegmentHeader* h = map_.header();
    const int32_t me = int32_t(getpid());
    bool claimed = false;
    for (int attempt = 0; attempt < 8 && !claimed; ++attempt) {
      int32_t holder = h->poster_pid.load(std::memory_order_acquire);
      if (holder != 0 && process_exists(holder)) {  // also another consumer of this very process
        if (why) *why = "another consumer (PID " + std::to_string(holder) + ") already posts replacements to " + name_;
        return ErrorCode::InUse;
      }
      claimed = h->poster_pid.compare_exchange_strong(holder, me, std::memory_order_acq_rel);
    }
    if (!claimed) {
      if (why) *why = "could not claim the replacement poster role of " + name_;
      return ErrorCode::InUse;
    }
    poster_ = true;
    h->consumer_heartbeat_ns.store(monotonic_ns(), std::memory_order_release);
    return ErrorCode::Ok;
  }

  std::string name_;
  Mapping map_;
  bool poster_ = false;
};

}  // namespace nextblock
