// nextblock._core: Python bindings of the shared-memory protocol (csrc/nextblock/shm_protocol.hpp)
// and of the LPC guess kernel of NextBlock's features (csrc/nextblock/lpc.hpp).
//
// Thin by design: the header is the source of truth; this file converts between numpy arrays
// and the header's raw pointers, maps ErrorCode to Python exceptions, and releases the GIL
// while a consumer sleeps.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nextblock/codec.hpp"
#include "nextblock/lpc.hpp"
#include "nextblock/pattern.hpp"
#include "nextblock/shm_protocol.hpp"
#include "nextblock/stream_tap.hpp"

namespace py = pybind11;
using nextblock::ErrorCode;

namespace {

// C++ exception types, one per Python exception class (registered below).
struct SegmentError : std::runtime_error { using std::runtime_error::runtime_error; };
struct SegmentNotFound : SegmentError { using SegmentError::SegmentError; };
struct SegmentPermissionError : SegmentError { using SegmentError::SegmentError; };
struct LayoutMismatch : SegmentError { using SegmentError::SegmentError; };
struct StaleSegment : SegmentError { using SegmentError::SegmentError; };
struct SegmentInUse : SegmentError { using SegmentError::SegmentError; };
struct SegmentNotReady : SegmentError { using SegmentError::SegmentError; };

[[noreturn]] void raise_for(ErrorCode code, const std::string& why) {
  switch (code) {
    case ErrorCode::NotFound: throw SegmentNotFound(why);
    case ErrorCode::Permission: throw SegmentPermissionError(why);
    case ErrorCode::TooSmall:
    case ErrorCode::BadMagic:
    case ErrorCode::VersionMismatch:
    case ErrorCode::BadGeometry: throw LayoutMismatch(why);
    case ErrorCode::Stale: throw StaleSegment(why);
    case ErrorCode::InUse: throw SegmentInUse(why);
    case ErrorCode::NotReady: throw SegmentNotReady(why);
    case ErrorCode::InvalidArgument: throw py::value_error(why);
    default: throw SegmentError(why);
  }
}

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

void check_shape(const F32Array& a, std::initializer_list<py::ssize_t> want, const char* what) {
  std::vector<py::ssize_t> w(want);
  bool ok = a.ndim() == py::ssize_t(w.size());
  for (size_t i = 0; ok && i < w.size(); ++i) ok = a.shape(py::ssize_t(i)) == w[i];
  if (!ok) {
    std::string got = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) got += std::to_string(a.shape(i)) + (i + 1 < a.ndim() ? ", " : "");
    std::string exp = "(";
    for (size_t i = 0; i < w.size(); ++i) exp += std::to_string(w[i]) + (i + 1 < w.size() ? ", " : "");
    throw py::value_error(std::string(what) + " must have shape " + exp + ") but has shape " + got + ")");
  }
}

// What a consumer sees in the segment (the header's counters may have been written by anyone).
py::dict counters_of(const nextblock::SegmentHeader& h, const nextblock::ControlPage& c) {
  py::dict d;
  d["blocks_written"] = h.blocks_written.load();
  d["events_written"] = h.events_written.load();
  d["replacements_posted"] = c.replacements_posted.load();
  d["replacements_used"] = h.replacements_used.load();
  d["replacements_missed"] = h.replacements_missed.load();
  d["replacements_torn"] = h.replacements_torn.load();
  d["replacements_refused"] = h.replacements_refused.load();
  d["wakes_issued"] = h.wakes_issued.load();
  d["missing_found"] = h.missing_found.load();
  d["missing_wakes_issued"] = h.missing_wakes_issued.load();
  d["missing_lookahead_blocks"] = std::min(c.missing_lookahead_blocks.load(), nextblock::kMaxMissingLookahead);
  d["poster_pid"] = nextblock::token_pid(c.poster_token.load());
  d["consumer_heartbeat_ns"] = c.consumer_heartbeat_ns.load();
  d["producer_closed"] = bool(h.producer_closed.load());
  return d;
}

// The producer's own counts (private; the segment only holds copies).
py::dict counters_of(const nextblock::Producer& p) {
  py::dict d = counters_of(p.header(), p.control());
  d["blocks_written"] = p.blocks_written();
  d["events_written"] = p.events_written();
  d["replacements_used"] = p.replacements_used();
  d["replacements_missed"] = p.replacements_missed();
  d["replacements_torn"] = p.replacements_torn();
  d["replacements_refused"] = p.replacements_refused();
  d["wakes_issued"] = p.wakes_issued();
  d["gap_wakes_issued"] = p.gap_wakes_issued();  // the producer's own count (not in the segment)
  return d;
}

// Identity from the header, geometry from the copy validated at attach / fixed at create.
py::dict geometry_of(const nextblock::SegmentHeader& h, const nextblock::SegmentConfig& c, const nextblock::Layout& l) {
  py::dict d;
  d["layout_version"] = nextblock::kLayoutVersion;
  d["sample_rate_hz"] = c.sample_rate_hz;
  d["frames_per_block"] = c.frames_per_block;
  d["channels"] = c.channels;
  d["block_ring_slots"] = c.block_ring_slots;
  d["event_ring_slots"] = c.event_ring_slots;
  d["replacement_slots"] = c.replacement_slots;
  d["producer_pid"] = h.producer_pid;
  d["producer_start_ticks"] = h.producer_start_ticks;
  d["created_unix_ns"] = h.created_unix_ns;
  d["total_bytes"] = l.total_bytes;
  // identity text may have been overwritten by anyone: read at most its field, NUL or not
  d["stream_name"] = std::string(h.stream_name, strnlen(h.stream_name, sizeof h.stream_name));
  d["peer_address"] = std::string(h.peer_address, strnlen(h.peer_address, sizeof h.peer_address));
  d["local_port"] = h.local_port;
  return d;
}

