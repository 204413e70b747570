#include "ops/dynamic_graph.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/common/parallel.h"
#include "ops/cpu_tile_gemm.h"

namespace xmc {
namespace ops {
namespace {

using cpu::AlignedVector;
using cpu::sigmoid_inplace;
using cpu::tile_product;
using cpu::TileProduct;

// A tile of S is (kTileRows x kTileCols): small enough that it, the rows of the operands it is
// multiplied with and the accumulators it feeds all stay in L2 (256-512 KiB) between the
// product that builds the tile and the products that use it, so S never reaches memory.
// kTileRows is a multiple of the micro-kernel's 6 rows, kTileCols of its 64-wide panels.
constexpr int64_t kTileRows = 96;
constexpr int64_t kTileCols = 128;

template <typename Real>
TileProduct<Real> product(int64_t m, int64_t n, int64_t k, const Real* A, int64_t a_row, int64_t a_col,
                          const Real* B, int64_t ldb, Real* C, int64_t ldc, bool accumulate) {
  TileProduct<Real> p;
  p.m = m, p.n = n, p.k = k, p.A = A, p.a_row = a_row, p.a_col = a_col, p.B = B, p.ldb = ldb, p.C = C,
  p.ldc = ldc, p.accumulate = accumulate;
  return p;
}

// Rows [begin, end) of an L-row loop, and the tiles of S's rows and columns.
struct Tiling {
  int64_t labels, row_tiles, col_blocks;
  explicit Tiling(int64_t L)
      : labels(L), row_tiles((L + kTileRows - 1) / kTileRows), col_blocks((L + kTileCols - 1) / kTileCols) {}
  int64_t row0(int64_t t) const { return t * kTileRows; }
  int64_t rows(int64_t t) const { return std::min(kTileRows, labels - row0(t)); }
  int64_t col0(int64_t c) const { return c * kTileCols; }
  int64_t cols(int64_t c) const { return std::min(kTileCols, labels - col0(c)); }
};

// X (L x width) transposed block by block: block c is X[c*kTileCols .. +kTileCols]^T, a
// contiguous (width x kTileCols) matrix, zero past the last row of X. Parallel over blocks.
template <typename Real>
void pack_transposed_blocks(const Real* X, const Tiling& tiles, int64_t width, Real* packed) {
#pragma omp for schedule(static)
  for (int64_t c = 0; c < tiles.col_blocks; ++c) {
    Real* block = packed + c * width * kTileCols;
    const int64_t j0 = tiles.col0(c), nj = tiles.cols(c);
    for (int64_t p = 0; p < width; ++p) {
      Real* row = block + p * kTileCols;
      for (int64_t j = 0; j < nj; ++j) row[j] = X[(j0 + j) * width + p];
      std::fill(row + nj, row + kTileCols, Real(0));
    }
  }
}

// Columns of a tile computed for nj real ones: whole 16-wide panels (the packed blocks are zero
// past the last label), so a short last block costs what it holds, not a full block.
inline int64_t padded_cols(int64_t nj) { return std::min(kTileCols, (nj + 15) / 16 * 16); }

// S tile = sigmoid(Q rows [i0, i0+ni) times the packed keys of column block c): (ni x nj) in a
// (ni x kTileCols) buffer. Past column nj the values are not meaningful and must not be read.
template <typename Real>
void score_tile(const Real* Q, int64_t i0, int64_t ni, const Real* keys_packed, int64_t c, int64_t nj, int64_t width,
                Real* S) {
  tile_product(product(ni, padded_cols(nj), width, Q + i0 * width, width, int64_t(1),
                       keys_packed + c * width * kTileCols, kTileCols, S, kTileCols, false));
  sigmoid_inplace(S, ni * kTileCols);  // one call over the buffer: what lies past nj is finite either way
}

template <typename Real>
Real inverse_sqrt_degree(Real degree, Real min_degree) {
  return Real(1) / std::sqrt(std::max(degree, min_degree));
}

template <typename Real>
void check_inputs(const DynamicGraphInputs<Real>& in) {
  if (in.batch < 0 || in.labels < 0 || in.width < 0 || in.dim < 0)
    throw std::invalid_argument("dynamic_graph_propagate: negative size");
  if (!(in.min_degree > Real(0))) throw std::invalid_argument("dynamic_graph_propagate: min_degree must be > 0");
}

// Everything of one document the tiles read, shared by the threads.
template <typename Real>
struct DocumentViews {
  const Real *Q, *K, *H;
  DocumentViews(const DynamicGraphInputs<Real>& in, int64_t b)
      : Q(in.Qa + b * in.labels * in.width), K(in.Kb + b * in.labels * in.width), H(in.H + b * in.labels * in.dim) {}
};

// The rows of one document's tiles in the forward: degrees, then out = r * (S (r H)).
template <typename Real>
void forward_degrees(const DocumentViews<Real>& doc, const Tiling& tiles, int64_t d, const Real* keys_packed,
                     Real* S, Real* deg) {
#pragma omp for schedule(dynamic)
  for (int64_t t = 0; t < tiles.row_tiles; ++t) {
    const int64_t i0 = tiles.row0(t), ni = tiles.rows(t);
    std::fill(deg + i0, deg + i0 + ni, Real(0));
    for (int64_t c = 0; c < tiles.col_blocks; ++c) {
      const int64_t nj = tiles.cols(c);
      score_tile(doc.Q, i0, ni, keys_packed, c, nj, d, S);
      for (int64_t i = 0; i < ni; ++i) {
        const Real* s = S + i * kTileCols;
        Real sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < nj; ++j) sum += s[j];
        deg[i0 + i] += sum;
      }
    }
  }
}

template <typename Real>
void forward_product(const DocumentViews<Real>& doc, const Tiling& tiles, int64_t d, int64_t D,
                     const Real* keys_packed, const Real* scale, const Real* scaled_H, Real* S, Real* out) {
#pragma omp for schedule(dynamic)
  for (int64_t t = 0; t < tiles.row_tiles; ++t) {
    const int64_t i0 = tiles.row0(t), ni = tiles.rows(t);
    Real* o = out + i0 * D;
    for (int64_t c = 0; c < tiles.col_blocks; ++c) {
      const int64_t j0 = tiles.col0(c), nj = tiles.cols(c);
      score_tile(doc.Q, i0, ni, keys_packed, c, nj, d, S);
      tile_product(product(ni, D, nj, S, kTileCols, int64_t(1), scaled_H + j0 * D, D, o, D, c > 0));
    }
    for (int64_t i = 0; i < ni; ++i)
      for (int64_t k = 0; k < D; ++k) o[i * D + k] *= scale[i0 + i];
  }
}

// What the threads share in the backward, rebuilt for each document in turn.
template <typename Real>
struct BackwardBuffers {
  AlignedVector<Real> keys_packed, G_packed;  // Kb^T and (r H)^T in column blocks
  AlignedVector<Real> scale, degree_grad;     // r and dd
  AlignedVector<Real> G, scaled_grad;         // r H and r dO
  // The column side of S (dG_j, dKb_j) sums over every row tile: each thread adds into its own
  // copy and the copies are summed by rows afterwards, so no two threads write the same memory.
  AlignedVector<Real> dG_parts, dKb_parts;

