// nextblock/stream_tap.hpp — consumer side: new blocks of a segment straight into a context ring.
//
// The live predictor keeps, per stream, the last `slots` blocks of every channel indexed by
// sequence number, in a *mirrored* channel-major buffer (block `seq` lives at slot seq % slots and
// again at slot + slots, so that any context is one contiguous slice; see
// python/nextblock/runtime/context.py). StreamTap::poll() copies every block published since the
// last call into that buffer (transposed from the segment's frame-major layout), marks the slots
// as received, records each block's slack against the play-out clock (how long before it is due
// it arrived) and reads the clock — one call per wake-up, no allocation, nothing trusted from the
// segment beyond the seqlock-checked copy. Header-only, C++17, uses only shm_protocol.hpp.
//
// Not real-time-thread code: the caller is NextBlock's predictor thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "nextblock/shm_protocol.hpp"

namespace nextblock {

/// Where poll() writes (all owned by the caller, sized at construction).
struct TapRing {
  float* samples = nullptr;         ///< [channels][2 * slots * frames] float32, mirrored
  int64_t* seq_of_slot = nullptr;   ///< [slots]
  uint8_t* source_of_slot = nullptr;///< [slots]; kReceived is written for every copied block
  uint64_t slots = 0;               ///< power of two
  int64_t* slacks = nullptr;        ///< [slack_slots] ring of due_ns - arrival_ns
  uint64_t slack_slots = 0;
};

struct TapResult {
  uint64_t blocks = 0;          ///< blocks copied by this call
  uint64_t skipped = 0;         ///< blocks the producer overwrote before they were read
  int64_t newest_seq = -1;      ///< highest seq copied by this call (-1: none)
  uint64_t newest_arrival_ns = 0;
  uint64_t slacks_recorded = 0; ///< slacks written by this call (into the slack ring)
  bool have_clock = false;
  uint64_t clock_seq = 0, clock_ns = 0;
  int64_t clock_queued = 0;
};

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
  uint64_t slack_count() const noexcept { return slack_n_; }
  void reset_slacks() noexcept { slack_n_ = 0; }

  /// Copies every block published since the last call (at most `max_blocks`, the newest ones if
  /// more were published) into the ring and reads the play-out clock. `stale_ns`: a clock older
  /// than this does not measure slacks; neither are blocks 64 or more seqs older than the clock.
  TapResult poll(const Consumer& c_, uint64_t now_ns, uint64_t period_ns, uint64_t stale_ns, uint64_t max_blocks) noexcept {
    TapResult r;
    uint64_t seq = 0, at = 0;
    int64_t queued = 0;
    for (int attempt = 0; attempt < 4 && !r.have_clock; ++attempt) r.have_clock = c_.read_playout(&seq, &at, &queued);
    if (r.have_clock) {
      r.clock_seq = seq;
      r.clock_ns = at;
      r.clock_queued = queued;
    }
    const bool fresh = r.have_clock && now_ns >= at && now_ns - at <= stale_ns;
    const uint64_t written = c_.blocks_written();
    if (written <= next_) return r;
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
      if (fresh && ring_.slack_slots && bseq + 64 > seq) {
        const int64_t due = int64_t(at) + (int64_t(bseq) - int64_t(seq)) * int64_t(period_ns);
        ring_.slacks[slack_n_ % ring_.slack_slots] = due - int64_t(arrival);
        ++slack_n_;
        ++r.slacks_recorded;
      }
    }
    next_ = written;
    return r;
  }

 private:
  TapRing ring_;
  uint64_t next_ = 0;
  uint64_t slack_n_ = 0;
  uint32_t frames_ = 0, channels_ = 0;
  std::vector<float> block_;
};

}  // namespace nextblock