const char* take_name(nextblock::Take t) {
  switch (t) {
    case nextblock::Take::Taken: return "taken";
    case nextblock::Take::Missing: return "missing";
    case nextblock::Take::Torn: return "torn";
    case nextblock::Take::Refused: return "refused";
  }
  return "unknown";
}

class PyProducer {
 public:
  PyProducer(const std::string& name, uint32_t sample_rate_hz, uint32_t frames_per_block, uint32_t channels,
             uint32_t block_ring_slots, uint32_t event_ring_slots, uint32_t replacement_slots,
             const std::string& stream_name, const std::string& peer_address, uint32_t local_port) {
    nextblock::SegmentConfig cfg{sample_rate_hz,   frames_per_block, channels,
                                 block_ring_slots, event_ring_slots, replacement_slots};
    nextblock::StreamIdentity identity{stream_name, peer_address, local_port};
    std::string why;
    ErrorCode code = ErrorCode::Ok;
    p_ = nextblock::Producer::create(name, cfg, &why, &code, &identity);
    if (!p_) raise_for(code, why);
    scratch_.resize(size_t(2) * frames_per_block * channels);
  }

  nextblock::Producer& get() {
    if (!p_) throw py::value_error("producer is closed");
    return *p_;
  }

  void publish_block(uint64_t seq, const F32Array& samples, py::object arrival_ns, uint64_t gap_ns) {
    auto& p = get();
    check_shape(samples, {py::ssize_t(p.frames_per_block()), py::ssize_t(p.channels())}, "samples");
    const uint64_t t = arrival_ns.is_none() ? nextblock::monotonic_ns() : arrival_ns.cast<uint64_t>();
    p.publish_block(seq, samples.data(), t, gap_ns);
  }

  void post_event(uint32_t kind, uint64_t seq, uint32_t outcome, int64_t detail) {
    if (kind < 1 || kind > 5) throw py::value_error("unknown event kind " + std::to_string(kind));
    if (outcome > 2) throw py::value_error("unknown outcome " + std::to_string(outcome));
    get().post_event(nextblock::EventKind(kind), seq, nextblock::Outcome(outcome), detail);
  }

  // (status, replacement or None): status is "taken", "missing", "torn" or "refused".
  py::tuple take(uint64_t seq) {
    auto& p = get();
    const nextblock::Take t = p.take_replacement(seq, scratch_.data());
    if (t != nextblock::Take::Taken) return py::make_tuple(take_name(t), py::none());
    F32Array out({py::ssize_t(2), py::ssize_t(p.frames_per_block()), py::ssize_t(p.channels())});
    std::memcpy(out.mutable_data(), scratch_.data(), scratch_.size() * sizeof(float));
    return py::make_tuple(take_name(t), std::move(out));
  }

  void note_playout(uint64_t seq, int64_t queued_blocks, py::object now_ns) {
    get().note_playout(seq, now_ns.is_none() ? nextblock::monotonic_ns() : now_ns.cast<uint64_t>(), queued_blocks);
  }

  void close() { p_.reset(); }

  std::unique_ptr<nextblock::Producer> p_;
  std::vector<float> scratch_;
};

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
    uint64_t seq = 0, at = 0;
    int64_t queued = 0;
    for (int attempt = 0; attempt < 4; ++attempt)
      if (get().read_playout(&seq, &at, &queued)) return py::make_tuple(seq, at, queued);
    return py::none();
  }

  void close() { c_.reset(); }

  std::unique_ptr<nextblock::Consumer> c_;
  std::vector<float> block_;
};

// The live predictor's per-wake read of one stream (nextblock/stream_tap.hpp): new blocks into the
// caller's context ring (numpy arrays it keeps alive here), slacks, play-out clock; GIL released.
class PyStreamTap {
 public:
  PyStreamTap(py::object consumer, py::array_t<float, py::array::c_style> samples,
              py::array_t<int64_t, py::array::c_style> seq_of_slot,
              py::array_t<uint8_t, py::array::c_style> source_of_slot, py::array_t<int64_t, py::array::c_style> slacks,
              uint64_t next_index)
      : consumer_(consumer), samples_(samples), seq_(seq_of_slot), source_(source_of_slot), slacks_(slacks) {
    auto& c = consumer_.cast<PyConsumer&>().get();
    const auto& g = c.config();
    const py::ssize_t slots = seq_.shape(0);
    if (slots < 2 || (slots & (slots - 1)) != 0) throw py::value_error("seq_of_slot must have a power-of-two length");
    check_shape_any(source_, {slots}, "source_of_slot");
    if (samples_.ndim() != 2 || samples_.shape(0) != py::ssize_t(g.channels) ||
        samples_.shape(1) != 2 * slots * py::ssize_t(g.frames_per_block))
      throw py::value_error("samples must have shape (channels, 2 * slots * frames_per_block)");
    if (slacks_.ndim() != 1) throw py::value_error("slacks must be one-dimensional");
    nextblock::TapRing ring{samples_.mutable_data(), seq_.mutable_data(),    source_.mutable_data(),
                            uint64_t(slots),         slacks_.mutable_data(), uint64_t(slacks_.shape(0))};
    tap_ = std::make_unique<nextblock::StreamTap>(c, ring, next_index);
  }

  template <typename A>
  static void check_shape_any(const A& a, std::initializer_list<py::ssize_t> want, const char* what) {
    std::vector<py::ssize_t> w(want);
    bool ok = a.ndim() == py::ssize_t(w.size());
    for (size_t i = 0; ok && i < w.size(); ++i) ok = a.shape(py::ssize_t(i)) == w[i];
    if (!ok) throw py::value_error(std::string(what) + " has the wrong shape");
  }

