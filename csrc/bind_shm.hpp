// What the other binding files need of csrc/bind_shm.cpp: the ErrorCode -> Python exception
// mapping and the Python Consumer (csrc/bind_runtime.cpp's StreamTap reads through one). Internal
// to the extension; the class lives in a named namespace so that pybind11 knows it as one type in
// every file.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "nextblock/shm_consumer.hpp"

namespace nextblock_py {

using nextblock::ErrorCode;

/// Throws the Python exception of `code` (SegmentNotFound, LayoutMismatch, ...; registered by init_shm).
[[noreturn]] void raise_for(ErrorCode code, const std::string& why);

class PyConsumer {
 public:
  PyConsumer(const std::string& name, bool post_replacements) {
    std::string why;
    ErrorCode code = ErrorCode::Ok;
    c_ = nextblock::Consumer::attach(name, post_replacements, &why, &code);
    if (!c_) raise_for(code, why);
    const auto& g = c_->config();
    block_.resize(size_t(g.frames_per_block) * g.channels);
  }

  nextblock::Consumer& get() const {
    if (!c_) throw py::value_error("consumer is closed");
    return *c_;
  }

  uint64_t wait_for_blocks(uint64_t after_count, double timeout_s) {
    auto& c = get();
    if (!(timeout_s >= 0)) throw py::value_error("timeout_s must be >= 0");
    const uint64_t ns = uint64_t(timeout_s * 1e9);
    py::gil_scoped_release release;
    return c.wait_for_blocks(after_count, ns);
  }

  // Reads blocks [start, start+max_count) that exist; if the ring lapped `start`, starts at the
  // oldest block still held and reports how many were skipped.
  py::tuple read_blocks(uint64_t start, uint64_t max_count) {
    auto& c = get();
    const auto& g = c.config();
    const uint64_t frames = g.frames_per_block, channels = g.channels;
    uint64_t written = c.blocks_written();
    const uint64_t slots = g.block_ring_slots;
    uint64_t oldest = written > slots - 1 ? written - (slots - 1) : 0;  // keep one slot of margin
    uint64_t first = start < oldest ? oldest : start;
    uint64_t skipped = first - start;
    uint64_t n = written > first ? std::min<uint64_t>(max_count, written - first) : 0;
    py::array_t<uint64_t> seq(n), arrival(n), gap(n);
    F32Array samples({py::ssize_t(n), py::ssize_t(frames), py::ssize_t(channels)});
    uint64_t got = 0;
    for (uint64_t i = 0; i < n; ++i) {
      auto r = c.read_block(first + i, seq.mutable_data() + got, arrival.mutable_data() + got, gap.mutable_data() + got,
                            samples.mutable_data() + got * frames * channels);
      if (r == nextblock::ReadResult::Ok) {
        ++got;
      } else if (got == 0) {  // lapped while reading: move on past it
        ++first;
        ++skipped;
      } else {
        break;
      }
    }
    if (got != n) {
      seq.resize({py::ssize_t(got)});
      arrival.resize({py::ssize_t(got)});
      gap.resize({py::ssize_t(got)});
      samples.resize({py::ssize_t(got), py::ssize_t(frames), py::ssize_t(channels)});
    }
    return py::make_tuple(first, seq, arrival, gap, samples, skipped);
  }

  // The newest n_samples per channel, oldest first: shape (channels, n_samples); zeros where the
  // stream has no history yet. Returns (array, newest_block_index_plus_one).
  py::tuple latest_history(uint64_t n_samples) {
    auto& c = get();
    const auto& g = c.config();
    const uint64_t frames = g.frames_per_block, channels = g.channels;
    F32Array out({py::ssize_t(channels), py::ssize_t(n_samples)});
    float* o = out.mutable_data();
    std::fill(o, o + channels * n_samples, 0.0f);
    const uint64_t written = c.blocks_written();
    const uint64_t want_blocks = (n_samples + frames - 1) / frames;
    uint64_t filled = 0;  // samples filled from the right
    for (uint64_t k = 0; k < want_blocks && k < written && filled < n_samples; ++k) {
      const uint64_t index = written - 1 - k;
      if (c.read_block(index, nullptr, nullptr, nullptr, block_.data()) != nextblock::ReadResult::Ok) break;
      const uint64_t take = std::min<uint64_t>(frames, n_samples - filled);
      const uint64_t dst0 = n_samples - filled - take;
      for (uint64_t f = frames - take; f < frames; ++f)
        for (uint64_t ch = 0; ch < channels; ++ch)
          o[ch * n_samples + dst0 + (f - (frames - take))] = block_[f * channels + ch];
      filled += take;
    }
    return py::make_tuple(out, written);
  }

  py::tuple read_events(uint64_t start, uint64_t max_count) {
    auto& c = get();
    const uint64_t written = c.events_written();
    const uint64_t slots = c.config().event_ring_slots;
    uint64_t oldest = written > slots - 1 ? written - (slots - 1) : 0;
    uint64_t first = start < oldest ? oldest : start;
    uint64_t skipped = first - start;
    py::list events;
    for (uint64_t i = first; i < written && uint64_t(py::len(events)) < max_count; ++i) {
      nextblock::EventSlot e{};
      auto r = c.read_event(i, &e);
      if (r != nextblock::ReadResult::Ok) {
        ++skipped;
        continue;
      }
      events.append(py::make_tuple(i, e.kind, e.outcome, e.seq, e.time_ns, e.detail));
    }
    return py::make_tuple(first, events, skipped);
  }

  bool post_replacement(uint64_t seq, const F32Array& samples) {
    auto& c = get();
    const auto& g = c.config();
    if (!c.is_poster()) throw py::value_error("this consumer did not claim the poster role (post_replacements=False)");
    check_shape(samples, {2, py::ssize_t(g.frames_per_block), py::ssize_t(g.channels)}, "replacement");
    return c.post_replacement(seq, samples.data());
  }

  py::object playout() {
    nextblock::PlayoutClock k;
    for (int attempt = 0; attempt < 4; ++attempt)
      if (get().read_playout(&k)) return py::make_tuple(k.seq, k.at_ns, k.queued_blocks, k.pull_blocks, k.pull_left);
    return py::none();
  }

  void close() { c_.reset(); }

  std::unique_ptr<nextblock::Consumer> c_;
  std::vector<float> block_;
};

}  // namespace nextblock_py
