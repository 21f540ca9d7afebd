// nextblock._core bindings of the shared-memory protocol (csrc/nextblock/shm_layout.hpp,
// shm_producer.hpp, shm_consumer.hpp): the segment's constants and layout, the Producer (tests and
// the demo; JackTrip uses the C++ class directly), the Consumer, their errors as Python exceptions.
// Thin by design: the headers are the source of truth; this file converts between numpy arrays and
// the headers' raw pointers, maps ErrorCode to Python exceptions, and releases the GIL while a
// consumer sleeps.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bind_shm.hpp"
#include "nextblock/shm_consumer.hpp"
#include "nextblock/shm_layout.hpp"
#include "nextblock/shm_producer.hpp"

namespace py = pybind11;
using nextblock::ErrorCode;
using nextblock_py::check_shape;
using nextblock_py::F32Array;
using nextblock_py::PyConsumer;
using nextblock_py::raise_for;

namespace {

// C++ exception types, one per Python exception class (registered below).
struct SegmentError : std::runtime_error { using std::runtime_error::runtime_error; };
struct SegmentNotFound : SegmentError { using SegmentError::SegmentError; };
struct SegmentPermissionError : SegmentError { using SegmentError::SegmentError; };
struct LayoutMismatch : SegmentError { using SegmentError::SegmentError; };
struct StaleSegment : SegmentError { using SegmentError::SegmentError; };
struct SegmentInUse : SegmentError { using SegmentError::SegmentError; };
struct SegmentNotReady : SegmentError { using SegmentError::SegmentError; };

}  // namespace

[[noreturn]] void nextblock_py::raise_for(ErrorCode code, const std::string& why) {
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

namespace {

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

  void note_playout(uint64_t seq, int64_t queued_blocks, py::object now_ns, uint32_t pull_blocks, uint32_t pull_left) {
    get().note_playout(seq, now_ns.is_none() ? nextblock::monotonic_ns() : now_ns.cast<uint64_t>(), queued_blocks,
                       pull_blocks, pull_left);
  }

  void close() { p_.reset(); }

  std::unique_ptr<nextblock::Producer> p_;
  std::vector<float> scratch_;
};

}  // namespace

void init_shm(py::module_& m) {
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
      "playout_due_ns",
      [](uint64_t clock_seq, uint64_t clock_ns, uint32_t pull_blocks, uint32_t pull_left, int64_t period_ns,
         int64_t seq) {
        nextblock::PlayoutClock k;
        k.seq = clock_seq;
        k.at_ns = clock_ns;
        nextblock::clamp_pull(pull_blocks, pull_left);
        k.pull_blocks = pull_blocks;
        k.pull_left = pull_left;
        return k.due_ns(seq, period_ns);
      },
      py::arg("clock_seq"), py::arg("clock_ns"), py::arg("pull_blocks"), py::arg("pull_left"), py::arg("period_ns"),
      py::arg("seq"),
      "When block seq is due by the play-out clock reading (clock_seq played at clock_ns by a pull of pull_blocks "
      "blocks, pull_left after it): PlayoutClock::due_ns, the rule the tap and the waiter use.");
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
           py::arg("now_ns") = py::none(), py::arg("pull_blocks") = 1, py::arg("pull_left") = 0,
           "Play-out clock: block seq was just played, queued_blocks later ones are already received. A pull that "
           "plays several blocks back to back (a hub whose period is longer than the peer's) calls it for each, "
           "with pull_blocks the blocks it plays and pull_left those it plays after seq.")
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
           "(seq, at_ns, queued_blocks, pull_blocks, pull_left) of the producer's last pull, or None before its "
           "first: block seq was played at at_ns by a pull that plays pull_blocks blocks, pull_left after seq")
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
}
