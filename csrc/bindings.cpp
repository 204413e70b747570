// The one pybind11 module, xmc._core. It only converts arguments and releases
// the GIL; every algorithm lives in csrc/core/ and knows nothing of Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/common/parallel.h"
#include "core/common/sparse.h"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Python passes canonical CSR arrays (see xmc/utils/sparse.py: csr_arrays).
// The arrays must outlive the view: callers keep the py::array objects alive.
xmc::CsrView csr_view(const CArray<int64_t>& indptr, const CArray<int32_t>& indices,
                      const CArray<float>& data, int64_t n_cols) {
  if (indptr.ndim() != 1 || indptr.size() < 1)
    throw std::invalid_argument("CSR indptr must be a non-empty 1-d array");
  xmc::CsrView v;
  v.rows = indptr.size() - 1;
  v.cols = n_cols;
  v.indptr = indptr.data();
  v.indices = indices.data();
  v.data = data.size() ? data.data() : nullptr;
  if (v.indptr[v.rows] != static_cast<int64_t>(indices.size()))
    throw std::invalid_argument("CSR indptr[-1] does not match the number of indices");
  if (data.size() && data.size() != indices.size())
    throw std::invalid_argument("CSR data and indices differ in length");
  return v;
}

// Moves a vector into a numpy array without copying.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(static_cast<py::ssize_t>(heap->size()), heap->data(), owner);
}

py::tuple csr_to_python(xmc::CsrMatrix&& m) {
  return py::make_tuple(to_numpy(std::move(m.indptr)), to_numpy(std::move(m.indices)),
                        to_numpy(std::move(m.data)), py::make_tuple(m.rows, m.cols));
}

}  // namespace

// ===== io: parsers ===========================================================

// ===== end io ================================================================


// ===== tree: PIFA, balanced k-means ==========================================

// ===== end tree ==============================================================


// ===== linear: PLT node classifiers ==========================================

// ===== end linear ============================================================


// ===== search: beam search ===================================================

// ===== end search ============================================================


PYBIND11_MODULE(_core, m) {
  m.doc() = "xmc native core: parsers, label tree, linear PLT solver, beam search";
  m.def("max_threads", [] { return xmc::resolve_threads(0); },
        "Threads an xmc routine uses when asked for threads=0 (all cores).");

  // ----- io registrations -----

  // ----- end io registrations -----


  // ----- tree registrations -----

  // ----- end tree registrations -----


  // ----- linear registrations -----

  // ----- end linear registrations -----


  // ----- search registrations -----

  // ----- end search registrations -----
}
