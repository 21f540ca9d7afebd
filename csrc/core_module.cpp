// nextblock._core: Python bindings of the shared-memory protocol (csrc/nextblock/shm_protocol.hpp)
// and of the LPC guess kernel of NextBlock's features (csrc/nextblock/lpc.hpp).
//
// Thin by design: the header is the source of truth; this file converts between numpy arrays
// and the header's raw pointers, maps ErrorCode to Python exceptions, and releases the GIL
// while a consumer sleeps.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nextblock/lpc.hpp"
#include "nextblock/shm_protocol.hpp"

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

py::dict counters_of(const nextblock::SegmentHeader& h) {
  py::dict d;
  d["blocks_written"] = h.blocks_written.load();
  d["events_written"] = h.events_written.load();
  d["replacements_posted"] = h.replacements_posted.load();
  d["replacements_used"] = h.replacements_used.load();
  d["replacements_missed"] = h.replacements_missed.load();
  d["replacements_torn"] = h.replacements_torn.load();
  d["poster_pid"] = h.poster_pid.load();
  d["consumer_heartbeat_ns"] = h.consumer_heartbeat_ns.load();
  d["producer_closed"] = bool(h.producer_closed.load());
  return d;
}

py::dict geometry_of(const nextblock::SegmentHeader& h) {
  py::dict d;
  d["layout_version"] = h.layout_version;
  d["sample_rate_hz"] = h.sample_rate_hz;
  d["frames_per_block"] = h.frames_per_block;
  d["channels"] = h.channels;
  d["block_ring_slots"] = h.block_ring_slots;
  d["event_ring_slots"] = h.event_ring_slots;
  d["replacement_slots"] = h.replacement_slots;
  d["producer_pid"] = h.producer_pid;
  d["producer_start_ticks"] = h.producer_start_ticks;
  d["created_unix_ns"] = h.created_unix_ns;
  d["total_bytes"] = h.total_bytes;
  return d;
}

class PyProducer {
 public:
  PyProducer(const std::string& name, uint32_t sample_rate_hz, uint32_t frames_per_block, uint32_t channels,
             uint32_t block_ring_slots, uint32_t event_ring_slots, uint32_t replacement_slots) {
    nextblock::SegmentConfig cfg{sample_rate_hz, frames_per_block, channels, block_ring_slots, event_ring_slots,
                                 replacement_slots};
    std::string why;
    ErrorCode code = ErrorCode::Ok;
    p_ = nextblock::Producer::create(name, cfg, &why, &code);
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

  py::object take_replacement(uint64_t seq) {
    auto& p = get();
    if (!p.take_replacement(seq, scratch_.data())) return py::none();
    F32Array out({py::ssize_t(2), py::ssize_t(p.frames_per_block()), py::ssize_t(p.channels())});
    std::memcpy(out.mutable_data(), scratch_.data(), scratch_.size() * sizeof(float));
    return std::move(out);
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
    const auto& h = c_->header();
    block_.resize(size_t(h.frames_per_block) * h.channels);
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
    const auto& h = c.header();
    const uint64_t frames = h.frames_per_block, channels = h.channels;
    uint64_t written = c.blocks_written();
    const uint64_t slots = h.block_ring_slots;
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
    const auto& h = c.header();
    const uint64_t frames = h.frames_per_block, channels = h.channels;
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
        for (uint64_t ch = 0; ch < channels; ++ch) o[ch * n_samples + dst0 + (f - (frames - take))] = block_[f * channels + ch];
      filled += take;
    }
    return py::make_tuple(out, written);
  }

  py::tuple read_events(uint64_t start, uint64_t max_count) {
    auto& c = get();
    const auto& h = c.header();
    const uint64_t written = c.events_written();
    const uint64_t slots = h.event_ring_slots;
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
    const auto& h = c.header();
    if (!c.is_poster()) throw py::value_error("this consumer did not claim the poster role (post_replacements=False)");
    check_shape(samples, {2, py::ssize_t(h.frames_per_block), py::ssize_t(h.channels)}, "replacement");
    return c.post_replacement(seq, samples.data());
  }

  void close() { c_.reset(); }

  std::unique_ptr<nextblock::Consumer> c_;
  std::vector<float> block_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "NextBlock's shared-memory protocol (C++ core). Use nextblock.capture for the Pythonic API.";

  auto base = py::register_exception<SegmentError>(m, "SegmentError", PyExc_RuntimeError);
  py::register_exception<SegmentNotFound>(m, "SegmentNotFound", base.ptr());
  py::register_exception<SegmentPermissionError>(m, "SegmentPermissionError", base.ptr());
  py::register_exception<LayoutMismatch>(m, "LayoutMismatch", base.ptr());
  py::register_exception<StaleSegment>(m, "StaleSegment", base.ptr());
  py::register_exception<SegmentInUse>(m, "SegmentInUse", base.ptr());

  m.attr("MAGIC") = nextblock::kMagic;
  m.attr("LAYOUT_VERSION") = nextblock::kLayoutVersion;
  m.attr("HEADER_BYTES") = nextblock::kHeaderBytes;

