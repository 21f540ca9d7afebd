// nextblock._core: the C++ core of NextBlock as one Python extension. This file only declares the
// module; each area's bindings are in their own file:
//   * csrc/bind_shm.cpp       the shared-memory protocol (segment layout, Producer, Consumer, errors)
//   * csrc/bind_dsp.cpp       the DSP kernels (LPC / Burg continuations, pattern predictor, codec)
//   * csrc/bind_runtime.cpp   the live loop's pieces (StreamTap, wait_for_decision, sample guards)
//   * csrc/bind_twosided.cpp  the two-sided gap fill (lsar_fill)
#include <pybind11/pybind11.h>

namespace py = pybind11;

void init_shm(py::module_& m);       // csrc/bind_shm.cpp
void init_dsp(py::module_& m);       // csrc/bind_dsp.cpp
void init_runtime(py::module_& m);   // csrc/bind_runtime.cpp
void init_twosided(py::module_& m);  // csrc/bind_twosided.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "NextBlock's shared-memory protocol (C++ core). Use nextblock.capture for the Pythonic API.";
  init_twosided(m);
  init_shm(m);
  init_dsp(m);
  init_runtime(m);
}
