#include "ops/label_attention.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/common/parallel.h"
#include "ops/attention_math.h"
#include "ops/cpu_microkernels.h"

namespace xmc {
namespace ops {
namespace {

using cpu::combine_2;
using cpu::scores_2;
using cpu::scores_4;

// Labels handled together (a multiple of four: the micro-kernels take labels four or two at a time); their rows and
// accumulators stay in cache while a block of token states streams past.
constexpr int64_t kLabelTile = 16;
constexpr int64_t kTokenBlock = 64;
// Candidate positions per backward pass; bounds the per-candidate dq scratch to
// B * kLabelBlock * D values instead of B * C * D.
constexpr int64_t kLabelBlock = 256;

// The real tokens of every document as row pointers into H, so padding costs nothing in
// the inner loops.
template <typename Real>
struct RealTokens {
  std::vector<int64_t> ptr;       // B + 1 offsets into ids and rows
  std::vector<int64_t> ids;       // token position within its document
  std::vector<const Real*> rows;  // H row of each real token

  explicit RealTokens(const AttentionInputs<Real>& in) {
    const int64_t B = in.batch, T = in.tokens, D = in.dim;
    ptr.assign(B + 1, 0);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < T; ++i)
        if (in.mask[b * T + i]) {
          ids.push_back(i);
          rows.push_back(in.H + (b * T + i) * D);
        }
      ptr[b + 1] = static_cast<int64_t>(ids.size());
    }
  }

  int64_t count(int64_t b) const { return ptr[b + 1] - ptr[b]; }
  const Real* const* row_ptrs(int64_t b, int64_t k0) const { return rows.data() + ptr[b] + k0; }
};

// out[c * kTokenBlock + j] = q[c] . rows[j] for the nc rows of q (q[nc] must be readable: an odd
// last label is paired with it), four labels at a time, then pairs.
template <typename Real>
void tile_scores(const Real* const* q, int64_t nc, const Real* const* rows, int64_t nt, int64_t D, Real* out) {
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4) {
    Real* s[4] = {out + c * kTokenBlock, out + (c + 1) * kTokenBlock, out + (c + 2) * kTokenBlock,
                  out + (c + 3) * kTokenBlock};
    scores_4(q + c, rows, nt, D, s);
  }
  for (; c < nc; c += 2)
    scores_2(q[c], q[c + 1], rows, nt, D, out + c * kTokenBlock, out + std::min(c + 1, nc - 1) * kTokenBlock);
}

template <typename Real>
inline int64_t label_of(const AttentionInputs<Real>& in, int64_t b, int64_t c) {
  return in.candidates ? in.candidates[b * in.cand_per_doc + c] : c;
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
  const int64_t B = in.batch, D = in.dim, C = in.cand_per_doc;
  const int n_threads = resolve_threads(threads);
  const RealTokens<Real> tok(in);
  const int64_t tiles = (C + kLabelTile - 1) / kLabelTile;

#pragma omp parallel num_threads(n_threads)
  {
    std::vector<Real> scores(kLabelTile * kTokenBlock), weights(kLabelTile * kTokenBlock);
    std::vector<Real> junk(static_cast<size_t>(D));  // the missing partner of an odd label
#pragma omp for schedule(dynamic)
    for (int64_t work = 0; work < B * tiles; ++work) {
      const int64_t b = work / tiles;
      const int64_t c0 = (work % tiles) * kLabelTile;
      const int64_t nc = std::min(kLabelTile, C - c0);
      SoftmaxState<Real> st[kLabelTile];
      const Real* q[kLabelTile + 1];
      Real* acc[kLabelTile + 1];
      for (int64_t c = 0; c < nc; ++c) {
        st[c] = softmax_init<Real>();
        q[c] = in.Q + label_of(in, b, c0 + c) * D;
        acc[c] = out + (b * C + c0 + c) * D;
        std::fill(acc[c], acc[c] + D, Real(0));
      }
      q[nc] = q[nc - 1];
      acc[nc] = junk.data();
      std::fill(junk.begin(), junk.end(), Real(0));
      for (int64_t k0 = 0; k0 < tok.count(b); k0 += kTokenBlock) {
        const int64_t nt = std::min(kTokenBlock, tok.count(b) - k0);
        tile_scores(q, nc, tok.row_ptrs(b, k0), nt, D, scores.data());
        for (int64_t c = 0; c < nc; ++c) {
          const Real* s = scores.data() + c * kTokenBlock;
          Real* w = weights.data() + c * kTokenBlock;
          const Real block_max = *std::max_element(s, s + nt);
          // One rescale per block, not per token: the max rarely moves after the first blocks.
          const Real factor = softmax_raise_max(st[c], block_max);
          if (factor != Real(1))
            for (int64_t d = 0; d < D; ++d) acc[c][d] *= factor;
          for (int64_t j = 0; j < nt; ++j) w[j] = softmax_add(st[c], s[j]);
        }
        for (int64_t c = 0; c < nc; c += 2) {
          const Real* w0 = weights.data() + c * kTokenBlock;
          const Real* w1 = c + 1 < nc ? w0 + kTokenBlock : w0;
          combine_2(acc[c], acc[c + 1], w0, w1, tok.row_ptrs(b, k0), nt, D);
        }
      }
      for (int64_t c = 0; c < nc; ++c) {
        const Real inv = softmax_inv_sum(st[c]);
        for (int64_t d = 0; d < D; ++d) acc[c][d] *= inv;
        lse[b * C + c0 + c] = softmax_lse(st[c]);
      }
    }
  }
}