  // (blocks, skipped, newest_seq, newest_arrival_ns, slacks_recorded, clock) with clock
  // (seq, at_ns, queued_blocks) or None.
  py::tuple poll(uint64_t now_ns, uint64_t period_ns, uint64_t stale_ns, uint64_t max_blocks) {
    auto& c = consumer_.cast<PyConsumer&>().get();
    nextblock::TapResult r;
    {
      py::gil_scoped_release release;
      r = tap_->poll(c, now_ns, period_ns, stale_ns, max_blocks);
    }
    py::object clock = r.have_clock ? py::object(py::make_tuple(r.clock_seq, r.clock_ns, r.clock_queued)) : py::none();
    return py::make_tuple(r.blocks, r.skipped, r.newest_seq, r.newest_arrival_ns, r.slacks_recorded, clock);
  }

  py::object consumer_;
  py::array_t<float, py::array::c_style> samples_;
  py::array_t<int64_t, py::array::c_style> seq_;
  py::array_t<uint8_t, py::array::c_style> source_;
  py::array_t<int64_t, py::array::c_style> slacks_;
  std::unique_ptr<nextblock::StreamTap> tap_;
};

uint64_t g_wait_wakeups = 0;  // passes of wait_for_decision's loop since import (its wake-ups)

using SkipArray = py::array_t<long long, py::array::c_style | py::array::forcecast>;

/// Rows of a LongTermPredictor call, after checking history (rows, history_samples) and skip (rows,) >= 0.
py::ssize_t long_term_rows(const nextblock::LongTermPredictor& self, const F32Array& history, const SkipArray& skip) {
  const size_t n = self.config().history_samples;
  if (history.ndim() != 2 || size_t(history.shape(1)) != n)
    throw py::value_error("history must have shape (rows, " + std::to_string(n) + ")");
  const py::ssize_t rows = history.shape(0);
  if (skip.ndim() != 1 || skip.shape(0) != rows) throw py::value_error("skip must have shape (rows,)");
  const long long* sk = skip.data();
  for (py::ssize_t r = 0; r < rows; ++r)
    if (sk[r] < 0) throw py::value_error("skip must not be negative");
  return rows;
}

}  // namespace

