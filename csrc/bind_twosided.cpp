// nextblock._core bindings of the two-sided gap fill (csrc/nextblock/lsar.hpp). Thin: shapes are
// checked here, the arithmetic is the header's, and the GIL is released while it runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "nextblock/lsar.hpp"

namespace py = pybind11;

namespace {

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::tuple lsar_fill(const F32Array& past, const F32Array& future, py::ssize_t gap, int order, py::ssize_t fit_samples,
                    py::object prior_obj, double prior_weight, double prior_fade, double silence_mean_square,
                    bool blend_only, bool levinson) {
  if (past.ndim() != 2 || future.ndim() != 2) throw py::value_error("past and future must have shape (rows, samples)");
  const py::ssize_t rows = past.shape(0), n_past = past.shape(1), n_future = future.shape(1);
  if (future.shape(0) != rows) throw py::value_error("past and future must have the same number of rows");
  if (order < 1 || order > 1024) throw py::value_error("order must be in [1, 1024]");
  if (fit_samples <= order || fit_samples > n_past)
    throw py::value_error("fit_samples must be more than order and at most the past's samples");
  if (!(prior_fade >= 0.0 && prior_fade <= 1.0)) throw py::value_error("prior_fade must be in [0, 1]");
  if (gap < 1 || gap > 8192) throw py::value_error("gap must be in [1, 8192] samples");
  if (n_future < 1) throw py::value_error("future must hold at least one sample");
  F32Array prior;
  const bool has_prior = !prior_obj.is_none();
  if (has_prior) {
    prior = prior_obj.cast<F32Array>();
    if (prior.ndim() != 2 || prior.shape(0) != rows || prior.shape(1) != gap)
      throw py::value_error("prior must have shape (rows, gap)");
  }
  py::array_t<float> out({rows, gap});
  py::array_t<std::int8_t> path(rows);
  nextblock::LsarScratch scratch(std::size_t(fit_samples), order, std::size_t(gap), std::size_t(n_future));
  const float* pa = past.data();
  const float* fu = future.data();
  const float* pr = has_prior ? prior.data() : nullptr;
  float* o = out.mutable_data();
  std::int8_t* w = path.mutable_data();
  {
    py::gil_scoped_release release;
    for (py::ssize_t r = 0; r < rows; ++r)
      w[r] = std::int8_t(nextblock::lsar_fill_row(pa + r * n_past, std::size_t(n_past), fu + r * n_future,
                                                  std::size_t(n_future), std::size_t(gap), pr ? pr + r * gap : nullptr,
                                                  prior_weight, prior_fade, silence_mean_square, o + r * gap, scratch,
                                                  blend_only, levinson));
  }
  return py::make_tuple(out, path);
}

}  // namespace

void init_twosided(py::module_& m) {
  m.def("lsar_fill", &lsar_fill, py::arg("past"), py::arg("future"), py::arg("gap"), py::arg("order"),
        py::arg("fit_samples"), py::arg("prior") = py::none(), py::arg("prior_weight") = 0.0,
        py::arg("prior_fade") = 0.0, py::arg("silence_mean_square") = 1e-12, py::arg("blend_only") = false,
        py::arg("levinson") = false,
        "Two-sided fill of `gap` samples between each row of past (rows, n_past) float32 and of future "
        "(rows, n_future): least-squares AR interpolation with Burg's AR(order) fitted to the past's last "
        "fit_samples, fused with prior (rows, gap) at prior_weight (fading by prior_fade towards the gap's end), "
        "guarded (csrc/nextblock/lsar.hpp); blend_only: the forward guess faded into the backward AR extrapolation "
        "alone; levinson: allow the "
        "faster Levinson solve where the equations are Toeplitz (future samples >= order, constant prior weight). "
        "Returns (fill (rows, gap) float32, path (rows,) int8: 0 interpolated, 1 blended, 2 forward, 3 silent).");
}
