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

// Moves a LargeBuffer's first n elements into a numpy array without copying.
template <typename T>
py::array_t<T> to_numpy(xmc::LargeBuffer<T>&& buffer, int64_t n) {
  auto* heap = new xmc::LargeBuffer<T>(std::move(buffer));
  py::capsule owner(heap, [](void* p) { delete static_cast<xmc::LargeBuffer<T>*>(p); });
  return py::array_t<T>(static_cast<py::ssize_t>(n), heap->data(), owner);
}

py::tuple compressed_to_python(xmc::LargeCsr&& m) {
  const int64_t nnz = m.nnz();
  return py::make_tuple(to_numpy(std::move(m.indptr)), to_numpy(std::move(m.indices), nnz),
                        to_numpy(std::move(m.data), nnz), py::make_tuple(m.rows, m.cols));
}

// (indptr, indices, data, (rows, cols)) for CSR, and for CSC (CscMatrix shares the layout).
py::tuple compressed_to_python(xmc::CsrMatrix&& m) {
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
  return py::make_tuple(compressed_to_python(std::move(d.X)), compressed_to_python(std::move(d.Y)), d.had_header);
}

xmc::XcReadOptions xc_options(int64_t n_features, int64_t n_labels, int threads, int64_t max_line_bytes,
                              int64_t max_labels_per_doc) {
  xmc::XcReadOptions opts;
  opts.n_features = n_features;
  opts.n_labels = n_labels;
  opts.threads = threads;
  opts.max_line_bytes = max_line_bytes;
  opts.max_labels_per_doc = max_labels_per_doc;
  return opts;
}

py::tuple py_read_xc(const std::string& path, int64_t n_features, int64_t n_labels, int threads,
                     int64_t max_line_bytes, int64_t max_labels_per_doc) {
  const xmc::XcReadOptions opts = xc_options(n_features, n_labels, threads, max_line_bytes, max_labels_per_doc);
  xmc::XcData d;
  {
    py::gil_scoped_release nogil;
    d = xmc::read_xc_file(path, opts);
  }
  return xc_to_python(std::move(d));
}

