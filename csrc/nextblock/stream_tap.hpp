// nextblock/stream_tap.hpp — consumer side: new blocks of a segment straight into a context ring.
//
// The live predictor keeps, per stream, the last `slots` blocks of every channel indexed by
// sequence number, in a *mirrored* channel-major buffer (block `seq` lives at slot seq % slots and
// again at slot + slots, so that any context is one contiguous slice; see
// python/nextblock/runtime/context.py). StreamTap::poll() copies every block published since the
// last call into that buffer (transposed from the segment's frame-major layout), marks the slots
// as received, records each block's slack against the play-out clock (how long before it is due
// it arrived) and reads the clock — one call per wake-up, no allocation, nothing trusted from the
// segment beyond the seqlock-checked copy. Header-only, C++17, uses only shm_consumer.hpp.
//
// Not real-time-thread code: the caller is NextBlock's predictor thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <vector>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>

#include "nextblock/shm_consumer.hpp"

namespace nextblock {

/// Where poll() writes (all owned by the caller, sized at construction).
struct TapRing {
  float* samples = nullptr;           ///< [channels][2 * slots * frames] float32, mirrored
  int64_t* seq_of_slot = nullptr;     ///< [slots]
  uint8_t* source_of_slot = nullptr;  ///< [slots]; kReceived is written for every copied block
  uint64_t slots = 0;                 ///< power of two
  int64_t* slacks = nullptr;          ///< [slack_slots] ring of due_ns - arrival_ns
  uint64_t slack_slots = 0;
};

struct TapResult {
  uint64_t blocks = 0;      ///< blocks copied by this call
  uint64_t skipped = 0;     ///< blocks the producer overwrote before they were read
  int64_t newest_seq = -1;  ///< highest seq copied by this call (-1: none)
  uint64_t newest_arrival_ns = 0;
  uint64_t slacks_recorded = 0;  ///< slacks written by this call (into the slack ring)
  bool have_clock = false;
  PlayoutClock clock;  ///< the newest reading (when have_clock)
};

/// Whether a play-out clock read at `at_ns` is fresh at `now_ns`: at most `stale_ns` old. A reading
/// newer than `now_ns` is fresh too: the producer pulls every period, so it often writes its clock
/// between the moment a caller reads its own time and the moment it reads the clock (calling that
/// stale woke a just-in-time waiter for nothing; Python's Schedule.clock_fresh agrees). Only a
/// reading more than `stale_ns` in the future (no clock of this machine's) is stale.
inline bool clock_fresh(uint64_t now_ns, uint64_t at_ns, uint64_t stale_ns) noexcept {
  return at_ns > now_ns ? at_ns - now_ns <= stale_ns : now_ns - at_ns <= stale_ns;
}

class StreamTap {
 public:
  static constexpr uint8_t kReceived = 1;  // runtime/context.py RECEIVED

  /// `consumer` gives the geometry; poll() must be given the same consumer every time.
  StreamTap(const Consumer& consumer, TapRing ring, uint64_t next_index) : ring_(ring), next_(next_index) {
    const auto& g = consumer.config();
    frames_ = g.frames_per_block;
    channels_ = g.channels;
    block_.resize(size_t(frames_) * channels_);
  }

  uint64_t next_index() const noexcept { return next_; }
  uint64_t last_beat_ns = 0;  ///< when wait_for_decision last wrote the poster's heartbeat
  uint64_t slack_count() const noexcept { return slack_n_; }
  void reset_slacks() noexcept { slack_n_ = 0; }

  /// Copies every block published since the last call (at most `max_blocks`, the newest ones if
  /// more were published) into the ring and reads the play-out clock. `stale_ns`: a clock older
  /// than this does not measure slacks; neither are blocks 64 or more seqs older than the clock.
  /// pump() then take(): what arrived since the last take().
  TapResult poll(const Consumer& c, uint64_t now_ns, uint64_t period_ns, uint64_t stale_ns,
                 uint64_t max_blocks) noexcept {
    pump(c, now_ns, period_ns, stale_ns, max_blocks);
    return take();
  }

