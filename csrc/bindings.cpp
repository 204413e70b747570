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
#include "core/search/beam.h"

namespace {

// The searcher plus nothing else: the CSC arrays are re-laid at construction,
// so Python may drop them once the searcher exists.
std::unique_ptr<xmc::search::BeamSearcher> make_searcher(
    const std::vector<CArray<int64_t>>& layer_indptr, const CArray<int32_t>& label_order,
    const std::vector<CArray<int64_t>>& w_indptr, const std::vector<CArray<int32_t>>& w_indices,
    const std::vector<CArray<float>>& w_data, const std::vector<int64_t>& w_rows,
    const std::string& activation, int threads) {
  const size_t depth = layer_indptr.size();
  if (w_indptr.size() != depth || w_indices.size() != depth || w_data.size() != depth ||
      w_rows.size() != depth)
    throw std::invalid_argument("one CSC matrix (indptr, indices, data, rows) is needed per tree layer");
  const auto act = xmc::search::parse_activation(activation);
  std::vector<std::vector<int64_t>> ptrs(depth);
  std::vector<xmc::search::CscView> views(depth);
  for (size_t t = 0; t < depth; ++t) {
    ptrs[t].assign(layer_indptr[t].data(), layer_indptr[t].data() + layer_indptr[t].size());
    if (w_indptr[t].ndim() != 1 || w_indptr[t].size() < 1)
      throw std::invalid_argument("CSC indptr must be a non-empty 1-d array");
    auto& v = views[t];
    v.rows = w_rows[t];
    v.cols = w_indptr[t].size() - 1;
    v.indptr = w_indptr[t].data();
    v.indices = w_indices[t].data();
    v.data = w_data[t].data();
    if (w_indptr[t].data()[v.cols] != static_cast<int64_t>(w_indices[t].size()) ||
        w_indices[t].size() != w_data[t].size())
      throw std::invalid_argument("layer " + std::to_string(t) +
                                  ": CSC indptr, indices and data disagree in length");
  }
  std::vector<int32_t> order(label_order.data(), label_order.data() + label_order.size());
  py::gil_scoped_release release;
  return std::make_unique<xmc::search::BeamSearcher>(ptrs, order, views, act, threads);
}

py::tuple searcher_search(const xmc::search::BeamSearcher& s, const CArray<int64_t>& indptr,
                          const CArray<int32_t>& indices, const CArray<float>& data,
                          int64_t n_cols, int k, int beam, int threads, int64_t block) {
  xmc::CsrView X = csr_view(indptr, indices, data, n_cols);
  if (k < 1) throw std::invalid_argument("k must be at least 1, got " + std::to_string(k));
  py::array_t<int32_t> ids({X.rows, static_cast<int64_t>(k)});
  py::array_t<float> scores({X.rows, static_cast<int64_t>(k)});
  int32_t* ip = ids.mutable_data();
  float* sp = scores.mutable_data();
  {
    py::gil_scoped_release release;
    s.search(X, k, beam, threads, ip, sp, block);
  }
  return py::make_tuple(ids, scores);
}

py::dict layout_stats(const xmc::search::BeamSearcher& s) {
  py::list layers;
  int64_t total = 0;
  for (int t = 0; t < s.depth(); ++t) {
    const auto st = s.layer(t).stats();
    py::dict d;
    d["chunks"] = st.chunks;
    d["direct_chunks"] = st.direct_chunks;
    d["dense_chunks"] = st.dense_chunks;
    py::dict kinds;  // chunks per (row index, row values) layout
    kinds["direct+dense"] = st.direct_dense_chunks;
    kinds["direct+pairs"] = st.direct_chunks - st.direct_dense_chunks;
    kinds["hash+dense"] = st.dense_chunks - st.direct_dense_chunks;
    kinds["hash+pairs"] = st.chunks - st.direct_chunks - st.dense_chunks + st.direct_dense_chunks;
    d["kinds"] = kinds;
    d["rows"] = st.rows;
    d["nnz"] = st.nnz;
    d["bytes"] = st.bytes;
    total += st.bytes;
    layers.append(d);
  }
  py::dict out;
  out["layers"] = layers;
  out["bytes"] = total;
  return out;
}

}  // namespace
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
  py::class_<xmc::search::BeamSearcher>(m, "BeamSearcher",
      "Beam search over a PLT; weights re-laid per parent at construction.")
      .def(py::init(&make_searcher), py::arg("layer_indptr"), py::arg("label_order"),
           py::arg("w_indptr"), py::arg("w_indices"), py::arg("w_data"), py::arg("w_rows"),
           py::arg("activation"), py::arg("threads") = 0)
      .def("search", &searcher_search, py::arg("indptr"), py::arg("indices"), py::arg("data"),
           py::arg("n_cols"), py::arg("k"), py::arg("beam"), py::arg("threads") = 0,
           py::arg("block") = -1,
           "(ids int32 (n, k), scores float32 (n, k)); ids are original label ids. "
           "block: documents per batch (0: one at a time, <0: by input size)")
      .def("layout_stats", &layout_stats)
      .def_property_readonly("n_features", &xmc::search::BeamSearcher::n_features)
      .def_property_readonly("n_labels", &xmc::search::BeamSearcher::n_labels)
      .def_property_readonly("depth", &xmc::search::BeamSearcher::depth);

  // ----- end search registrations -----
}