  BackwardBuffers(const Tiling& tiles, int64_t d, int64_t D, int n_threads)
      : keys_packed(static_cast<size_t>(tiles.col_blocks * d * kTileCols)),
        G_packed(static_cast<size_t>(tiles.col_blocks * D * kTileCols)),
        scale(static_cast<size_t>(tiles.labels)),
        degree_grad(static_cast<size_t>(tiles.labels)),
        G(static_cast<size_t>(tiles.labels * D)),
        scaled_grad(static_cast<size_t>(tiles.labels * D)),
        dG_parts(static_cast<size_t>(n_threads * tiles.labels * D)),
        dKb_parts(static_cast<size_t>(n_threads * tiles.labels * d)) {}
};

// One document's arrays in the backward.
template <typename Real>
struct BackwardDocument {
  DocumentViews<Real> x;
  const Real *degrees, *out, *grad_out;
  Real *grad_Qa, *grad_Kb, *grad_H;
  BackwardDocument(const DynamicGraphInputs<Real>& in, int64_t b, const Real* degrees_all, const Real* out_all,
                   const Real* grad_out_all, Real* grad_Qa_all, Real* grad_Kb_all, Real* grad_H_all)
      : x(in, b),
        degrees(degrees_all + b * in.labels),
        out(out_all + b * in.labels * in.dim),
        grad_out(grad_out_all + b * in.labels * in.dim),
        grad_Qa(grad_Qa_all + b * in.labels * in.width),
        grad_Kb(grad_Kb_all + b * in.labels * in.width),
        grad_H(grad_H_all + b * in.labels * in.dim) {}
};

template <typename Real>
void backward_prepare(const DynamicGraphInputs<Real>& in, const BackwardDocument<Real>& doc, const Tiling& tiles,
                      BackwardBuffers<Real>& w) {
  const int64_t D = in.dim;
#pragma omp for schedule(static)
  for (int64_t j = 0; j < tiles.labels; ++j) {
    const Real r = w.scale[j] = inverse_sqrt_degree(doc.degrees[j], in.min_degree);
    for (int64_t k = 0; k < D; ++k) {
      w.G[j * D + k] = r * doc.x.H[j * D + k];
      w.scaled_grad[j * D + k] = r * doc.grad_out[j * D + k];
    }
  }
  pack_transposed_blocks(doc.x.K, tiles, in.width, w.keys_packed.data());
  pack_transposed_blocks(w.G.data(), tiles, D, w.G_packed.data());
}

// Pass 1: dG = S^T (r dO), tile by tile over the rows of S, into this thread's copy.
template <typename Real>
void backward_column_pass(const DynamicGraphInputs<Real>& in, const BackwardDocument<Real>& doc, const Tiling& tiles,
                          const BackwardBuffers<Real>& w, Real* S, Real* my_dG) {
  const int64_t D = in.dim;
#pragma omp for schedule(dynamic)
  for (int64_t t = 0; t < tiles.row_tiles; ++t) {
    const int64_t i0 = tiles.row0(t), ni = tiles.rows(t);
    for (int64_t c = 0; c < tiles.col_blocks; ++c) {
      const int64_t j0 = tiles.col0(c), nj = tiles.cols(c);
      score_tile(doc.x.Q, i0, ni, w.keys_packed.data(), c, nj, in.width, S);
      tile_product(product(nj, D, ni, S, int64_t(1), kTileCols, w.scaled_grad.data() + i0 * D, D, my_dG + j0 * D, D,
                           true));
    }
  }
}

// dH = r dG; dr = H . dG + dO . (S G) with S G = out / r; dd = -r^3 dr / 2 where not clamped.
template <typename Real>
void backward_degree_grads(const DynamicGraphInputs<Real>& in, const BackwardDocument<Real>& doc, int n_threads,
                           BackwardBuffers<Real>& w) {
  const int64_t L = in.labels, D = in.dim;
#pragma omp for schedule(static)
  for (int64_t j = 0; j < L; ++j) {
    const Real r = w.scale[j];
    Real through_H = 0, through_out = 0;
    for (int64_t k = 0; k < D; ++k) {
      Real dG = 0;
      for (int th = 0; th < n_threads; ++th) dG += w.dG_parts[(th * L + j) * D + k];
      through_H += doc.x.H[j * D + k] * dG;
      through_out += doc.grad_out[j * D + k] * doc.out[j * D + k];
      doc.grad_H[j * D + k] = r * dG;
    }
    const Real dr = through_H + through_out / r;
    w.degree_grad[j] = doc.degrees[j] > in.min_degree ? Real(-0.5) * r * r * r * dr : Real(0);
  }
}

// Pass 2: dZ = (r dO G^T + dd) * S (1 - S), tile by tile, straight into dQa and this thread's dKb.
template <typename Real>
void backward_score_pass(const DynamicGraphInputs<Real>& in, const BackwardDocument<Real>& doc, const Tiling& tiles,
                         const BackwardBuffers<Real>& w, Real* S, Real* dZ, Real* my_dKb) {
  const int64_t d = in.width, D = in.dim;
#pragma omp for schedule(dynamic)
  for (int64_t t = 0; t < tiles.row_tiles; ++t) {
    const int64_t i0 = tiles.row0(t), ni = tiles.rows(t);
    for (int64_t c = 0; c < tiles.col_blocks; ++c) {
      const int64_t j0 = tiles.col0(c), nj = tiles.cols(c);
      score_tile(doc.x.Q, i0, ni, w.keys_packed.data(), c, nj, d, S);
      tile_product(product(ni, padded_cols(nj), D, w.scaled_grad.data() + i0 * D, D, int64_t(1),
                           w.G_packed.data() + c * D * kTileCols, kTileCols, dZ, kTileCols, false));
      for (int64_t i = 0; i < ni; ++i) {
        const Real dd = w.degree_grad[i0 + i];
        Real* z = dZ + i * kTileCols;
        const Real* s = S + i * kTileCols;
#pragma omp simd
        for (int64_t j = 0; j < nj; ++j) z[j] = (z[j] + dd) * s[j] * (Real(1) - s[j]);
      }
      tile_product(product(ni, d, nj, dZ, kTileCols, int64_t(1), doc.x.K + j0 * d, d, doc.grad_Qa + i0 * d, d, c > 0));
      tile_product(product(nj, d, ni, dZ, int64_t(1), kTileCols, doc.x.Q + i0 * d, d, my_dKb + j0 * d, d, true));
    }
  }
}

template <typename Real>
void backward_sum_key_grads(const DynamicGraphInputs<Real>& in, const BackwardDocument<Real>& doc, int n_threads,
                            const BackwardBuffers<Real>& w) {
  const int64_t L = in.labels, d = in.width;
#pragma omp for schedule(static)
  for (int64_t j = 0; j < L; ++j)
    for (int64_t k = 0; k < d; ++k) {
      Real sum = 0;
      for (int th = 0; th < n_threads; ++th) sum += w.dKb_parts[(th * L + j) * d + k];
      doc.grad_Kb[j * d + k] = sum;
    }
}

}  // namespace

template <typename Real>
void dynamic_graph_forward(const DynamicGraphInputs<Real>& in, Real* out, Real* degrees, int threads) {
  check_inputs(in);
  const int64_t L = in.labels, d = in.width, D = in.dim;
  if (in.batch == 0 || L == 0) return;
  const Tiling tiles(L);
  AlignedVector<Real> keys_packed(static_cast<size_t>(tiles.col_blocks * d * kTileCols));
  AlignedVector<Real> scale(static_cast<size_t>(L)), scaled_H(static_cast<size_t>(L * D));  // r and G = r H

#pragma omp parallel num_threads(resolve_threads(threads))
  {
    AlignedVector<Real> S(static_cast<size_t>(kTileRows * kTileCols));
    for (int64_t b = 0; b < in.batch; ++b) {  // documents in turn, each split over its row tiles
      const DocumentViews<Real> doc(in, b);
      Real* deg = degrees + b * L;
      pack_transposed_blocks(doc.K, tiles, d, keys_packed.data());
      forward_degrees(doc, tiles, d, keys_packed.data(), S.data(), deg);
#pragma omp for schedule(static)
      for (int64_t j = 0; j < L; ++j) {
        scale[j] = inverse_sqrt_degree(deg[j], in.min_degree);
        for (int64_t k = 0; k < D; ++k) scaled_H[j * D + k] = scale[j] * doc.H[j * D + k];
      }
      forward_product(doc, tiles, d, D, keys_packed.data(), scale.data(), scaled_H.data(), S.data(),
                      out + b * L * D);
    }
  }
}

template <typename Real>
void dynamic_graph_backward(const DynamicGraphInputs<Real>& in, const Real* degrees, const Real* out,
                            const Real* grad_out, Real* grad_Qa, Real* grad_Kb, Real* grad_H, int threads) {
  check_inputs(in);
  const int64_t L = in.labels, d = in.width, D = in.dim;
  if (in.batch == 0 || L == 0) return;
  const int n_threads = resolve_threads(threads);
  const Tiling tiles(L);
  BackwardBuffers<Real> w(tiles, d, D, n_threads);

#pragma omp parallel num_threads(n_threads)
  {
    AlignedVector<Real> S(static_cast<size_t>(kTileRows * kTileCols)), dZ(static_cast<size_t>(kTileRows * kTileCols));
    Real* my_dG = w.dG_parts.data() + thread_id() * L * D;
    Real* my_dKb = w.dKb_parts.data() + thread_id() * L * d;
    for (int64_t b = 0; b < in.batch; ++b) {  // documents in turn; every phase ends at a barrier
      const BackwardDocument<Real> doc(in, b, degrees, out, grad_out, grad_Qa, grad_Kb, grad_H);
      backward_prepare(in, doc, tiles, w);
      std::fill(my_dG, my_dG + L * D, Real(0));
      std::fill(my_dKb, my_dKb + L * d, Real(0));
      backward_column_pass(in, doc, tiles, w, S.data(), my_dG);
      backward_degree_grads(in, doc, n_threads, w);
      backward_score_pass(in, doc, tiles, w, S.data(), dZ.data(), my_dKb);
      backward_sum_key_grads(in, doc, n_threads, w);
    }
  }
}

#define XMC_INSTANTIATE(Real)                                                                                  \
  template void dynamic_graph_forward<Real>(const DynamicGraphInputs<Real>&, Real*, Real*, int);               \
  template void dynamic_graph_backward<Real>(const DynamicGraphInputs<Real>&, const Real*, const Real*,        \
                                             const Real*, Real*, Real*, Real*, int);
XMC_INSTANTIATE(float)
XMC_INSTANTIATE(double)
#undef XMC_INSTANTIATE

}  // namespace ops
}  // namespace xmc