  m.def("segment_name_for_pid", &nextblock::segment_name_for_pid, py::arg("pid"),
        "The shared-memory name a producer with this PID uses: '/nextblock-<pid>'.");
  m.def("monotonic_ns", &nextblock::monotonic_ns, "CLOCK_MONOTONIC in ns: the time base of every *_ns field.");
  m.def(
      "validate_header",
      [](py::bytes image) {
        std::string s = image;
        std::string why;
        ErrorCode code = nextblock::validate_header(s.data(), s.size(), &why);
        if (code != ErrorCode::Ok) raise_for(code, why);
      },
      py::arg("image"),
      "Validate a segment image (bytes). Raises LayoutMismatch (bad magic, version, sizes) on a bad one.");
  m.def(
      "compute_layout",
      [](uint32_t sample_rate_hz, uint32_t frames_per_block, uint32_t channels, uint32_t block_ring_slots,
         uint32_t event_ring_slots, uint32_t replacement_slots) {
        nextblock::SegmentConfig cfg{sample_rate_hz, frames_per_block, channels, block_ring_slots, event_ring_slots,
                                     replacement_slots};
        nextblock::Layout l;
        std::string why;
        ErrorCode code = nextblock::compute_layout(cfg, &l, &why);
        if (code != ErrorCode::Ok) raise_for(code, why);
        py::dict d;
        d["block_slot_bytes"] = l.block_slot_bytes;
        d["block_ring_offset"] = l.block_ring_offset;
        d["event_slot_bytes"] = l.event_slot_bytes;
        d["event_ring_offset"] = l.event_ring_offset;
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
        NB_OFF(magic); NB_OFF(layout_version); NB_OFF(header_bytes); NB_OFF(sample_rate_hz); NB_OFF(frames_per_block);
        NB_OFF(channels); NB_OFF(sample_format); NB_OFF(block_ring_slots); NB_OFF(event_ring_slots);
        NB_OFF(replacement_slots); NB_OFF(producer_pid); NB_OFF(producer_start_ticks); NB_OFF(created_unix_ns);
        NB_OFF(block_slot_bytes); NB_OFF(block_ring_offset); NB_OFF(event_slot_bytes); NB_OFF(event_ring_offset);
        NB_OFF(replacement_slot_bytes); NB_OFF(replacement_offset); NB_OFF(total_bytes);
#undef NB_OFF
        return d;
      },
      "Byte offsets of the header's identity fields (for tests and fuzzing; the header is the truth).");

  m.def(
      "lpc_continuation",
      [](F32Array context, F32Array windowed, int order, int n_out,
         py::array_t<double, py::array::c_style | py::array::forcecast> lag, double white_noise, double silence_energy) {
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
        if (order < 1 || order >= n || order > 1024) throw py::value_error("order must be in [1, samples) and at most 1024");
        if (n_out < 1) throw py::value_error("n_out must be positive");
        py::array_t<float> out({rows, py::ssize_t(n_out)});
        std::vector<double> work(nextblock::burg_work_doubles(size_t(n), order, n_out));
        const float* h = history.data();
        float* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (py::ssize_t row = 0; row < rows; ++row)
            nextblock::burg_continue_row(h + row * n, size_t(n), order, silence_mean_square, n_out, o + row * n_out,
                                         work.data());
        }
        return out;
      },
      py::arg("history"), py::arg("order"), py::arg("n_out"), py::arg("silence_mean_square"),
      "Burg AR continuation of each row of history (rows, n) float32: Burg's method of the given order "
      "on the whole row, AR recursion from its last `order` samples. Returns (rows, n_out) float32 "
      "(zeros for a row whose mean square is not above silence_mean_square). See nextblock.features.lpc.");

  py::class_<PyProducer>(m, "Producer", "Producer side of a segment (patched JackTrip; tests and the demo).")
      .def(py::init<const std::string&, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t>(), py::arg("name"),
           py::arg("sample_rate_hz"), py::arg("frames_per_block"), py::arg("channels"), py::arg("block_ring_slots") = 1024,
           py::arg("event_ring_slots") = 1024, py::arg("replacement_slots") = 8)
      .def("publish_block", &PyProducer::publish_block, py::arg("seq"), py::arg("samples"), py::arg("arrival_ns") = py::none(),
           py::arg("gap_ns") = 0)
      .def("post_event", &PyProducer::post_event, py::arg("kind"), py::arg("seq"), py::arg("outcome") = 0, py::arg("detail") = 0)
      .def("take_replacement", &PyProducer::take_replacement, py::arg("seq"))
      .def("consumer_alive", [](PyProducer& self) { return self.get().consumer_alive(nextblock::monotonic_ns()); })
      .def("counters", [](PyProducer& self) { return counters_of(self.get().header()); })
      .def("geometry", [](PyProducer& self) { return geometry_of(self.get().header()); })
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
      .def("producer_alive", [](PyConsumer& self) { return self.get().producer_alive(); })
      .def("counters", [](PyConsumer& self) { return counters_of(self.get().header()); })
      .def("geometry", [](PyConsumer& self) { return geometry_of(self.get().header()); })
      .def_property_readonly("blocks_written", [](PyConsumer& self) { return self.get().blocks_written(); })
      .def_property_readonly("events_written", [](PyConsumer& self) { return self.get().events_written(); })
      .def_property_readonly("producer_closed", [](PyConsumer& self) { return self.get().producer_closed(); })
      .def_property_readonly("is_poster", [](PyConsumer& self) { return self.get().is_poster(); })
      .def_property_readonly("name", [](PyConsumer& self) { return self.get().name(); })
      .def_property_readonly("closed", [](PyConsumer& self) { return !self.c_; })
      .def("close", &PyConsumer::close);
}
