// NextBlock shared-memory protocol, the consumer: NextBlock's side (the Python extension
// nextblock._core through csrc/bind_shm.cpp, csrc/nextblock/stream_tap.hpp, the C++ tests and
// benches). Not real-time: attach() opens, maps and validates; the readers copy out under the
// rings' seqlocks and may sleep on the futex words (wait_for_blocks). JackTrip never includes this
// header. The layout is nextblock/shm_layout.hpp. Header-only C++17, libc/librt.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nextblock/shm_layout.hpp"

namespace nextblock {

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
  bool read_playout(PlayoutClock* clock) const noexcept {
    const SegmentHeader* h = map_.header();
    const uint64_t v1 = h->playout_version.load(std::memory_order_acquire);
    if (v1 & 1) return false;
    PlayoutClock r;
    r.seq = h->playout_seq.load(std::memory_order_relaxed);
    r.at_ns = h->playout_ns.load(std::memory_order_relaxed);
    r.queued_blocks = h->playout_queued_blocks.load(std::memory_order_relaxed);
    r.pull_blocks = h->playout_pull_blocks.load(std::memory_order_relaxed);
    r.pull_left = h->playout_pull_left.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h->playout_version.load(std::memory_order_relaxed) != v1 || r.at_ns == 0) return false;
    clamp_pull(r.pull_blocks, r.pull_left);  // an older producer leaves them 0; a hostile one writes anything
    *clock = r;
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
