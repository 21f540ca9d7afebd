// nextblock._core bindings of the live loop's hot pieces (nextblock.runtime): the per-wake read of
// a stream into its context ring (StreamTap, csrc/nextblock/stream_tap.hpp), the wait for the next
// decision over all streams (wait_for_decision), and the sample checks of a context and a
// prediction (all_finite, guard_prediction). The GIL is released while they run or sleep.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "bind_shm.hpp"
#include "nextblock/stream_tap.hpp"

namespace py = pybind11;
using nextblock_py::F32Array;
using nextblock_py::PyConsumer;

namespace {

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
  // (seq, at_ns, queued_blocks, pull_blocks, pull_left) or None.
  py::tuple poll(uint64_t now_ns, uint64_t period_ns, uint64_t stale_ns, uint64_t max_blocks) {
    auto& c = consumer_.cast<PyConsumer&>().get();
    nextblock::TapResult r;
    {
      py::gil_scoped_release release;
      r = tap_->poll(c, now_ns, period_ns, stale_ns, max_blocks);
    }
    const nextblock::PlayoutClock& k = r.clock;
    py::object clock = r.have_clock
                           ? py::object(py::make_tuple(k.seq, k.at_ns, k.queued_blocks, k.pull_blocks, k.pull_left))
                           : py::none();
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

}  // namespace

void init_runtime(py::module_& m) {
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
           "newest_seq, newest_arrival_ns, slacks_recorded, clock) with clock (seq, at_ns, queued_blocks, pull_blocks, "
           "pull_left) or None.")
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
