#include "ops/label_attention.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/common/parallel.h"
#include "ops/attention_math.h"

namespace xmc {
namespace ops {
namespace {

// Labels handled together: their query rows and accumulators stay in L1/L2 while
// a block of token states streams past.
constexpr int64_t kLabelTile = 16;
constexpr int64_t kTokenBlock = 64;
// Candidate positions per backward pass; bounds the per-candidate dq scratch to
// B * kLabelBlock * D values instead of B * C * D.
constexpr int64_t kLabelBlock = 256;

// Real-token positions per document, so padding costs nothing in the inner loops.
struct TokenLists {
  std::vector<int64_t> ptr;
  std::vector<int64_t> ids;
};

TokenLists real_tokens(const uint8_t* mask, int64_t batch, int64_t tokens) {
  TokenLists t;
  t.ptr.assign(batch + 1, 0);
  t.ids.reserve(static_cast<size_t>(batch * tokens));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < tokens; ++i)
      if (mask[b * tokens + i]) t.ids.push_back(i);
    t.ptr[b + 1] = static_cast<int64_t>(t.ids.size());
  }
  return t;
}

template <typename Real>
inline int64_t label_of(const AttentionInputs<Real>& in, int64_t b, int64_t c) {
  return in.candidates ? in.candidates[b * in.cand_per_doc + c] : c;
}

template <typename Real>
inline void axpy(Real a, const Real* x, Real* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

template <typename Real>
void check_attention_inputs(const AttentionInputs<Real>& in) {
  if (in.batch < 0 || in.tokens < 0 || in.dim < 0 || in.labels < 0 || in.cand_per_doc < 0)
    throw std::invalid_argument("label_attention: negative size");
  if (!in.candidates && in.cand_per_doc != in.labels)
    throw std::invalid_argument("label_attention: without candidates, C must equal the number of labels");
  if (!in.candidates) return;
  for (int64_t b = 0; b < in.batch; ++b)
    for (int64_t c = 0; c < in.cand_per_doc; ++c) {
      int64_t id = in.candidates[b * in.cand_per_doc + c];
      if (id < 0 || id >= in.labels)
        throw std::out_of_range("label_attention: candidates[" + std::to_string(b) + ", " + std::to_string(c) +
                                "] = " + std::to_string(id) + " is outside [0, " + std::to_string(in.labels) +
                                ") (Q has " + std::to_string(in.labels) + " rows)");
    }
}

template <typename Real>
void label_attention_forward(const AttentionInputs<Real>& in, Real* out, Real* lse, int threads) {
  check_attention_inputs(in);
  const int64_t B = in.batch, T = in.tokens, D = in.dim, C = in.cand_per_doc;
  const TokenLists tok = real_tokens(in.mask, B, T);
  const int64_t tiles = (C + kLabelTile - 1) / kLabelTile;
  const int n_threads = resolve_threads(threads);

#pragma omp parallel for num_threads(n_threads) schedule(dynamic)
  for (int64_t work = 0; work < B * tiles; ++work) {
    const int64_t b = work / tiles;
    const int64_t c0 = (work % tiles) * kLabelTile;
    const int64_t nc = std::min(kLabelTile, C - c0);
    const Real* H = in.H + b * T * D;
    SoftmaxState<Real> st[kLabelTile];
    Real w[kLabelTile][kTokenBlock];
    const Real* q[kLabelTile];
    Real* acc[kLabelTile];
    for (int64_t c = 0; c < nc; ++c) {
      st[c] = softmax_init<Real>();
      q[c] = in.Q + label_of(in, b, c0 + c) * D;
      acc[c] = out + (b * C + c0 + c) * D;
      std::fill(acc[c], acc[c] + D, Real(0));
    }
    for (int64_t k0 = tok.ptr[b]; k0 < tok.ptr[b + 1]; k0 += kTokenBlock) {
      const int64_t nt = std::min(kTokenBlock, tok.ptr[b + 1] - k0);
      const int64_t* ids = tok.ids.data() + k0;
      for (int64_t c = 0; c < nc; ++c) {
        Real block_max = neg_inf<Real>();
        for (int64_t j = 0; j < nt; ++j) {
          w[c][j] = dot(q[c], H + ids[j] * D, D);
          block_max = std::max(block_max, w[c][j]);
        }
        // One rescale per block, not per token: the max rarely moves after the first blocks.
        const Real factor = softmax_raise_max(st[c], block_max);
        if (factor != Real(1))
          for (int64_t d = 0; d < D; ++d) acc[c][d] *= factor;
        for (int64_t j = 0; j < nt; ++j) axpy(softmax_add(st[c], w[c][j]), H + ids[j] * D, acc[c], D);
      }
    }
    for (int64_t c = 0; c < nc; ++c) {
      const Real inv = softmax_inv_sum(st[c]);
      for (int64_t d = 0; d < D; ++d) acc[c][d] *= inv;
      lse[b * C + c0 + c] = softmax_lse(st[c]);
    }
  }
}

template <typename Real>
void label_attention_backward(const AttentionInputs<Real>& in, const Real* out, const Real* lse,
                              const Real* grad_out, Real* grad_H, Real* grad_Q, int threads) {
  check_attention_inputs(in);
  const int64_t B = in.batch, T = in.tokens, D = in.dim, C = in.cand_per_doc;
  const TokenLists tok = real_tokens(in.mask, B, T);
  const int n_threads = resolve_threads(threads);
  std::fill(grad_H, grad_H + B * T * D, Real(0));
  std::fill(grad_Q, grad_Q + in.labels * D, Real(0));
  const int64_t block = std::min(kLabelBlock, std::max<int64_t>(C, 1));
  std::vector<Real> dq(static_cast<size_t>(B * block * D));

  for (int64_t cb = 0; cb < C; cb += block) {
    const int64_t nb = std::min(block, C - cb);
    // A document owns its grad_H rows and its dq scratch rows: no two threads write the same memory.
#pragma omp parallel for num_threads(n_threads) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      const Real* H = in.H + b * T * D;
      Real* dH = grad_H + b * T * D;
      Real p[kLabelTile][kTokenBlock];
      Real ds[kLabelTile][kTokenBlock];
      const Real* q[kLabelTile];
      const Real* g[kLabelTile];
      Real* dqc[kLabelTile];
      Real delta[kLabelTile];
      Real lse_c[kLabelTile];
      std::fill(dq.data() + b * block * D, dq.data() + (b * block + nb) * D, Real(0));
      for (int64_t c0 = 0; c0 < nb; c0 += kLabelTile) {
        const int64_t nc = std::min(kLabelTile, nb - c0);
        for (int64_t c = 0; c < nc; ++c) {
          const int64_t pos = b * C + cb + c0 + c;
          q[c] = in.Q + label_of(in, b, cb + c0 + c) * D;
          g[c] = grad_out + pos * D;
          delta[c] = dot(g[c], out + pos * D, D);
          lse_c[c] = lse[pos];
          dqc[c] = dq.data() + (b * block + c0 + c) * D;
        }
        for (int64_t k0 = tok.ptr[b]; k0 < tok.ptr[b + 1]; k0 += kTokenBlock) {
          const int64_t nt = std::min(kTokenBlock, tok.ptr[b + 1] - k0);
          const int64_t* ids = tok.ids.data() + k0;
          for (int64_t c = 0; c < nc; ++c)
            for (int64_t j = 0; j < nt; ++j) {
              const Real* h = H + ids[j] * D;
              p[c][j] = prob_from_lse(dot(q[c], h, D), lse_c[c]);
              ds[c][j] = score_grad(p[c][j], dot(g[c], h, D), delta[c]);
            }
          for (int64_t j = 0; j < nt; ++j) {
            Real* dh = dH + ids[j] * D;
            for (int64_t c = 0; c < nc; ++c) {
              const Real a = p[c][j], s = ds[c][j];
              const Real* gc = g[c];
              const Real* qc = q[c];
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) dh[d] += a * gc[d] + s * qc[d];
            }
          }
          for (int64_t c = 0; c < nc; ++c)
            for (int64_t j = 0; j < nt; ++j) axpy(ds[c][j], H + ids[j] * D, dqc[c], D);
        }
      }
    }
    // Scatter-add into grad_Q by columns: threads own disjoint column ranges, so repeated
    // label ids (in a row or across documents) need no atomics and the sum order is fixed.
    constexpr int64_t kCols = 32;
    const int64_t col_chunks = (D + kCols - 1) / kCols;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t chunk = 0; chunk < col_chunks; ++chunk) {
      const int64_t d0 = chunk * kCols, d1 = std::min(D, d0 + kCols);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < nb; ++c) {
          Real* dst = grad_Q + label_of(in, b, cb + c) * D;
          const Real* src = dq.data() + (b * block + c) * D;
          for (int64_t d = d0; d < d1; ++d) dst[d] += src[d];
        }
    }
  }
}

#define XMC_INSTANTIATE(Real)                                                                               \
  template void check_attention_inputs<Real>(const AttentionInputs<Real>&);                                 \
  template void label_attention_forward<Real>(const AttentionInputs<Real>&, Real*, Real*, int);             \
  template void label_attention_backward<Real>(const AttentionInputs<Real>&, const Real*, const Real*,      \
                                               const Real*, Real*, Real*, int);
XMC_INSTANTIATE(float)
XMC_INSTANTIATE(double)
#undef XMC_INSTANTIATE

}  // namespace ops
}  // namespace xmc