// Same parser over bytes in memory: lets tests hit chunk boundaries on small inputs.
py::tuple py_parse_xc_bytes(const py::bytes& data, const std::string& name, int64_t n_features,
                            int64_t n_labels, int threads, int64_t min_chunk_bytes, int64_t max_line_bytes,
                            int64_t max_labels_per_doc) {
  char* buf = nullptr;
  Py_ssize_t len = 0;
  if (PyBytes_AsStringAndSize(data.ptr(), &buf, &len) != 0) throw py::error_already_set();
  xmc::XcReadOptions opts = xc_options(n_features, n_labels, threads, max_line_bytes, max_labels_per_doc);
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
#include "core/tree/kmeans.h"
#include "core/tree/pifa.h"

namespace {

xmc::DenseView dense_view(const CArray<float>& x) {
  if (x.ndim() != 2) throw std::invalid_argument("dense embeddings must be a 2-d array");
  return xmc::DenseView{x.shape(0), x.shape(1), x.data()};
}

py::tuple partition_to_python(xmc::BinaryPartition&& part) {
  py::list bounds;
  for (auto& b : part.bounds) bounds.append(to_numpy(std::move(b)));
  return py::make_tuple(to_numpy(std::move(part.order)), bounds);
}

py::tuple split_to_python(xmc::SplitResult&& res) {
  return py::make_tuple(to_numpy(std::move(res.left)), to_numpy(std::move(res.right)), res.iterations);
}

xmc::KMeansParams kmeans_params(int64_t max_leaf_size, int max_iter, double tol, int64_t split_sample, uint64_t seed,
                                int threads) {
  xmc::KMeansParams p;
  p.max_leaf_size = max_leaf_size;
  p.max_iter = max_iter;
  p.tol = tol;
  p.split_sample = split_sample;
  p.seed = seed;
  p.threads = threads;
  return p;
}

std::vector<int32_t> id_vector(const CArray<int32_t>& ids) {
  return std::vector<int32_t>(ids.data(), ids.data() + ids.size());
}

}  // namespace
// ===== end tree ==============================================================


// ===== linear: PLT node classifiers ==========================================
#include "core/linear/plt_train.h"
#include "core/linear/solver.h"

namespace {

xmc::linear::SolverParams solver_params(const std::string& loss, double C, double eps, int max_iter, double bias) {
  if (!(C > 0)) throw std::invalid_argument("C must be positive, got " + std::to_string(C));
  if (!(eps > 0)) throw std::invalid_argument("eps must be positive, got " + std::to_string(eps));
  if (max_iter < 1) throw std::invalid_argument("max_iter must be at least 1, got " + std::to_string(max_iter));
  xmc::linear::SolverParams p;
  p.loss = xmc::linear::parse_loss(loss);
  p.Cp = p.Cn = C;
  p.eps = eps;
  p.max_iter = max_iter;
  p.bias = bias;
  return p;
}

// One binary problem on all rows of X; for tests against a reference optimiser.
py::tuple linear_solve_binary(const CArray<int64_t>& indptr, const CArray<int32_t>& indices,
                              const CArray<float>& data, int64_t n_cols, const CArray<int8_t>& y,
                              const std::string& loss, double C, double eps, int max_iter, double bias,
                              uint64_t seed) {
  xmc::CsrView X = csr_view(indptr, indices, data, n_cols);
  if (y.ndim() != 1 || y.size() != X.rows)
    throw std::invalid_argument("y must hold one label per row of X (" + std::to_string(X.rows) + ")");
  for (py::ssize_t i = 0; i < y.size(); ++i)
    if (y.data()[i] != 1 && y.data()[i] != -1) throw std::invalid_argument("y must hold -1 or +1");
  for (int64_t e = 0; e < X.nnz(); ++e)
    if (X.indices[e] < 0 || X.indices[e] >= n_cols) throw std::invalid_argument("feature id outside 0..n_cols-1");
  xmc::linear::SolverParams p = solver_params(loss, C, eps, max_iter, bias);
  std::vector<double> w;
  int iters = 0;
  {
    py::gil_scoped_release release;
    std::vector<xmc::linear::Entry> entries(X.nnz());
    for (int64_t e = 0; e < X.nnz(); ++e) entries[e] = {X.indices[e], X.value(e)};
    xmc::linear::ProblemRows rows{X.rows, X.cols, X.indptr, entries.data(), nullptr};
    xmc::linear::SolverWorkspace ws;
    iters = xmc::linear::solve_binary(rows, y.data(), p, seed, w, ws);
  }
  return py::make_tuple(to_numpy(std::move(w)), iters);
}

py::tuple linear_train_layer(const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices,
                             const CArray<float>& x_data, int64_t n_features,
                             py::object parent_doc_ptr, py::object parent_docs,
                             const CArray<int64_t>& child_ptr,
                             const CArray<int64_t>& y_indptr, const CArray<int32_t>& y_indices,
                             int64_t n_children, const std::string& loss, double C, double eps,
                             int max_iter, double bias, double weight_threshold, uint64_t seed,
                             int layer, int threads, int64_t child_begin, int64_t child_end) {
  xmc::linear::LayerProblem P;
  P.X = csr_view(x_indptr, x_indices, x_data, n_features);
  CArray<float> no_data(0);
  P.Y = csr_view(y_indptr, y_indices, no_data, n_children);
  P.Y.data = nullptr;
  if (child_ptr.ndim() != 1 || child_ptr.size() < 2)
    throw std::invalid_argument("child_ptr needs one entry per parent plus one");
  P.n_parents = child_ptr.size() - 1;
  P.child_ptr = child_ptr.data();
  CArray<int64_t> pptr;
  CArray<int32_t> pdocs;
  if (!parent_doc_ptr.is_none()) {
    pptr = parent_doc_ptr.cast<CArray<int64_t>>();
    pdocs = parent_docs.cast<CArray<int32_t>>();
    if (pptr.ndim() != 1 || pptr.size() != child_ptr.size())
      throw std::invalid_argument("parent_doc_ptr needs one entry per parent plus one");
    if (pptr.data()[pptr.size() - 1] != static_cast<int64_t>(pdocs.size()))
      throw std::invalid_argument("parent_doc_ptr[-1] does not match the number of parent documents");
    P.parent_doc_ptr = pptr.data();
    P.parent_docs = pdocs.data();
  }
  xmc::linear::LayerParams lp;
  lp.solver = solver_params(loss, C, eps, max_iter, bias);
  lp.weight_threshold = weight_threshold;
  lp.seed = seed;
  lp.layer = layer;
  lp.threads = threads;
  lp.child_begin = child_begin;
  lp.child_end = child_end;
  xmc::linear::CscMatrix W;
  {
    py::gil_scoped_release release;
    W = xmc::linear::train_layer(P, lp);
  }
  return compressed_to_python(std::move(W));
}

}  // namespace
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

// ===== ops: label-wise attention =============================================
#include "ops/label_attention.h"

namespace {

// Arrays come from torch tensors via .numpy(): no copy is ever made here (outputs are
// written in place), so a wrong dtype, layout or size is an error, not a conversion.
// op names the operation in the messages.
constexpr const char* kLabelAttention = "label_attention";

template <typename Real>
const Real* ops_ptr(const py::array& a, const char* name, std::initializer_list<int64_t> shape,
                    const char* op) {
  if (!a.dtype().is(py::dtype::of<Real>()))
    throw std::invalid_argument(std::string(op) + ": " + name + " has dtype " + std::string(py::str(a.dtype())) +
                                ", expected " + std::string(py::str(py::dtype::of<Real>())));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(op) + ": " + name + " must be C-contiguous");
  std::vector<int64_t> want(shape);
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(i) == want[i];
  if (!ok) {
    std::string w = "(", f = "(";
    for (size_t i = 0; i < want.size(); ++i) w += (i ? ", " : "") + std::to_string(want[i]);
    for (py::ssize_t i = 0; i < a.ndim(); ++i) f += (i ? ", " : "") + std::to_string(a.shape(i));
    throw std::invalid_argument(std::string(op) + ": " + name + " has shape " + f + "), expected " + w + ")");
  }
  return static_cast<const Real*>(a.data());
}

template <typename Real>
Real* ops_out(py::array& a, const char* name, std::initializer_list<int64_t> shape,
              const char* op) {
  ops_ptr<Real>(a, name, shape, op);
  if (!a.writeable()) throw std::invalid_argument(std::string(op) + ": " + name + " is read-only");
  return static_cast<Real*>(a.mutable_data());
}

template <typename Real>
xmc::ops::AttentionInputs<Real> ops_inputs(const py::array& H, const py::array& mask, const py::array& Q,
                                           const py::object& candidates) {
  if (H.ndim() != 3 || Q.ndim() != 2) throw std::invalid_argument("label_attention: H must be (B, T, D) and Q (L, D)");
  xmc::ops::AttentionInputs<Real> in;
  in.batch = H.shape(0);
  in.tokens = H.shape(1);
  in.dim = H.shape(2);
  in.labels = Q.shape(0);
  in.H = ops_ptr<Real>(H, "H", {in.batch, in.tokens, in.dim}, kLabelAttention);
  in.Q = ops_ptr<Real>(Q, "Q", {in.labels, in.dim}, kLabelAttention);
  in.mask = ops_ptr<uint8_t>(mask, "mask", {in.batch, in.tokens}, kLabelAttention);
  in.cand_per_doc = in.labels;
  if (!candidates.is_none()) {
    py::array cand = candidates.cast<py::array>();
    if (cand.ndim() != 2) throw std::invalid_argument("label_attention: candidates must be (B, C)");
    in.cand_per_doc = cand.shape(1);
    in.candidates = ops_ptr<int64_t>(cand, "candidates", {in.batch, in.cand_per_doc}, kLabelAttention);
  }
  return in;
}

template <typename Real>
void ops_forward_typed(const py::array& H, const py::array& mask, const py::array& Q, const py::object& cand,
                       py::array& out, py::array& lse, int threads) {
  auto in = ops_inputs<Real>(H, mask, Q, cand);
  Real* o = ops_out<Real>(out, "out", {in.batch, in.cand_per_doc, in.dim}, kLabelAttention);
  Real* l = ops_out<Real>(lse, "lse", {in.batch, in.cand_per_doc}, kLabelAttention);
  py::gil_scoped_release nogil;
  xmc::ops::label_attention_forward(in, o, l, threads);
}

template <typename Real>
void ops_backward_typed(const py::array& H, const py::array& mask, const py::array& Q, const py::object& cand,
                        const py::array& out, const py::array& lse, const py::array& grad_out, py::array& grad_H,
                        py::array& grad_Q, int threads) {
  auto in = ops_inputs<Real>(H, mask, Q, cand);
  const Real* o = ops_ptr<Real>(out, "out", {in.batch, in.cand_per_doc, in.dim}, kLabelAttention);
  const Real* l = ops_ptr<Real>(lse, "lse", {in.batch, in.cand_per_doc}, kLabelAttention);
  const Real* g = ops_ptr<Real>(grad_out, "grad_out", {in.batch, in.cand_per_doc, in.dim}, kLabelAttention);
  Real* gh = ops_out<Real>(grad_H, "grad_H", {in.batch, in.tokens, in.dim}, kLabelAttention);
  Real* gq = ops_out<Real>(grad_Q, "grad_Q", {in.labels, in.dim}, kLabelAttention);
  py::gil_scoped_release nogil;
  xmc::ops::label_attention_backward(in, o, l, g, gh, gq, threads);
}

void ops_forward(const py::array& H, const py::array& mask, const py::array& Q, const py::object& cand,
                 py::array& out, py::array& lse, int threads) {
  if (H.dtype().is(py::dtype::of<double>())) return ops_forward_typed<double>(H, mask, Q, cand, out, lse, threads);
  ops_forward_typed<float>(H, mask, Q, cand, out, lse, threads);
}

void ops_backward(const py::array& H, const py::array& mask, const py::array& Q, const py::object& cand,
                  const py::array& out, const py::array& lse, const py::array& grad_out, py::array& grad_H,
                  py::array& grad_Q, int threads) {
  if (H.dtype().is(py::dtype::of<double>()))
    return ops_backward_typed<double>(H, mask, Q, cand, out, lse, grad_out, grad_H, grad_Q, threads);
  ops_backward_typed<float>(H, mask, Q, cand, out, lse, grad_out, grad_H, grad_Q, threads);
}

}  // namespace

