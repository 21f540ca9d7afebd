// NextBlock shared-memory protocol, the producer: the only part of NextBlock that JackTrip
// includes (its patch: Regulator.cpp and NextBlockBridge.cpp; -I<repo>/csrc). It includes the
// layout (nextblock/shm_layout.hpp) and nothing of the consumer side. Header-only C++17, libc/librt.
//
// Real-time rules. Producer::create(), mark_closed() and the destructor are not real-time
// (shm_open, ftruncate, mmap, mlock, memset, allocation, an unconditional FUTEX_WAKE, shm_unlink;
// call them at start-up and shut-down). Everything else, called on JackTrip's receive thread and
// audio thread, keeps to these rules, and a change must too:
//   * No allocation, no locks, no waiting: every call is wait-free. Everything is sized at
//     create(): the mapping (memset, so every page is pre-faulted, and mlocked, best effort), the
//     private counters, the fixed history of received seqs. Nothing spins on or retries against a
//     consumer: a slot being written is reported (Take::Torn), not waited for.
//   * Bounded copies only: publish_block copies exactly frames * channels floats into its slot;
//     take_replacement / peek_replacement copy exactly 2 * frames * channels floats out (one pass
//     of copy_playable, which also validates). Every size and address comes from the geometry
//     cached at create() (Mapping), never from the segment; a consumer-written index is reduced
//     modulo that geometry (seq % replacement_slots, index & (slots - 1)).
//   * Never trusts the segment: nothing the producer wrote is read back (its ring indices and
//     counters are private copies); the consumer-written words it reads (a replacement slot's
//     version, seq and samples, the wake registrations, missing_lookahead_blocks, the poster token
//     and heartbeat) are bounded or validated, and any value is harmless.
//   * System calls: at most one FUTEX_WAKE per published block or event (notify_word), one per
//     missing block (missing_word) and one per gap a published block closes (missing_word, from
//     publish_block), and only while a reader's wake registration is current and plausible; none
//     while nobody sleeps. Clock reads are clock_gettime(CLOCK_MONOTONIC) (vDSO on
//     Linux x86-64 / arm64, no system call).
//   * Under JackTrip's lock (a buffer's QMutex, held around its read path): no system call. With
//     defer_wakes(true), post_event() and note_playout() only mark their FUTEX_WAKE pending and
//     flush_wakes() issues it after the lock is left. take_peeked() is two loads, so the copy and
//     check of peek_replacement() can run before the lock; take_replacement() (a bounded copy, no
//     system call) is what runs under it when the slot changed since the peek. publish_block()
//     always wakes at once: call it outside any lock (JackTrip's network receive thread).
//   * Threads: publish_block() on one receive thread; post_event(), take_replacement(),
//     peek_replacement() / take_peeked(), note_playout(), flush_wakes() on one audio thread;
//     consumer_alive() (loads of consumer-written words only) on either (JackTrip: the receive
//     thread). What both threads touch (the wake count, the received-seq history) is atomic
//     (ThreadSanitizer-checked: csrc/tests/shm_stress.cpp threads, tests/test_jacktrip_bridge.py).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nextblock/shm_layout.hpp"

namespace nextblock {

// ---------------------------------------------------------------------------------------------
// What the producer takes and gives: its results, its stream's identity, the replacement check
// ---------------------------------------------------------------------------------------------

/// Result of Producer::take_replacement.
enum class Take : uint32_t {
  Taken = 0,    ///< a valid replacement for exactly this seq was copied out
  Missing = 1,  ///< none posted for this seq (or the slot holds another seq)
  Torn = 2,     ///< the poster was mid-write (or died mid-write)
  Refused = 3,  ///< posted, complete, but a sample is non-finite or outside [-1, 1]
};

/// Who a stream is, for people and tools that list a process's streams (not used by the protocol).
struct StreamIdentity {
  std::string stream_name;   ///< e.g. JackTrip's client name for this peer
  std::string peer_address;  ///< the peer's address as text
  uint32_t local_port = 0;   ///< the UDP port this stream is received on
};

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
    return count_take(playable);
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
    ReplacementSlotHeader* s = map_.replacement_slot(seq);
    if (peeked_version == 0 || s->version.load(std::memory_order_acquire) != peeked_version ||
        load_shared(&s->seq) != seq)
      return Take::Torn;
    return count_take(playable);
  }

  /// The play-out clock: the audio thread just played (or concealed) block `seq` at `now_ns`,
  /// with `queued_blocks` later blocks already received. Consumers derive from it when each
  /// later seq will be due (seq + k at about now_ns + k block periods; PlayoutClock::due_ns).
  /// A producer whose audio callback plays several of the peer's blocks at once (a 128-frame hub
  /// and a 32-frame client: four per callback) calls it for each of them, with `pull_blocks` the
  /// number its pull plays and `pull_left` how many it plays after `seq`; then the blocks after
  /// the pull are due a whole callback later, not one block period. Wait-free; one thread.
  ///
  /// Then the missing-block wake: if a consumer asked for it (missing_lookahead_blocks = k > 0),
  /// block seq + k is checked once; if it has not been published, missing_word is bumped and,
  /// while a registration in missing_wake_until_ns is current, one FUTEX_WAKE is issued. A
  /// just-in-time consumer sleeps on that word instead of waking at every block, so that its idle
  /// cost follows the losses. At most one check per pull, one syscall per missing block.
  void note_playout(uint64_t seq, uint64_t now_ns, int64_t queued_blocks, uint32_t pull_blocks = 1,
                    uint32_t pull_left = 0) noexcept {
    SegmentHeader* h = map_.header();
    clamp_pull(pull_blocks, pull_left);
    h->playout_version.store(++playout_version_, std::memory_order_relaxed);  // odd
    std::atomic_thread_fence(std::memory_order_release);
    h->playout_seq.store(seq, std::memory_order_relaxed);
    h->playout_ns.store(now_ns, std::memory_order_relaxed);
    h->playout_queued_blocks.store(queued_blocks, std::memory_order_relaxed);
    h->playout_pull_blocks.store(pull_blocks, std::memory_order_relaxed);
    h->playout_pull_left.store(pull_left, std::memory_order_relaxed);
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

  /// The end of take_replacement() and take_peeked(): an untorn copy is counted (and returned) as
  /// used, or as refused when its check failed.
  Take count_take(bool playable) noexcept {
    SegmentHeader* h = map_.header();
    if (!playable) {
      h->replacements_refused.store(++refused_, std::memory_order_relaxed);
      return Take::Refused;
    }
    h->replacements_used.store(++used_, std::memory_order_relaxed);
    return Take::Taken;
  }

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

}  // namespace nextblock
