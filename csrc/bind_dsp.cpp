// nextblock._core bindings of the DSP kernels of NextBlock's features: the LPC and Burg
// continuations (csrc/nextblock/lpc.hpp), the long-term pattern predictor
// (csrc/nextblock/pattern.hpp) and the spectral codec (csrc/nextblock/codec.hpp). Thin: shapes are
// checked here, the arithmetic is the headers', and the GIL is released while it runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "nextblock/codec.hpp"
#include "nextblock/lpc.hpp"
#include "nextblock/pattern.hpp"

namespace py = pybind11;
using nextblock_py::check_shape;
using nextblock_py::F32Array;

namespace {

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

void init_dsp(py::module_& m) {
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
}