// ===== ops: static graph propagation ==========================================
#include "ops/gcn_propagate.h"

namespace {

template <typename Real>
void gcn_propagate_typed(const py::array& indptr, const py::array& indices, const py::array& values, int64_t n_cols,
                         const py::array& H, py::array& out, int threads) {
  if (indptr.ndim() != 1 || indptr.shape(0) < 1) throw std::invalid_argument("gcn_propagate: indptr must be 1-d");
  if (H.ndim() != 3) throw std::invalid_argument("gcn_propagate: H must be (B, cols, D)");
  xmc::ops::GraphCsr<Real> A;
  A.rows = indptr.shape(0) - 1;
  A.cols = n_cols;
  A.indptr = ops_ptr<int64_t>(indptr, "indptr", {A.rows + 1}, "gcn_propagate");
  const int64_t nnz = A.indptr[A.rows];
  if (nnz < 0 || indices.ndim() != 1 || indices.shape(0) != nnz)
    throw std::invalid_argument("gcn_propagate: indptr[-1] must equal the number of column ids");
  A.indices = ops_ptr<int64_t>(indices, "indices", {nnz}, "gcn_propagate");
  A.values = ops_ptr<Real>(values, "values", {nnz}, "gcn_propagate");
  const int64_t B = H.shape(0), D = H.shape(2);
  const Real* h = ops_ptr<Real>(H, "H", {B, A.cols, D}, "gcn_propagate");
  Real* o = ops_out<Real>(out, "out", {B, A.rows, D}, "gcn_propagate");
  py::gil_scoped_release nogil;
  xmc::ops::gcn_propagate(A, h, B, D, o, threads);
}

void gcn_propagate(const py::array& indptr, const py::array& indices, const py::array& values, int64_t n_cols,
                   const py::array& H, py::array& out, int threads) {
  if (H.dtype().is(py::dtype::of<double>()))
    return gcn_propagate_typed<double>(indptr, indices, values, n_cols, H, out, threads);
  gcn_propagate_typed<float>(indptr, indices, values, n_cols, H, out, threads);
}

}  // namespace