  /// What pump() gathered since the last take() (counts reset; the clock is the newest reading).
  TapResult take() noexcept {
    TapResult r = acc_;
    acc_.blocks = acc_.skipped = acc_.slacks_recorded = 0;
    acc_.newest_seq = -1;
    acc_.newest_arrival_ns = 0;
    return r;
  }

  /// The newest seq received so far (-1: none) and the newest clock reading (have_clock false: none).
  int64_t newest_seq() const noexcept { return newest_; }
  const TapResult& pending() const noexcept { return acc_; }
  bool received(int64_t seq) const noexcept {
    const uint64_t slot = uint64_t(seq) & (ring_.slots - 1);
    return ring_.seq_of_slot[slot] == seq && ring_.source_of_slot[slot] == kReceived;
  }

  /// Reads the clock and copies new blocks into the ring, adding to what take() returns.
  void pump(const Consumer& c_, uint64_t now_ns, uint64_t period_ns, uint64_t stale_ns, uint64_t max_blocks) noexcept {
    TapResult& r = acc_;
    PlayoutClock reading;
    bool got_clock = false;
    for (int attempt = 0; attempt < 4 && !got_clock; ++attempt) got_clock = c_.read_playout(&reading);
    if (got_clock) {
      r.have_clock = true;
      r.clock = reading;
    }
    const PlayoutClock& clock = r.clock;
    const uint64_t seq = clock.seq;
    const bool fresh = r.have_clock && clock_fresh(now_ns, clock.at_ns, stale_ns);
    const uint64_t written = c_.blocks_written();
    if (written <= next_) return;
    const uint64_t slots_in_segment = c_.config().block_ring_slots;
    uint64_t first = next_;
    const uint64_t oldest = written > slots_in_segment - 1 ? written - (slots_in_segment - 1) : 0;
    if (first < oldest) first = oldest;
    if (written - first > max_blocks) first = written - max_blocks;
    r.skipped = first - next_;
    const uint64_t half = ring_.slots * frames_;
    for (uint64_t i = first; i < written; ++i) {
      uint64_t bseq = 0, arrival = 0;
      if (c_.read_block(i, &bseq, &arrival, nullptr, block_.data()) != ReadResult::Ok) {
        ++r.skipped;  // lapped while reading
        continue;
      }
      const uint64_t slot = bseq & (ring_.slots - 1);
      for (uint32_t ch = 0; ch < channels_; ++ch) {
        float* dst = ring_.samples + uint64_t(ch) * 2 * half + slot * frames_;
        const float* src = block_.data() + ch;
        for (uint32_t f = 0; f < frames_; ++f) dst[f] = src[uint64_t(f) * channels_];
        std::memcpy(dst + half, dst, sizeof(float) * frames_);
      }
      ring_.seq_of_slot[slot] = int64_t(bseq);
      ring_.source_of_slot[slot] = kReceived;
      ++r.blocks;
      if (int64_t(bseq) > r.newest_seq) {
        r.newest_seq = int64_t(bseq);
        r.newest_arrival_ns = arrival;
      }
      if (int64_t(bseq) > newest_) newest_ = int64_t(bseq);
      if (fresh && ring_.slack_slots && bseq + 64 > seq) {
        const int64_t due = clock.due_ns(int64_t(bseq), int64_t(period_ns));
        ring_.slacks[slack_n_ % ring_.slack_slots] = due - int64_t(arrival);
        ++slack_n_;
        ++r.slacks_recorded;
      }
    }
    next_ = written;
  }