template <typename Real>
void label_attention_backward(const AttentionInputs<Real>& in, const Real* out, const Real* lse,
                              const Real* grad_out, Real* grad_H, Real* grad_Q, int threads) {
  check_attention_inputs(in);
  const int64_t B = in.batch, T = in.tokens, D = in.dim, C = in.cand_per_doc;
  const int n_threads = resolve_threads(threads);
  const RealTokens<Real> tok(in);
  std::fill(grad_H, grad_H + B * T * D, Real(0));
  std::fill(grad_Q, grad_Q + in.labels * D, Real(0));
  const int64_t block = std::min(kLabelBlock, std::max<int64_t>(C, 1));
  std::vector<Real> dq(static_cast<size_t>(B * block * D));

  for (int64_t cb = 0; cb < C; cb += block) {
    const int64_t nb = std::min(block, C - cb);
    // A document owns its grad_H rows and its dq scratch rows: no two threads write the same memory.
#pragma omp parallel num_threads(n_threads)
    {
      const size_t tile_values = kLabelTile * kTokenBlock;
      std::vector<Real> s(tile_values), dp(tile_values), p(tile_values), ds(tile_values);
      std::vector<Real> junk(static_cast<size_t>(D));
      Real w0[2 * kLabelTile], w1[2 * kLabelTile];
      const Real* terms[2 * kLabelTile];  // [gO rows | q rows] of the tile, for grad_H
#pragma omp for schedule(dynamic)
      for (int64_t b = 0; b < B; ++b) {
        Real* dH = grad_H + b * T * D;
        std::fill(dq.data() + b * block * D, dq.data() + (b * block + nb) * D, Real(0));
        for (int64_t c0 = 0; c0 < nb; c0 += kLabelTile) {
          const int64_t nc = std::min(kLabelTile, nb - c0);
          const Real* q[kLabelTile + 1];
          const Real* g[kLabelTile + 1];
          Real* dqc[kLabelTile + 1];
          Real delta[kLabelTile], lse_c[kLabelTile];
          for (int64_t c = 0; c < nc; ++c) {
            const int64_t pos = b * C + cb + c0 + c;
            q[c] = in.Q + label_of(in, b, cb + c0 + c) * D;
            g[c] = grad_out + pos * D;
            delta[c] = dot(g[c], out + pos * D, D);
            lse_c[c] = lse[pos];
            dqc[c] = dq.data() + (b * block + c0 + c) * D;
            terms[c] = g[c];
            terms[nc + c] = q[c];
          }
          q[nc] = q[nc - 1];
          g[nc] = g[nc - 1];
          dqc[nc] = junk.data();
          for (int64_t k0 = 0; k0 < tok.count(b); k0 += kTokenBlock) {
            const int64_t nt = std::min(kTokenBlock, tok.count(b) - k0);
            const Real* const* rows = tok.row_ptrs(b, k0);
            tile_scores(q, nc, rows, nt, D, s.data());
            tile_scores(g, nc, rows, nt, D, dp.data());
            for (int64_t c = 0; c < nc; ++c)
              for (int64_t j = 0; j < nt; ++j) {
                const int64_t k = c * kTokenBlock + j;
                p[k] = prob_from_lse(s[k], lse_c[c]);
                ds[k] = score_grad(p[k], dp[k], delta[c]);
              }
            for (int64_t c = 0; c < nc; c += 2) {
              const Real* d0 = ds.data() + c * kTokenBlock;
              const Real* d1 = c + 1 < nc ? d0 + kTokenBlock : d0;
              combine_2(dqc[c], dqc[c + 1], d0, d1, rows, nt, D);
            }
            // grad_H rows, two tokens at a time: dh_t += sum_c p_ct gO_c + ds_ct q_c
            for (int64_t j = 0; j < nt; j += 2) {
              const bool pair = j + 1 < nt;
              for (int64_t c = 0; c < nc; ++c) {
                w0[c] = p[c * kTokenBlock + j];
                w0[nc + c] = ds[c * kTokenBlock + j];
                w1[c] = pair ? p[c * kTokenBlock + j + 1] : Real(0);
                w1[nc + c] = pair ? ds[c * kTokenBlock + j + 1] : Real(0);
              }
              Real* h1 = pair ? dH + tok.ids[tok.ptr[b] + k0 + j + 1] * D : junk.data();
              combine_2(dH + tok.ids[tok.ptr[b] + k0 + j] * D, h1, w0, w1, terms, 2 * nc, D);
            }
          }
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