// ===== ops: dynamic graph propagation =========================================
#include "ops/dynamic_graph.h"

namespace {

constexpr const char* kDynamicGraph = "dynamic_graph_propagate";

template <typename Real>
xmc::ops::DynamicGraphInputs<Real> dynamic_graph_inputs(const py::array& Qa, const py::array& Kb, const py::array& H,
                                                        double min_degree) {
  if (Qa.ndim() != 3 || H.ndim() != 3)
    throw std::invalid_argument("dynamic_graph_propagate: Qa and Kb must be (B, L, d) and H (B, L, D)");
  xmc::ops::DynamicGraphInputs<Real> in;
  in.batch = Qa.shape(0);
  in.labels = Qa.shape(1);
  in.width = Qa.shape(2);
  in.dim = H.shape(2);
  in.Qa = ops_ptr<Real>(Qa, "Qa", {in.batch, in.labels, in.width}, kDynamicGraph);
  in.Kb = ops_ptr<Real>(Kb, "Kb", {in.batch, in.labels, in.width}, kDynamicGraph);
  in.H = ops_ptr<Real>(H, "H", {in.batch, in.labels, in.dim}, kDynamicGraph);
  in.min_degree = static_cast<Real>(min_degree);
  return in;
}

template <typename Real>
void dynamic_graph_forward_typed(const py::array& Qa, const py::array& Kb, const py::array& H, py::array& out,
                                 py::array& degrees, double min_degree, int threads) {
  const auto in = dynamic_graph_inputs<Real>(Qa, Kb, H, min_degree);
  Real* o = ops_out<Real>(out, "out", {in.batch, in.labels, in.dim}, kDynamicGraph);
  Real* deg = ops_out<Real>(degrees, "degrees", {in.batch, in.labels}, kDynamicGraph);
  py::gil_scoped_release nogil;
  xmc::ops::dynamic_graph_forward(in, o, deg, threads);
}

template <typename Real>
void dynamic_graph_backward_typed(const py::array& Qa, const py::array& Kb, const py::array& H,
                                  const py::array& degrees, const py::array& out, const py::array& grad_out,
                                  py::array& grad_Qa, py::array& grad_Kb, py::array& grad_H, double min_degree,
                                  int threads) {
  const auto in = dynamic_graph_inputs<Real>(Qa, Kb, H, min_degree);
  const Real* deg = ops_ptr<Real>(degrees, "degrees", {in.batch, in.labels}, kDynamicGraph);
  const Real* o = ops_ptr<Real>(out, "out", {in.batch, in.labels, in.dim}, kDynamicGraph);
  const Real* g = ops_ptr<Real>(grad_out, "grad_out", {in.batch, in.labels, in.dim}, kDynamicGraph);
  Real* gq = ops_out<Real>(grad_Qa, "grad_Qa", {in.batch, in.labels, in.width}, kDynamicGraph);
  Real* gk = ops_out<Real>(grad_Kb, "grad_Kb", {in.batch, in.labels, in.width}, kDynamicGraph);
  Real* gh = ops_out<Real>(grad_H, "grad_H", {in.batch, in.labels, in.dim}, kDynamicGraph);
  py::gil_scoped_release nogil;
  xmc::ops::dynamic_graph_backward(in, deg, o, g, gq, gk, gh, threads);
}

bool is_float64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

void dynamic_graph_forward(const py::array& Qa, const py::array& Kb, const py::array& H, py::array& out,
                           py::array& degrees, double min_degree, int threads) {
  if (is_float64(Qa)) return dynamic_graph_forward_typed<double>(Qa, Kb, H, out, degrees, min_degree, threads);
  dynamic_graph_forward_typed<float>(Qa, Kb, H, out, degrees, min_degree, threads);
}

void dynamic_graph_backward(const py::array& Qa, const py::array& Kb, const py::array& H, const py::array& degrees,
                            const py::array& out, const py::array& grad_out, py::array& grad_Qa, py::array& grad_Kb,
                            py::array& grad_H, double min_degree, int threads) {
  if (is_float64(Qa))
    return dynamic_graph_backward_typed<double>(Qa, Kb, H, degrees, out, grad_out, grad_Qa, grad_Kb, grad_H,
                                                min_degree, threads);
  dynamic_graph_backward_typed<float>(Qa, Kb, H, degrees, out, grad_out, grad_Qa, grad_Kb, grad_H, min_degree,
                                      threads);
}

}  // namespace
// ===== end ops ===============================================================