void init_twosided(py::module_& m);  // csrc/bind_twosided.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "NextBlock's shared-memory protocol (C++ core). Use nextblock.capture for the Pythonic API.";
  init_twosided(m);

  auto base = py::register_exception<SegmentError>(m, "SegmentError", PyExc_RuntimeError);
  py::register_exception<SegmentNotFound>(m, "SegmentNotFound", base.ptr());
  py::register_exception<SegmentPermissionError>(m, "SegmentPermissionError", base.ptr());
  py::register_exception<LayoutMismatch>(m, "LayoutMismatch", base.ptr());
  py::register_exception<StaleSegment>(m, "StaleSegment", base.ptr());
  py::register_exception<SegmentInUse>(m, "SegmentInUse", base.ptr());
  py::register_exception<SegmentNotReady>(m, "SegmentNotReady", base.ptr());

  m.attr("MAGIC") = nextblock::kMagic;
  m.attr("LAYOUT_VERSION") = nextblock::kLayoutVersion;
  m.attr("HEADER_BYTES") = nextblock::kHeaderBytes;

  m.def("segment_name_for_pid", &nextblock::segment_name_for_pid, py::arg("pid"),
        "The shared-memory name a producer with this PID uses: '/nextblock-<pid>'.");
  m.def("segment_name_for_stream", &nextblock::segment_name_for_stream, py::arg("pid"), py::arg("port"),
        "The shared-memory name of one stream of a process with several: '/nextblock-<pid>-<port>'.");
  m.def("monotonic_ns", &nextblock::monotonic_ns, "CLOCK_MONOTONIC in ns: the time base of every *_ns field.");
  m.def(
      "all_finite",
      [](F32Array a) {
        const float* x = a.data();
        const py::ssize_t n = a.size();
        bool finite = true;  // no early exit: one branch-free pass the compiler vectorises
        for (py::ssize_t i = 0; i < n; ++i) finite &= std::isfinite(x[i]);
        return finite;
      },
      py::arg("samples"),
      "Whether every sample of a float32 array is finite: np.all(np.isfinite(a)) without the temporary (a few "
      "hundred ns for a context, where numpy's two calls cost several µs after a sleep).");
  m.def(
      "validate_header",
      [](py::bytes image) {
        std::string s = image;
        std::string why;
        ErrorCode code = nextblock::validate_header(s.data(), s.size(), &why);
        if (code != ErrorCode::Ok) raise_for(code, why);
      },
      py::arg("image"),
      "Validate a segment image (bytes). Raises LayoutMismatch (bad magic, version, sizes) on a bad one, "
      "SegmentNotReady on one whose magic is still zero (its producer has not published it yet).");
  m.def(
      "compute_layout",
      [](uint32_t sample_rate_hz, uint32_t frames_per_block, uint32_t channels, uint32_t block_ring_slots,
         uint32_t event_ring_slots, uint32_t replacement_slots) {
        nextblock::SegmentConfig cfg{sample_rate_hz,   frames_per_block, channels,
                                     block_ring_slots, event_ring_slots, replacement_slots};
        nextblock::Layout l;
        std::string why;
        ErrorCode code = nextblock::compute_layout(cfg, &l, &why);
        if (code != ErrorCode::Ok) raise_for(code, why);
        py::dict d;
        d["block_slot_bytes"] = l.block_slot_bytes;
        d["block_ring_offset"] = l.block_ring_offset;
        d["event_slot_bytes"] = l.event_slot_bytes;
        d["event_ring_offset"] = l.event_ring_offset;
        d["control_offset"] = l.control_offset;
        d["replacement_slot_bytes"] = l.replacement_slot_bytes;
        d["replacement_offset"] = l.replacement_offset;
        d["total_bytes"] = l.total_bytes;
        return d;
      },
      py::arg("sample_rate_hz"), py::arg("frames_per_block"), py::arg("channels"), py::arg("block_ring_slots") = 1024,
      py::arg("event_ring_slots") = 1024, py::arg("replacement_slots") = 8,
      "Byte offsets and sizes of a segment with this geometry (the header's own computation).");
  m.def(
      "header_field_offsets",
      []() {
        py::dict d;
#define NB_OFF(f) d[#f] = offsetof(nextblock::SegmentHeader, f)
        NB_OFF(magic);
        NB_OFF(layout_version);
        NB_OFF(header_bytes);
        NB_OFF(sample_rate_hz);
        NB_OFF(frames_per_block);
        NB_OFF(channels);
        NB_OFF(sample_format);
        NB_OFF(block_ring_slots);
        NB_OFF(event_ring_slots);
        NB_OFF(replacement_slots);
        NB_OFF(producer_pid);
        NB_OFF(producer_start_ticks);
        NB_OFF(created_unix_ns);
        NB_OFF(block_slot_bytes);
        NB_OFF(block_ring_offset);
        NB_OFF(event_slot_bytes);
        NB_OFF(event_ring_offset);
        NB_OFF(control_offset);
        NB_OFF(replacement_slot_bytes);
        NB_OFF(replacement_offset);
        NB_OFF(total_bytes);
#undef NB_OFF
        return d;
      },
      "Byte offsets of the header's identity fields (for tests and fuzzing; the header is the truth).");

  m.def(
      "control_field_offsets",
      []() {
        py::dict d;
#define NB_OFF(f) d[#f] = offsetof(nextblock::ControlPage, f)
        NB_OFF(notify_word);
        NB_OFF(wake_until_ns);
        NB_OFF(poster_token);
        NB_OFF(consumer_heartbeat_ns);
        NB_OFF(replacements_posted);
#undef NB_OFF
        return d;
      },
      "Byte offsets of the control page's fields, relative to control_offset (tests and fuzzing).");
  m.attr("MAX_WAKE_REGISTRATION_NS") = nextblock::kMaxWakeRegistrationNs;
  m.def(
      "recovery_fade_in",
      [](uint32_t frames_per_block, uint32_t sample_rate_hz) {
        if (frames_per_block < 1) throw py::value_error("frames_per_block must be positive");
        if (sample_rate_hz < 1) throw py::value_error("sample_rate_hz must be positive");
        const uint32_t fade = nextblock::recovery_fade_samples(sample_rate_hz, frames_per_block);
        py::array_t<float> out(frames_per_block);
        float* o = out.mutable_data();
        for (uint32_t i = 0; i < frames_per_block; ++i) o[i] = nextblock::recovery_fade_in(i, fade);
        return out;
      },
      py::arg("frames_per_block"), py::arg("sample_rate_hz"),
      "(frames_per_block,) float32: the weight of the real audio in the block that arrives after a replacement "
      "(the patched JackTrip's splice; a raised cosine over recovery_fade_samples, then 1).");
  m.def("recovery_fade_samples", &nextblock::recovery_fade_samples, py::arg("sample_rate_hz"),
        py::arg("frames_per_block"),
        "Samples of the recovery cross-fade: 32 at 48 kHz, in proportion at other rates, "
        "at least 1 and at most one block.");
  m.def(
      "sanitize_playable",
      [](F32Array samples) {
        py::array_t<float> out(samples.request().shape);
        std::memcpy(out.mutable_data(), samples.data(), size_t(samples.size()) * sizeof(float));
        const bool ok = nextblock::sanitize_playable(out.mutable_data(), size_t(out.size()));
        return py::make_tuple(ok, out);
      },
      py::arg("samples"),
      "The producer's check of a replacement: (ok, copy). ok is False if any sample is NaN, +-Inf or |x| > 1; "
      "subnormals are flushed to zero in the copy.");
  m.def(
      "process_token", [](long pid) { return nextblock::process_token(pid); }, py::arg("pid"),
      "PID (low 32 bits) and start time (high 32 bits) of a running process: its identity despite PID reuse.");
  py::class_<nextblock::SeqUnwrapper>(
      m, "SeqUnwrapper", "JackTrip's 16-bit packet numbers -> 64-bit seqs (the patched receive thread's rule).")
      .def(py::init<>())
      .def("next", &nextblock::SeqUnwrapper::next, py::arg("seq16"))
      .def_property_readonly("last", &nextblock::SeqUnwrapper::last)
      .def_property_readonly("restarts", &nextblock::SeqUnwrapper::restarts)
      .def_readonly_static("MAX_REORDER", &nextblock::SeqUnwrapper::kMaxReorder);

  m.def(
      "lpc_continuation",
      [](F32Array context, F32Array windowed, int order, int n_out,
         py::array_t<double, py::array::c_style | py::array::forcecast> lag, double white_noise,
         double silence_energy) {
        if (context.ndim() != 2) throw py::value_error("context must have shape (rows, samples)");
        const py::ssize_t rows = context.shape(0), n = context.shape(1);
        check_shape(windowed, {rows, n}, "windowed");
        if (order < 1 || order >= n) throw py::value_error("order must be in [1, samples)");
        if (n_out < 1) throw py::value_error("n_out must be positive");
        if (lag.ndim() != 1 || lag.shape(0) != order + 1) throw py::value_error("lag must have order + 1 weights");
        py::array_t<float> out({rows, py::ssize_t(n_out)});
        std::vector<double> work(nextblock::lpc_work_doubles(size_t(n), order, n_out));
        const float* c = context.data();
        const float* w = windowed.data();
        const double* lw = lag.data();
        float* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (py::ssize_t row = 0; row < rows; ++row)
            nextblock::lpc_continue_row(c + row * n, w + row * n, size_t(n), order, lw, white_noise, silence_energy,
                                        n_out, o + row * n_out, work.data());
        }
        return out;
      },
      py::arg("context"), py::arg("windowed"), py::arg("order"), py::arg("n_out"), py::arg("lag"),
      py::arg("white_noise"), py::arg("silence_energy"),
      "LPC continuation of each row of context (rows, n) float32: autocorrelation (circular) of the "
      "windowed rows, lag window, Levinson-Durbin, AR recursion from the last `order` context samples. "
      "Returns (rows, n_out) float32 (zeros for a silent row). See nextblock.features.lpc.");

  m.def(
      "burg_continuation",
      [](F32Array history, int order, int n_out, double silence_mean_square) {
        if (history.ndim() != 2) throw py::value_error("history must have shape (rows, samples)");
        const py::ssize_t rows = history.shape(0), n = history.shape(1);
        if (order < 1 || order >= n || order > 1024)
          throw py::value_error("order must be in [1, samples) and at most 1024");
        if (n_out < 1) throw py::value_error("n_out must be positive");
        py::array_t<float> out({rows, py::ssize_t(n_out)});
        nextblock::BurgScratch scratch(size_t(n), order, n_out);
        const float* h = history.data();
        float* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (py::ssize_t row = 0; row < rows; ++row)
            nextblock::burg_continue_row(h + row * n, size_t(n), order, silence_mean_square, n_out, o + row * n_out,
                                         scratch);
        }
        return out;
      },
      py::arg("history"), py::arg("order"), py::arg("n_out"), py::arg("silence_mean_square"),
      "Burg AR continuation of each row of history (rows, n) float32: Burg's method of the given order "
      "on the whole row, AR recursion from its last `order` samples. Returns (rows, n_out) float32 "
      "(zeros for a row whose mean square is not above silence_mean_square). See nextblock.features.lpc.");

  py::class_<nextblock::LongTermPredictor>(m, "LongTermPredictor",
                                           "Pattern-matched continuation of a long history and its backcast weight "
                                           "(nextblock/pattern.hpp; see nextblock.features.pattern). Buffers "
                                           "are made here; predict allocates only its results and releases the GIL.")
      .def(py::init([](size_t history_samples, size_t template_samples, size_t min_lag_samples, size_t backcast_samples,
                       int ar_order, size_t ar_samples, double max_gain, double lo_db, double hi_db,
                       double silence_mean_square, double wrap_fraction, size_t wrap_max_samples) {
             nextblock::LongTermConfig c;
             c.history_samples = history_samples;
             c.template_samples = template_samples;
             c.min_lag_samples = min_lag_samples;
             c.backcast_samples = backcast_samples;
             c.ar_order = ar_order;
             c.ar_samples = ar_samples;
             c.max_gain = max_gain;
             c.lo_db = lo_db;
             c.hi_db = hi_db;
             c.silence_mean_square = silence_mean_square;
             c.wrap_fraction = wrap_fraction;
             c.wrap_max_samples = wrap_max_samples;
             try {
               return std::make_unique<nextblock::LongTermPredictor>(c);
             } catch (const std::invalid_argument& e) { throw py::value_error(e.what()); }
           }),
           py::arg("history_samples"), py::arg("template_samples"), py::arg("min_lag_samples"),
           py::arg("backcast_samples"), py::arg("ar_order"), py::arg("ar_samples"), py::arg("max_gain"),
           py::arg("lo_db"), py::arg("hi_db"), py::arg("silence_mean_square"), py::arg("wrap_fraction"),
           py::arg("wrap_max_samples"))
      .def_property_readonly("history_samples",
                             [](const nextblock::LongTermPredictor& self) { return self.config().history_samples; })
      .def(
          "predict",
          [](nextblock::LongTermPredictor& self, F32Array history, SkipArray skip, size_t n_out) {
            const size_t n = self.config().history_samples;
            const py::ssize_t rows = long_term_rows(self, history, skip);
            if (n_out < 1) throw py::value_error("n_out must be positive");
            const long long* sk = skip.data();
            py::array_t<float> out({rows, py::ssize_t(n_out)});
            py::array_t<double> weight(rows);
            const float* h = history.data();
            float* o = out.mutable_data();
            double* wt = weight.mutable_data();
            {
              py::gil_scoped_release release;
              for (py::ssize_t r = 0; r < rows; ++r)
                wt[r] = self.predict(h + r * n, size_t(sk[r]), n_out, o + r * n_out);
            }
            return py::make_tuple(out, weight);
          },
          py::arg("history"), py::arg("skip"), py::arg("n_out"),
          "history (rows, history_samples) float32, skip (rows,) samples already concealed at its end -> (guess "
          "(rows, n_out) float32, weight (rows,) float64 in [0, 1]; 0 and a zero guess for silence or no match).")
      .def(
          "blend_into",
          [](nextblock::LongTermPredictor& self, F32Array history, SkipArray skip,
             py::array_t<double, py::array::c_style | py::array::forcecast> factor, py::array prediction,
             size_t fade_in_samples) {
            const size_t n = self.config().history_samples;
            const py::ssize_t rows = long_term_rows(self, history, skip);
            if (factor.ndim() != 1 || factor.shape(0) != rows) throw py::value_error("factor must have shape (rows,)");
            // in place: a float32 C-contiguous writeable array, never a converted copy
            if (!py::isinstance<py::array_t<float>>(prediction) || !(prediction.flags() & py::array::c_style) ||
                !prediction.writeable() || prediction.ndim() != 2 || prediction.shape(0) != rows ||
                prediction.shape(1) < 1)
              throw py::value_error("prediction must be a writeable C-contiguous float32 array of shape (rows, n_out)");
            if (fade_in_samples < 1) throw py::value_error("fade_in_samples must be positive");
            const size_t n_out = size_t(prediction.shape(1));
            const long long* sk = skip.data();
            const double* fc = factor.data();
            py::array_t<double> weight(rows);
            std::vector<float> guess(n_out);
            const float* h = history.data();
            float* pred = static_cast<float*>(prediction.mutable_data());
            double* wt = weight.mutable_data();
            {
              py::gil_scoped_release release;
              for (py::ssize_t r = 0; r < rows; ++r) {
                wt[r] = fc[r] > 0.0 ? self.predict(h + r * n, size_t(sk[r]), n_out, guess.data()) * fc[r] : 0.0;
                if (!(wt[r] > 0.0)) continue;
                // as nextblock.features.pattern.blend_long_term: outside a burst the guess fades in
                const float w = float(wt[r]);
                float* p = pred + r * n_out;
                for (size_t i = 0; i < n_out; ++i) {
                  const float ramp =
                      (sk[r] == 0 && i < fade_in_samples) ? (float(i) + 0.5f) / float(fade_in_samples) : 1.0f;
                  p[i] += (w * ramp) * (guess[i] - p[i]);
                }
              }
            }
            return weight;
          },
          py::arg("history"), py::arg("skip"), py::arg("factor"), py::arg("prediction"), py::arg("fade_in_samples"),
          "predict() and the blend in one call: each row of prediction (rows, n_out) float32 (in place) moves "
          "towards its guess by weight * factor[row], faded in over fade_in_samples where skip is 0. Rows whose "
          "factor is 0 are not computed. Returns the weights (rows,) float64, factor included.");

  py::class_<nextblock::CodecCore>(
      m, "CodecCore",
      "The spectral codec around one network call (nextblock/codec.hpp): encode() before "
      "LiteRT, decode() after. Buffers and FFT plans are made here; the calls allocate only "
      "their result arrays and release the GIL.")
      .def(py::init([](size_t context_samples, size_t output_samples, size_t bin_stride, int lpc_order,
                       size_t burg_samples, F32Array scaled_window, float rms_floor, float log_floor, float log_divisor,
                       double silence_mean_square, float output_gain) {
             check_shape(scaled_window, {py::ssize_t(context_samples)}, "scaled_window");
             nextblock::CodecGeometry g;
             g.context_samples = context_samples;
             g.output_samples = output_samples;
             g.bin_stride = bin_stride;
             g.lpc_order = lpc_order;
             g.burg_samples = burg_samples;
             g.rms_floor = rms_floor;
             g.log_floor = log_floor;
             g.log_divisor = log_divisor;
             g.silence_mean_square = silence_mean_square;
             g.output_gain = output_gain;
             try {
               return std::make_unique<nextblock::CodecCore>(g, scaled_window.data());
             } catch (const std::invalid_argument& err) { throw py::value_error(err.what()); }
           }),
           py::arg("context_samples"), py::arg("output_samples"), py::arg("bin_stride"), py::arg("lpc_order"),
           py::arg("burg_samples"), py::arg("scaled_window"), py::arg("rms_floor"), py::arg("log_floor"),
           py::arg("log_divisor"), py::arg("silence_mean_square"), py::arg("output_gain"))
      .def_property_readonly("input_bins", &nextblock::CodecCore::input_bins)
      .def_property_readonly("output_bins", &nextblock::CodecCore::output_bins)
      .def_property_readonly("channels", &nextblock::CodecCore::channels)
      .def(
          "encode",
          [](nextblock::CodecCore& self, F32Array context) {
            const auto& g = self.geometry();
            if (context.ndim() != 2 || size_t(context.shape(1)) != g.context_samples)
              throw py::value_error("context must have shape (rows, " + std::to_string(g.context_samples) + ")");
            const py::ssize_t rows = context.shape(0);
            py::array_t<float> features({rows, py::ssize_t(self.input_bins()), py::ssize_t(self.channels())});
            py::array_t<float> scale(rows);
            py::object guess = py::none();
            float* gp = nullptr;
            if (g.lpc_order > 0) {
              py::array_t<float> ga({rows, py::ssize_t(g.output_samples)});
              gp = ga.mutable_data();
              guess = ga;
            }
            const float* c = context.data();
            float* f = features.mutable_data();
            float* sc = scale.mutable_data();
            {
              py::gil_scoped_release release;
              self.encode(c, size_t(rows), f, sc, gp);
            }
            return py::make_tuple(features, scale, guess);
          },
          py::arg("context"),
          "context (rows, context_samples) float32 -> (features (rows, input_bins, channels), scale (rows,), guess "
          "(rows, output_samples) or None without an LPC order). Non-finite samples give non-finite features: sanitise "
          "first.")
      .def(
          "decode",
          [](nextblock::CodecCore& self, F32Array net_out, F32Array scale, py::object guess_obj, float weight,
             py::object ramp_obj, F32Array context) {
            const auto& g = self.geometry();
            const py::ssize_t rows = net_out.ndim() == 3 ? net_out.shape(0) : -1;
            check_shape(net_out, {rows, py::ssize_t(self.output_bins()), 2}, "net_out");
            check_shape(scale, {rows}, "scale");
            check_shape(context, {rows, py::ssize_t(g.context_samples)}, "context");
            F32Array guess, ramp;
            if (!guess_obj.is_none()) {
              guess = F32Array::ensure(guess_obj);
              if (!guess) throw py::value_error("guess must be a float32 array");
              check_shape(guess, {rows, py::ssize_t(g.output_samples)}, "guess");
            }
            if (!ramp_obj.is_none()) {
              ramp = F32Array::ensure(ramp_obj);
              if (!ramp || ramp.ndim() != 1) throw py::value_error("ramp must be a 1-D float32 array");
            }
            py::array_t<float> out({rows, py::ssize_t(g.output_samples)});
            const float* gp = guess_obj.is_none() ? nullptr : guess.data();
            const float* rp = ramp_obj.is_none() ? nullptr : ramp.data();
            const size_t ramp_n = ramp_obj.is_none() ? 0 : size_t(ramp.shape(0));
            const float* y = net_out.data();
            const float* sc = scale.data();
            const float* c = context.data();
            float* o = out.mutable_data();
            int zeroed;
            {
              py::gil_scoped_release release;
              zeroed = self.decode(y, size_t(rows), sc, gp, weight, rp, ramp_n, c, o);
            }
            return py::make_tuple(out, zeroed);
          },
          py::arg("net_out"), py::arg("scale"), py::arg("guess"), py::arg("weight"), py::arg("ramp"),
          py::arg("context"),
          "The network's output (rows, output_bins, 2) -> (horizon (rows, output_samples) float32, rows zeroed): "
          "irfft, "
          "level, `weight` of the guess blended in, the start cross-faded from the guess over `ramp` (without a guess: "
          "pulled onto the context's linear extrapolation), a non-finite row zeroed.");

  py::class_<PyProducer>(m, "Producer", "Producer side of a segment (patched JackTrip; tests and the demo).")
      .def(py::init<const std::string&, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, const std::string&,
                    const std::string&, uint32_t>(),
           py::arg("name"), py::arg("sample_rate_hz"), py::arg("frames_per_block"), py::arg("channels"),
           py::arg("block_ring_slots") = 1024, py::arg("event_ring_slots") = 1024, py::arg("replacement_slots") = 8,
           py::arg("stream_name") = "", py::arg("peer_address") = "", py::arg("local_port") = 0)
      .def("publish_block", &PyProducer::publish_block, py::arg("seq"), py::arg("samples"),
           py::arg("arrival_ns") = py::none(), py::arg("gap_ns") = 0)
      .def("post_event", &PyProducer::post_event, py::arg("kind"), py::arg("seq"), py::arg("outcome") = 0,
           py::arg("detail") = 0)
      .def("take", &PyProducer::take, py::arg("seq"),
           "Take the replacement posted for exactly seq: (status, (2, frames, channels) array or None), status one "
           "of 'taken', 'missing', 'torn', 'refused' (non-finite or |x| > 1 samples).")
      .def("note_playout", &PyProducer::note_playout, py::arg("seq"), py::arg("queued_blocks"),
           py::arg("now_ns") = py::none(),
           "Play-out clock: block seq was just played, queued_blocks later ones are already received.")
      .def("consumer_alive", [](PyProducer& self) { return self.get().consumer_alive(nextblock::monotonic_ns()); })
      .def("counters", [](PyProducer& self) { return counters_of(self.get()); })
      .def("geometry",
           [](PyProducer& self) {
             auto& p = self.get();
             return geometry_of(p.header(), p.config(), p.layout());
           })
      .def_property_readonly("name", [](PyProducer& self) { return self.get().name(); })
      .def_property_readonly("closed", [](PyProducer& self) { return !self.p_; })
      .def("close", &PyProducer::close);

  py::class_<PyConsumer>(m, "Consumer", "Consumer side of a segment (predictor, learner, tests).")
      .def(py::init<const std::string&, bool>(), py::arg("name"), py::arg("post_replacements") = false)
      .def("wait_for_blocks", &PyConsumer::wait_for_blocks, py::arg("after_count"), py::arg("timeout_s"))
      .def("read_blocks", &PyConsumer::read_blocks, py::arg("start_index"), py::arg("max_count"))
      .def("latest_history", &PyConsumer::latest_history, py::arg("n_samples"))
      .def("read_events", &PyConsumer::read_events, py::arg("start_index"), py::arg("max_count"))
      .def("post_replacement", &PyConsumer::post_replacement, py::arg("seq"), py::arg("samples"))
      .def("heartbeat", [](PyConsumer& self) { self.get().heartbeat(); })
      .def(
          "set_missing_lookahead", [](PyConsumer& self, uint32_t blocks) { self.get().set_missing_lookahead(blocks); },
          py::arg("blocks"),
          "Ask the producer to check, at each pull, whether the block `blocks` past the one played has arrived and "
          "to wake a sleeping just-in-time waiter when it has not (0: off; clamped to 16).")
      .def_property_readonly("missing_lookahead", [](PyConsumer& self) { return self.get().missing_lookahead(); })
      .def("playout", &PyConsumer::playout,
           "(seq, at_ns, queued_blocks) of the producer's last pull, or None before its first")
      .def("producer_alive", [](PyConsumer& self) { return self.get().producer_alive(); })
      .def("counters",
           [](PyConsumer& self) {
             auto& c = self.get();
             return counters_of(c.header(), c.control());
           })
      .def("geometry",
           [](PyConsumer& self) {
             auto& c = self.get();
             return geometry_of(c.header(), c.config(), c.layout());
           })
      .def_property_readonly("blocks_written", [](PyConsumer& self) { return self.get().blocks_written(); })
      .def_property_readonly("events_written", [](PyConsumer& self) { return self.get().events_written(); })
      .def_property_readonly("producer_closed", [](PyConsumer& self) { return self.get().producer_closed(); })
      .def_property_readonly("is_poster", [](PyConsumer& self) { return self.get().is_poster(); })
      .def_property_readonly("name", [](PyConsumer& self) { return self.get().name(); })
      .def_property_readonly("closed", [](PyConsumer& self) { return !self.c_; })
      .def("close", &PyConsumer::close);

  py::class_<PyStreamTap>(m, "StreamTap",
                          "Per-wake read of one stream into a caller-owned context ring (nextblock/stream_tap.hpp).")
      .def(py::init<py::object, py::array_t<float, py::array::c_style>, py::array_t<int64_t, py::array::c_style>,
                    py::array_t<uint8_t, py::array::c_style>, py::array_t<int64_t, py::array::c_style>, uint64_t>(),
           py::arg("consumer"), py::arg("samples"), py::arg("seq_of_slot"), py::arg("source_of_slot"),
           py::arg("slacks"), py::arg("next_index"),
           "consumer: a _core.Consumer; samples (channels, 2*slots*frames) float32, seq_of_slot (slots,) int64, "
           "source_of_slot (slots,) uint8, slacks (n,) int64: arrays written in place (keep them; no copies).")
      .def("poll", &PyStreamTap::poll, py::arg("now_ns"), py::arg("period_ns"), py::arg("stale_ns"),
           py::arg("max_blocks") = 64,
           "Copy the blocks published since the last call into the ring (GIL released); returns (blocks, skipped, "
           "newest_seq, newest_arrival_ns, slacks_recorded, clock) with clock (seq, at_ns, queued_blocks) or None.")
      .def_property_readonly("next_index", [](PyStreamTap& self) { return self.tap_->next_index(); })
      .def_property_readonly("slack_count", [](PyStreamTap& self) { return self.tap_->slack_count(); })
      .def("reset_slacks", [](PyStreamTap& self) { self.tap_->reset_slacks(); });

  m.def(
      "guard_prediction",
      [](py::array_t<float, py::array::c_style> prediction, py::array_t<float, py::array::c_style> context,
         float ceiling, float max_gain_over_context, float floor) {
        if (prediction.ndim() != 3 || context.ndim() != 2 || context.shape(0) != prediction.shape(0))
          throw py::value_error("prediction (rows, 2, frames) and context (rows, samples) float32, same rows");
        const py::ssize_t rows = prediction.shape(0), per_row = prediction.shape(1) * prediction.shape(2);
        const py::ssize_t ctx_n = context.shape(1);
        float* pd = prediction.mutable_data();
        const float* cd = context.data();
        int limited = 0;
        {
          py::gil_scoped_release release;
          // non-finite anywhere (or a float32 sum that overflows, as the numpy guard had it): reject all
          float total = 0.f;
          for (py::ssize_t i = 0; i < rows * per_row; ++i) total += pd[i];
          if (!std::isfinite(total)) return -1;
          for (py::ssize_t r = 0; r < rows; ++r) {
            float* row = pd + r * per_row;
            const float* ctx = cd + r * ctx_n;
            float peak = 0.f, ctx_peak = 0.f;
            for (py::ssize_t i = 0; i < per_row; ++i) peak = std::max(peak, std::fabs(row[i]));
            for (py::ssize_t i = 0; i < ctx_n; ++i) ctx_peak = std::max(ctx_peak, std::fabs(ctx[i]));
            const float limit = std::min(ceiling, std::max(floor, max_gain_over_context * ctx_peak));
            if (peak > limit) {
              limited = 1;
              const float gain = limit / peak;
              for (py::ssize_t i = 0; i < per_row; ++i) row[i] *= gain;
            }
          }
        }
        return limited;
      },
      py::arg("prediction"), py::arg("context"), py::arg("ceiling"), py::arg("max_gain_over_context"), py::arg("floor"),
      "SampleGuard's check in one pass (runtime/guard.py): -1 if any sample is non-finite (nothing changed), else "
      "each row of prediction (rows, 2, frames) scaled in place to at most min(ceiling, max(floor, gain * its "
      "context's peak)); returns 1 if a row was scaled, 0 if none.");
  m.def(
      "wait_for_decision_wakeups", []() { return g_wait_wakeups; },
      "Passes of wait_for_decision's loop since import: its wake-ups (the idle cost's unit).");
  m.def(
      "wait_for_decision",
      [](py::list items, uint64_t until_ns, uint64_t window_ns, int block_wait) {
        std::vector<nextblock::WaitItem> v;
        v.reserve(py::len(items));
        for (py::handle h : items) {
          auto t = h.cast<py::tuple>();
          if (t.size() < 8 || t.size() > 10)
            throw py::value_error(
                "each item is (tap, just_in_time, handled_seq, lead_ns, wake_ns, period_ns, stale_ns, max_chain[, "
                "lookahead[, wake_on_gap]])");
          auto& tap = t[0].cast<PyStreamTap&>();
          nextblock::WaitItem it;
          it.tap = tap.tap_.get();
          it.consumer = &tap.consumer_.cast<PyConsumer&>().get();
          it.just_in_time = t[1].cast<bool>();
          it.handled_seq = t[2].cast<int64_t>();
          it.lead_ns = t[3].cast<int64_t>();
          it.wake_ns = t[4].cast<uint64_t>();
          it.period_ns = t[5].cast<uint64_t>();
          it.stale_ns = t[6].cast<uint64_t>();
          it.max_chain = t[7].cast<int64_t>();
          it.lookahead = t.size() >= 9 ? t[8].cast<uint32_t>() : 0;
          it.wake_on_gap = t.size() == 10 && t[9].cast<bool>();
          v.push_back(it);
        }
        py::gil_scoped_release release;
        static uint64_t wakeups = 0;  // only ever called with the GIL held before release: one caller at a time
        const int r = nextblock::wait_for_decision(v, until_ns, window_ns, block_wait, &wakeups);
        g_wait_wakeups = wakeups;
        return r;
      },
      py::arg("items"), py::arg("until_ns"), py::arg("window_ns"), py::arg("block_wait") = -1,
      "Sleep (GIL released) until a stream needs a decision or until_ns; keeps every tap's ring current. "
      "items: (tap, just_in_time, handled_seq, lead_ns, wake_ns, period_ns, stale_ns, max_chain[, lookahead[, "
      "wake_on_gap]]); "
      "lookahead k > 0: a just-in-time stream sleeps until the producer finds the block k past the one it plays "
      "missing (its missing-block wake) instead of waking at every block; wake_on_gap: it also returns as soon as "
      "a block after its first missing seq arrived (the loss is known: the two-sided fill's chance). "
      "Returns the index of the first stream that needs the caller, or -1 at until_ns.");
}
