// Helpers shared by the nextblock._core binding files (csrc/bind_*.cpp): the float32 array type
// the bindings accept and its shape check. Internal to the extension.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace nextblock_py {

namespace py = pybind11;

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

inline void check_shape(const F32Array& a, std::initializer_list<py::ssize_t> want, const char* what) {
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

}  // namespace nextblock_py