PYBIND11_MODULE(_core, m) {
  m.doc() = "xmc native core: parsers, label tree, linear PLT solver, beam search";
  m.def("max_threads", [] { return xmc::resolve_threads(0); },
        "Threads an xmc routine uses when asked for threads=0 (all cores).");

  // ----- io registrations -----
  py::register_local_exception_translator(&translate_parse_error);
  m.def("read_xc", &py_read_xc, py::arg("path"), py::arg("n_features") = -1, py::arg("n_labels") = -1,
        py::arg("threads") = 0, py::arg("max_line_bytes") = int64_t{64} << 20,
        py::arg("max_labels_per_doc") = 100000,
        "Parse an Extreme Classification Repository file. Returns ((X csr arrays), (Y csr arrays), had_header).");
  m.def("parse_xc_bytes", &py_parse_xc_bytes, py::arg("data"), py::arg("name"), py::arg("n_features") = -1,
        py::arg("n_labels") = -1, py::arg("threads") = 0, py::arg("min_chunk_bytes") = 1 << 20,
        py::arg("max_line_bytes") = int64_t{64} << 20, py::arg("max_labels_per_doc") = 100000,
        "read_xc over bytes in memory; `name` is used in error messages.");
  py::class_<xmc::XcChunkReader>(m, "XcChunkReader",
                                 "read_xc a chunk of documents at a time: same rules, same error lines.")
      .def(py::init([](const std::string& path, int64_t n_features, int64_t n_labels, int threads,
                       int64_t max_line_bytes, int64_t max_labels_per_doc) {
             const xmc::XcReadOptions opts =
                 xc_options(n_features, n_labels, threads, max_line_bytes, max_labels_per_doc);
             py::gil_scoped_release nogil;
             return std::make_unique<xmc::XcChunkReader>(path, opts);
           }),
           py::arg("path"), py::arg("n_features") = -1, py::arg("n_labels") = -1, py::arg("threads") = 0,
           py::arg("max_line_bytes") = int64_t{64} << 20, py::arg("max_labels_per_doc") = 100000)
      .def_property_readonly("had_header", &xmc::XcChunkReader::had_header)
      .def(
          "next",
          [](xmc::XcChunkReader& reader, int64_t max_docs) {
            xmc::XcData d;
            {
              py::gil_scoped_release nogil;
              d = reader.next(max_docs);
            }
            return xc_to_python(std::move(d));
          },
          py::arg("max_docs"),
          "The next at most max_docs documents as read_xc's tuple; no rows once the file is done.");
  m.def("write_xc", &py_write_xc, py::arg("path"), py::arg("x_indptr"), py::arg("x_indices"), py::arg("x_data"),
        py::arg("n_features"), py::arg("y_indptr"), py::arg("y_indices"), py::arg("n_labels"),
        py::arg("header") = true, py::arg("threads") = 0,
        "Write CSR features and labels in the XC format to path (not atomic: callers rename).");
  // ----- end io registrations -----


  // ----- tree registrations -----
  m.def("tree_pifa",
        [](const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices, const CArray<float>& x_data,
           int64_t x_cols, const CArray<int64_t>& y_indptr, const CArray<int32_t>& y_indices,
           const CArray<float>& y_data, int64_t y_cols, int threads) {
          xmc::CsrView x = csr_view(x_indptr, x_indices, x_data, x_cols);
          xmc::CsrView y = csr_view(y_indptr, y_indices, y_data, y_cols);
          xmc::LargeCsr out;
          {
            py::gil_scoped_release release;
            out = xmc::pifa_embeddings(x, y, threads);
          }
          return compressed_to_python(std::move(out));
        },
        "PIFA label embeddings normalize(Y^T normalize(X)) as CSR arrays (indptr, indices, data, shape).");
  m.def("tree_pifa_kmeans",
        [](const CArray<int64_t>& x_indptr, const CArray<int32_t>& x_indices, const CArray<float>& x_data,
           int64_t x_cols, const CArray<int64_t>& y_indptr, const CArray<int32_t>& y_indices,
           const CArray<float>& y_data, int64_t y_cols, int64_t max_leaf_size, int max_iter, double tol,
           int64_t split_sample, uint64_t seed, int threads) {
          xmc::CsrView x = csr_view(x_indptr, x_indices, x_data, x_cols);
          xmc::CsrView y = csr_view(y_indptr, y_indices, y_data, y_cols);
          xmc::BinaryPartition part;
          {
            py::gil_scoped_release release;
            part = xmc::balanced_kmeans_tree(
                xmc::pifa_embeddings(x, y, threads),
                kmeans_params(max_leaf_size, max_iter, tol, split_sample, seed, threads));
          }
          return partition_to_python(std::move(part));
        },
        "tree_kmeans_sparse of tree_pifa's embeddings, which never leave the core: their arrays serve "
        "the k-means as scratch.");
  m.def("tree_kmeans_dense",
        [](const CArray<float>& x, int64_t max_leaf_size, int max_iter, double tol, int64_t split_sample, uint64_t seed,
           int threads) {
          xmc::DenseView v = dense_view(x);
          xmc::BinaryPartition part;
          {
            py::gil_scoped_release release;
            part = xmc::balanced_kmeans_tree(v, kmeans_params(max_leaf_size, max_iter, tol, split_sample, seed, threads));
          }
          return partition_to_python(std::move(part));
        },
        "Balanced hierarchical spherical 2-means of dense rows: (label order, cluster bounds per binary level).");
  m.def("tree_kmeans_sparse",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t cols,
           int64_t max_leaf_size, int max_iter, double tol, int64_t split_sample, uint64_t seed,
           int threads) {
          xmc::CsrView v = csr_view(indptr, indices, data, cols);
          xmc::BinaryPartition part;
          {
            py::gil_scoped_release release;
            part = xmc::balanced_kmeans_tree(v, kmeans_params(max_leaf_size, max_iter, tol, split_sample, seed, threads));
          }
          return partition_to_python(std::move(part));
        },
        "Balanced hierarchical spherical 2-means of CSR rows: (label order, cluster bounds per binary level).");
  m.def("tree_split_dense",
        [](const CArray<float>& x, const CArray<int32_t>& ids, int32_t init_right, int32_t init_left, int max_iter,
           double tol) {
          xmc::DenseView v = dense_view(x);
          std::vector<int32_t> id_vec = id_vector(ids);
          xmc::SplitResult res;
          {
            py::gil_scoped_release release;
            res = xmc::balanced_split(v, id_vec, init_right, init_left, max_iter, tol);
          }
          return split_to_python(std::move(res));
        },
        "One balanced 2-means split of the dense rows `ids`: (left ids, right ids, iterations).");
  m.def("tree_split_sparse",
        [](const CArray<int64_t>& indptr, const CArray<int32_t>& indices, const CArray<float>& data, int64_t cols,
           const CArray<int32_t>& ids, int32_t init_right, int32_t init_left, int max_iter,
           double tol) {
          xmc::CsrView v = csr_view(indptr, indices, data, cols);
          std::vector<int32_t> id_vec = id_vector(ids);
          xmc::SplitResult res;
          {
            py::gil_scoped_release release;
            res = xmc::balanced_split(v, id_vec, init_right, init_left, max_iter, tol);
          }
          return split_to_python(std::move(res));
        },
        "One balanced 2-means split of the CSR rows `ids`: (left ids, right ids, iterations).");
  m.def("tree_cluster_seed", &xmc::cluster_seed,
        "Random state of one cluster's initial-centroid draw (splitmix64 of seed and node id).");
  // ----- end tree registrations -----


  // ----- linear registrations -----
  m.def("linear_solve_binary", &linear_solve_binary, py::arg("indptr"), py::arg("indices"), py::arg("data"),
        py::arg("n_cols"), py::arg("y"), py::arg("loss"), py::arg("C"), py::arg("eps"), py::arg("max_iter"),
        py::arg("bias"), py::arg("seed"),
        "Dual coordinate descent on one binary problem; returns (w with the bias weight last, iterations).");
  m.def("linear_train_layer", &linear_train_layer, py::arg("x_indptr"), py::arg("x_indices"),
        py::arg("x_data"), py::arg("n_features"), py::arg("parent_doc_ptr"), py::arg("parent_docs"),
        py::arg("child_ptr"), py::arg("y_indptr"), py::arg("y_indices"), py::arg("n_children"),
        py::arg("loss"), py::arg("C"), py::arg("eps"), py::arg("max_iter"), py::arg("bias"),
        py::arg("weight_threshold"), py::arg("seed"), py::arg("layer"), py::arg("threads"),
        py::arg("child_begin") = 0, py::arg("child_end") = -1,
        "Trains one PLT layer (children [child_begin, child_end) only; -1: to the last); returns CSC "
        "(indptr, indices, data, shape) with the bias as the last row.");
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


  // ----- ops registrations -----
  m.def("ops_label_attention_forward", &ops_forward, py::arg("H"), py::arg("mask"), py::arg("Q"),
        py::arg("candidates"), py::arg("out").noconvert(), py::arg("lse").noconvert(), py::arg("threads") = 0,
        "Fused label-wise attention (float32/float64, mask uint8). Writes out (B, C, D) and lse (B, C) in place.");
  m.def("ops_label_attention_backward", &ops_backward, py::arg("H"), py::arg("mask"), py::arg("Q"),
        py::arg("candidates"), py::arg("out"), py::arg("lse"), py::arg("grad_out"), py::arg("grad_H").noconvert(),
        py::arg("grad_Q").noconvert(), py::arg("threads") = 0,
        "Backward of ops_label_attention_forward; overwrites grad_H (B, T, D) and grad_Q (L, D).");
  m.def("ops_gcn_propagate", &gcn_propagate, py::arg("indptr"), py::arg("indices"), py::arg("values"),
        py::arg("n_cols"), py::arg("H"), py::arg("out").noconvert(), py::arg("threads") = 0,
        "out (B, rows, D) = A @ H[b] for a CSR A (int64 indptr and indices; values of H's dtype).");
  m.def("ops_dynamic_graph_forward", &dynamic_graph_forward, py::arg("Qa"), py::arg("Kb"), py::arg("H"),
        py::arg("out").noconvert(), py::arg("degrees").noconvert(), py::arg("min_degree"), py::arg("threads") = 0,
        "Fused dynamic graph propagation (float32/float64): Qa, Kb (B, L, d), H (B, L, D). Writes out (B, L, D) "
        "and the row sums of sigmoid(Qa Kb^T), degrees (B, L), in place.");
  m.def("ops_dynamic_graph_backward", &dynamic_graph_backward, py::arg("Qa"), py::arg("Kb"), py::arg("H"),
        py::arg("degrees"), py::arg("out"), py::arg("grad_out"), py::arg("grad_Qa").noconvert(),
        py::arg("grad_Kb").noconvert(), py::arg("grad_H").noconvert(), py::arg("min_degree"), py::arg("threads") = 0,
        "Backward of ops_dynamic_graph_forward; overwrites grad_Qa, grad_Kb (B, L, d) and grad_H (B, L, D).");
  // ----- end ops registrations -----
}