 private:
  TapRing ring_;
  TapResult acc_;
  int64_t newest_ = -1;
  uint64_t next_ = 0;
  uint64_t slack_n_ = 0;
  uint32_t frames_ = 0, channels_ = 0;
  std::vector<float> block_;
};

/// Sleeps until one of `n` (at most FUTEX_WAITV_MAX) shared futex words no longer holds its
/// `expected` value or is woken, or until the absolute CLOCK_MONOTONIC time `deadline_ns`.
/// Returns false with errno ENOSYS where the kernel has no futex_waitv (Linux < 5.16, seccomp).
inline bool futex_wait_any(std::atomic<uint32_t>* const* words, const uint32_t* expected, unsigned n,
                           uint64_t deadline_ns) noexcept {
#if defined(SYS_futex_waitv) && defined(FUTEX_32)
  struct futex_waitv w[FUTEX_WAITV_MAX];
  if (n == 0 || n > FUTEX_WAITV_MAX) {
    errno = EINVAL;
    return false;
  }
  for (unsigned i = 0; i < n; ++i) {
    w[i].val = expected[i];
    w[i].uaddr = uint64_t(reinterpret_cast<uintptr_t>(words[i]));
    w[i].flags = FUTEX_32;  // shared (no FUTEX_PRIVATE_FLAG): the words live in another process's segment
    w[i].__reserved = 0;
  }
  timespec ts{time_t(deadline_ns / 1000000000ULL), long(deadline_ns % 1000000000ULL)};
  const long r = ::syscall(SYS_futex_waitv, w, n, 0, &ts, CLOCK_MONOTONIC);
  return r >= 0 || errno != ENOSYS;
#else
  (void)words, (void)expected, (void)n, (void)deadline_ns;
  errno = ENOSYS;
  return false;
#endif
}

/// One stream as the decision waiter sees it (see wait_for_decision).
struct WaitItem {
  StreamTap* tap = nullptr;
  Consumer* consumer = nullptr;
  bool just_in_time = false;  ///< else speculative: any new block needs the caller
  int64_t handled_seq = -1;   ///< just-in-time: highest seq decided
  int64_t lead_ns = 0;        ///< just-in-time: decide a missing block this long before it is due
  uint64_t wake_ns = 0;       ///< the caller's own wake time for this stream (0: none)
  uint64_t period_ns = 0, stale_ns = 0;
  int64_t max_chain = 8;   ///< just-in-time: no decisions beyond newest + max_chain
  uint32_t lookahead = 0;  ///< just-in-time: the producer's missing-block wake checks clock + this (0: off)
  /// just-in-time: also needs the caller when a block arrived after its first missing, unplayed seq
  /// (the loss is known then, not only at its decision time: the two-sided fill's chance)
  bool wake_on_gap = false;
};

/// How long wait_for_decision sleeps at most in one go (it beats the posters' heartbeats between).
inline constexpr uint64_t kDecisionSleepMaxNs = 100'000'000;

/// Sleeps until one of `items` needs a decision by the caller, or until `until_ns`. Meanwhile it
/// keeps every stream's ring up to date (StreamTap::pump) so the caller's next take() sees
/// everything, and beats every poster's heartbeat every 100 ms (posting is rare in just-in-time
/// mode). A just-in-time stream needs the caller when its first missing seq after handled_seq
/// reaches its decision time (due - lead_ns, minus `window_ns`) or its clock goes stale; a
/// speculative one when a block arrived; any stream at its wake_ns.
///
/// How it sleeps: on futex words, all at once (futex_waitv) — a speculative stream's notify word
/// (every block), a just-in-time stream's missing word. A just-in-time stream with `lookahead` k
/// sets the producer's missing-block wake to k blocks: a missing seq s more than k blocks past the
/// clock is checked by the producer at the pull of s - k, which wakes this thread only if s is
/// missing then, so that nothing wakes while every block arrives (the idle cost follows the
/// losses). A missing seq within k blocks of the clock (the producer's check has passed) gets a
/// timed wake at its decision time. With `wake_on_gap`, a just-in-time stream also needs the caller
/// as soon as a block after its first missing seq arrives (the producer wakes the missing word for
/// such a block: the loss is known then, earlier than its decision time). Where futex_waitv is missing and there are
/// several streams, it falls back to timed decisions and polls (`block_wait`: the index of a speculative stream whose
/// futex to sleep on, -1 for timed sleeps). Returns the index of the first stream that needs the caller, or -1 at
/// `until_ns`. Not real-time code.
inline int wait_for_decision(std::vector<WaitItem>& items, uint64_t until_ns, uint64_t window_ns, int block_wait,
                             uint64_t* wakeups = nullptr) noexcept {
  static bool vector_wait_ok = true;  // cleared once the kernel says ENOSYS
  std::atomic<uint32_t>* words[FUTEX_WAITV_MAX];
  uint32_t expected[FUTEX_WAITV_MAX];
  for (;;) {
    if (wakeups) ++*wakeups;
    const bool by_words = items.size() == 1 || (vector_wait_ok && items.size() <= FUTEX_WAITV_MAX);
    const uint64_t now = monotonic_ns();
    const uint64_t sleep_until = std::min<uint64_t>(until_ns, now + kDecisionSleepMaxNs);
    uint64_t next = sleep_until;
    unsigned n_words = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      WaitItem& it = items[i];
      Consumer& c = *it.consumer;
      const uint32_t lookahead = it.just_in_time && by_words ? it.lookahead : 0;
      if (c.missing_lookahead() != lookahead) c.set_missing_lookahead(lookahead);
      if (by_words && (!it.just_in_time || lookahead)) {
        // register, then read the word, then look at the state it guards: a change in between ends the sleep at once
        std::atomic<uint32_t>* w = it.just_in_time ? c.missing_word() : c.notify_word();
        if (it.just_in_time)
          c.register_missing_wake(now, sleep_until + kWakeSlackNs);
        else
          c.register_notify_wake(now, sleep_until + kWakeSlackNs);
        words[n_words] = w;
        expected[n_words++] = w->load(std::memory_order_seq_cst);
      }
      it.tap->pump(c, now, it.period_ns, it.stale_ns, 64);
      if (now - it.tap->last_beat_ns > kDecisionSleepMaxNs) {  // the producer sees its poster alive between posts
        c.heartbeat();
        it.tap->last_beat_ns = now;
      }
      if (c.producer_closed()) return int(i);
      if (it.wake_ns && now + window_ns >= it.wake_ns) return int(i);
      if (it.wake_ns && it.wake_ns < next) next = it.wake_ns;
      const TapResult& p = it.tap->pending();
      if (!it.just_in_time) {
        if (p.blocks) return int(i);
        if (!by_words && int(i) != block_wait) next = std::min<uint64_t>(next, now + it.period_ns / 8);  // poll it
        continue;
      }
      if (!p.have_clock || !clock_fresh(now, p.clock.at_ns, it.stale_ns)) return int(i);  // stale: re-decide the mode
      const int64_t clock_seq = int64_t(p.clock.seq);
      int64_t s = std::max<int64_t>(it.handled_seq, clock_seq) + 1;
      const int64_t newest = it.tap->newest_seq();
      while (s <= newest && it.tap->received(s)) ++s;
      // a block after the missing s came in (the producer's gap wake, publish_block): s is lost
      // and still queued; the caller can predict and fill it from both sides now
      if (it.wake_on_gap && p.blocks && s < newest) return int(i);
      if (s > newest + it.max_chain) continue;                        // a long outage: the caller gave up on these
      if (lookahead && s > clock_seq + int64_t(lookahead)) continue;  // the producer checks s later
      const int64_t due = p.clock.due_ns(s, int64_t(it.period_ns));
      const int64_t decide = due - it.lead_ns;
      if (int64_t(now + window_ns) >= decide) return int(i);
      if (uint64_t(decide) < next) next = uint64_t(decide);
      if (!lookahead) {
        const uint64_t stale_at = p.clock.at_ns + it.stale_ns + 1;
        if (stale_at < next) next = stale_at;
      }
    }
    const uint64_t t = monotonic_ns();
    if (t >= until_ns) return -1;
    if (next <= t) continue;
    if (by_words && n_words == 1) {
      const uint64_t ns = next - t;
      timespec ts{time_t(ns / 1000000000ULL), long(ns % 1000000000ULL)};
      futex_wait_shared(words[0], expected[0], &ts);
    } else if (by_words && n_words > 1) {
      if (!futex_wait_any(words, expected, n_words, next)) vector_wait_ok = false;  // ENOSYS: poll from now on
    } else if (!by_words && block_wait >= 0 && size_t(block_wait) < items.size()) {
      WaitItem& it = items[size_t(block_wait)];
      it.consumer->wait_for_blocks(it.tap->next_index(), std::min<uint64_t>(next - t, 50'000'000));
    } else {
      const uint64_t ns = next - t;
      timespec ts{time_t(ns / 1000000000ULL), long(ns % 1000000000ULL)};
      nanosleep(&ts, nullptr);
    }
  }
}

}  // namespace nextblock
