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
#include "core/common/errors.h"
#include "core/io/xc_reader.h"
#include "core/io/xc_writer.h"

namespace {

py::tuple xc_to_python(xmc::XcData&& d) {
  return py::make_tuple(csr_to_python(std::move(d.X)), csr_to_python(std::move(d.Y)), d.had_header);
}

py::tuple py_read_xc(const std::string& path, int64_t n_features, int64_t n_labels, int threads) {
  xmc::XcReadOptions opts;
  opts.n_features = n_features;
  opts.n_labels = n_labels;
  opts.threads = threads;
  xmc::XcData d;
  {
    py::gil_scoped_release nogil;
    d = xmc::read_xc_file(path, opts);
  }
  return xc_to_python(std::move(d));
}

// Same parser over bytes in memory: lets tests hit chunk boundaries on small inputs.
py::tuple py_parse_xc_bytes(const py::bytes& data, const std::string& name, int64_t n_features,
                            int64_t n_labels, int threads, int64_t min_chunk_bytes) {
  char* buf = nullptr;
  Py_ssize_t len = 0;
  if (PyBytes_AsStringAndSize(data.ptr(), &buf, &len) != 0) throw py::error_already_set();
  xmc::XcReadOptions opts;
  opts.n_features = n_features;
  opts.n_labels = n_labels;
  opts.threads = threads;
  opts.min_chunk_bytes = min_chunk_bytes;
  xmc::XcData d;
  {
    py::gil_scoped_release nogil;  // `data` is immutable and held by the caller
    d = xmc::parse_xc(buf, static_cast<size_t>(len), name, opts);
  }
  return xc_to_python(std::move(d));
}

void py_write_xc(const std::string& path, const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices,
                 const CArray<float>& x_data, int64_t n_features, const CArray<int64_t>& y_indptr,
                 const CArray<int32_t>& y_indices, int64_t n_labels, bool header, int threads) {
  CArray<float> no_values(0);
  xmc::CsrView X = csr_view(x_indptr, x_indices, x_data, n_features);
  xmc::CsrView Y = csr_view(y_indptr, y_indices, no_values, n_labels);
  xmc::XcWriteOptions opts;
  opts.header = header;
  opts.threads = threads;
  py::gil_scoped_release nogil;
  xmc::write_xc_file(path, X, Y, opts);
}

// xmc::ParseError becomes xmc.data.DataFormatError (a ValueError) carrying file and line.
void translate_parse_error(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const xmc::ParseError& e) {
    try {
      py::object cls = py::module_::import("xmc.data.errors").attr("DataFormatError");
      py::object err = cls(py::str(e.what()), e.file(), e.line());
      PyErr_SetObject(cls.ptr(), err.ptr());
    } catch (py::error_already_set&) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  }
}

}  // namespace

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
  py::register_local_exception_translator(&translate_parse_error);
  m.def("read_xc", &py_read_xc, py::arg("path"), py::arg("n_features") = -1, py::arg("n_labels") = -1,
        py::arg("threads") = 0,
        "Parse an Extreme Classification Repository file. Returns ((X csr arrays), (Y csr arrays), had_header).");
  m.def("parse_xc_bytes", &py_parse_xc_bytes, py::arg("data"), py::arg("name"), py::arg("n_features") = -1,
        py::arg("n_labels") = -1, py::arg("threads") = 0, py::arg("min_chunk_bytes") = 1 << 20,
        "read_xc over bytes in memory; `name` is used in error messages.");
  m.def("write_xc", &py_write_xc, py::arg("path"), py::arg("x_indptr"), py::arg("x_indices"), py::arg("x_data"),
        py::arg("n_features"), py::arg("y_indptr"), py::arg("y_indices"), py::arg("n_labels"),
        py::arg("header") = true, py::arg("threads") = 0,
        "Write CSR features and labels in the XC format to path (not atomic: callers rename).");
  // ----- end io registrations -----


  // ----- tree registrations -----

  // ----- end tree registrations -----


  // ----- linear registrations -----

  // ----- end linear registrations -----


  // ----- search registrations -----

  // ----- end search registrations -----
}
