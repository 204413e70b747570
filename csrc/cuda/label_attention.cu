// CUDA kernels of label-wise attention. One warp per (document, label) for the forward and
// for dQ, one warp per (document, token) for dH, so every output row has a single writer
// except grad_Q, whose rows are shared by repeated candidate ids (atomicAdd, once per row).
// Token states (forward, dQ) or label rows (dH) are staged through shared memory and reused
// by all warps of a block; accumulators of length D live in shared memory per warp, each
// lane owning the elements d = lane, lane + 32, ...
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/label_attention_cuda.h"
#include "ops/attention_math.h"

namespace xmc {
namespace cuda {
namespace {

using ops::neg_inf;
using ops::SoftmaxState;

constexpr int kWarp = 32;
// Dynamic shared memory every architecture grants without an opt-in.
constexpr size_t kSharedBudget = 48 * 1024;
constexpr int kMaxTile = 64;

template <typename Real>
__device__ inline Real warp_sum(Real v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Every lane returns the full dot product.
template <typename Real>
__device__ inline Real warp_dot(const Real* a, const Real* b, int64_t D, int lane) {
  Real acc = 0;
  for (int64_t d = lane; d < D; d += kWarp) acc += a[d] * b[d];
  return warp_sum(acc);
}

template <typename Real>
__device__ inline void stage_tokens(Real* sh, const Real* src, int64_t count) {
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sh[i] = src[i];
}

// grid (ceil(C / warps), B). Shared: tile*D token states, warps*D accumulators,
// warps*tile scores and warps*tile weights.
template <typename Real>
__global__ void forward_kernel(const Real* __restrict__ H, const uint8_t* __restrict__ mask,
                               const Real* __restrict__ Q, const int64_t* __restrict__ cand,
                               Real* __restrict__ out, Real* __restrict__ lse, int64_t T, int64_t D, int64_t C,
                               int tile) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  Real* sh_h = reinterpret_cast<Real*>(smem_raw);
  Real* acc = sh_h + tile * D + warp * D;
  Real* sh_s = sh_h + tile * D + warps * D + warp * tile;
  Real* sh_w = sh_h + tile * D + warps * D + warps * tile + warp * tile;
  const int64_t b = blockIdx.y, c = int64_t(blockIdx.x) * warps + warp;
  const bool active = c < C;
  const Real* q = Q + (active ? (cand ? cand[b * C + c] : c) : 0) * D;
  const Real* Hb = H + b * T * D;
  const uint8_t* mb = mask + b * T;
  for (int64_t d = lane; d < D; d += kWarp) acc[d] = 0;
  SoftmaxState<Real> st = ops::softmax_init<Real>();
  for (int64_t t0 = 0; t0 < T; t0 += tile) {
    const int nt = int(min(int64_t(tile), T - t0));
    __syncthreads();  // the previous tile is consumed by every warp
    stage_tokens(sh_h, Hb + t0 * D, nt * D);
    __syncthreads();
    if (!active) continue;
    Real tile_max = neg_inf<Real>();
    for (int j = 0; j < nt; ++j) {
      const Real s = mb[t0 + j] ? warp_dot(q, sh_h + j * D, D, lane) : neg_inf<Real>();
      if (lane == 0) sh_s[j] = s;
      tile_max = max(tile_max, s);
    }
    __syncwarp();
    if (tile_max == neg_inf<Real>()) continue;  // a tile of padding only
    // Every lane runs the same state updates on the same values, so the state stays uniform.
    const Real factor = ops::softmax_raise_max(st, tile_max);
    for (int j = 0; j < nt; ++j) {
      const Real w = ops::softmax_add(st, sh_s[j]);  // exp(-inf) = 0 for padding
      if (lane == 0) sh_w[j] = w;
    }
    __syncwarp();
    for (int64_t d = lane; d < D; d += kWarp) {
      Real a = acc[d] * factor;
      for (int j = 0; j < nt; ++j) a += sh_w[j] * sh_h[j * D + d];
      acc[d] = a;
    }
    __syncwarp();
  }
  if (!active) return;
  const Real inv = ops::softmax_inv_sum(st);
  Real* o = out + (b * C + c) * D;
  for (int64_t d = lane; d < D; d += kWarp) o[d] = acc[d] * inv;
  if (lane == 0) lse[b * C + c] = ops::softmax_lse(st);
}

// grid (ceil(C / warps), B): dq of each (document, candidate), added to grad_Q once per row;
// also stores delta = gO . out for dh_kernel. Shared: tile*D tokens, warps*D dq, warps*tile ds.
template <typename Real>
__global__ void dq_kernel(const Real* __restrict__ H, const uint8_t* __restrict__ mask,
                          const Real* __restrict__ Q, const int64_t* __restrict__ cand,
                          const Real* __restrict__ out, const Real* __restrict__ lse,
                          const Real* __restrict__ grad_out, Real* __restrict__ grad_Q, Real* __restrict__ delta_out,
                          int64_t T, int64_t D, int64_t C, int tile) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  Real* sh_h = reinterpret_cast<Real*>(smem_raw);
  Real* acc = sh_h + tile * D + warp * D;
  Real* sh_ds = sh_h + tile * D + warps * D + warp * tile;
  const int64_t b = blockIdx.y, c = int64_t(blockIdx.x) * warps + warp;
  const bool active = c < C;
  const int64_t pos = b * C + (active ? c : 0);
  const int64_t label = active ? (cand ? cand[pos] : c) : 0;
  const Real* q = Q + label * D;
  const Real* g = grad_out + pos * D;
  const Real lse_c = lse[pos];
  const Real delta = warp_dot(g, out + pos * D, D, lane);
  if (active && lane == 0) delta_out[pos] = delta;
  const Real* Hb = H + b * T * D;
  const uint8_t* mb = mask + b * T;
  for (int64_t d = lane; d < D; d += kWarp) acc[d] = 0;
  for (int64_t t0 = 0; t0 < T; t0 += tile) {
    const int nt = int(min(int64_t(tile), T - t0));
    __syncthreads();
    stage_tokens(sh_h, Hb + t0 * D, nt * D);
    __syncthreads();
    if (!active || lse_c == neg_inf<Real>()) continue;
    for (int j = 0; j < nt; ++j) {
      Real ds = 0;
      if (mb[t0 + j]) {
        const Real* h = sh_h + j * D;
        const Real p = ops::prob_from_lse(warp_dot(q, h, D, lane), lse_c);
        ds = ops::score_grad(p, warp_dot(g, h, D, lane), delta);
      }
      if (lane == 0) sh_ds[j] = ds;
    }
    __syncwarp();
    for (int64_t d = lane; d < D; d += kWarp) {
      Real a = acc[d];
      for (int j = 0; j < nt; ++j) a += sh_ds[j] * sh_h[j * D + d];
      acc[d] = a;
    }
    __syncwarp();
  }
  if (!active || lse_c == neg_inf<Real>()) return;
  for (int64_t d = lane; d < D; d += kWarp) atomicAdd(grad_Q + label * D + d, acc[d]);
}

// grid (ceil(T / warps), B): dH of each (document, token) = sum over the document's candidates
// of p gO + ds q. Shared: tile*D label rows and tile*D output-gradient rows, warps*D token
// states, warps*D accumulators, tile lse and tile delta.
template <typename Real>
__global__ void dh_kernel(const Real* __restrict__ H, const uint8_t* __restrict__ mask,
                          const Real* __restrict__ Q, const int64_t* __restrict__ cand,
                          const Real* __restrict__ lse, const Real* __restrict__ grad_out,
                          const Real* __restrict__ delta, Real* __restrict__ grad_H, int64_t T, int64_t D,
                          int64_t C, int tile) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warps = blockDim.x / kWarp, warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  Real* sh_q = reinterpret_cast<Real*>(smem_raw);
  Real* sh_g = sh_q + tile * D;
  Real* sh_hrow = sh_g + tile * D + warp * D;
  Real* acc = sh_g + tile * D + warps * D + warp * D;
  Real* sh_lse = sh_g + tile * D + 2 * warps * D;
  Real* sh_delta = sh_lse + tile;
  const int64_t b = blockIdx.y, t = int64_t(blockIdx.x) * warps + warp;
  const bool active = t < T && mask[b * T + t];
  for (int64_t d = lane; d < D; d += kWarp) {
    acc[d] = 0;
    if (active) sh_hrow[d] = H[(b * T + t) * D + d];
  }
  for (int64_t c0 = 0; c0 < C; c0 += tile) {
    const int nc = int(min(int64_t(tile), C - c0));
    __syncthreads();
    for (int64_t i = threadIdx.x; i < int64_t(nc) * D; i += blockDim.x) {
      const int64_t j = i / D, d = i % D, pos = b * C + c0 + j;
      sh_q[i] = Q[(cand ? cand[pos] : c0 + j) * D + d];
      sh_g[i] = grad_out[pos * D + d];
    }
    for (int j = threadIdx.x; j < nc; j += blockDim.x) {
      sh_lse[j] = lse[b * C + c0 + j];
      sh_delta[j] = delta[b * C + c0 + j];
    }
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < nc; ++j) {
      const Real* q = sh_q + j * D;
      const Real* g = sh_g + j * D;
      const Real p = ops::prob_from_lse(warp_dot(q, sh_hrow, D, lane), sh_lse[j]);
      const Real ds = ops::score_grad(p, warp_dot(g, sh_hrow, D, lane), sh_delta[j]);
      for (int64_t d = lane; d < D; d += kWarp) acc[d] += p * g[d] + ds * q[d];
    }
  }
  if (t >= T) return;
  for (int64_t d = lane; d < D; d += kWarp) grad_H[(b * T + t) * D + d] = acc[d];
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("xmc._cuda: ") + what + ": " + cudaGetErrorString(err));
}

// Largest (warps, tile) whose shared memory fits the budget: per_tile bytes per tile step
// plus fixed bytes per warp.
struct Launch {
  int warps = 0, tile = 0;
  size_t smem = 0;
};

Launch plan(size_t per_tile, size_t per_warp, size_t per_warp_tile, const char* kernel, int64_t D) {
  for (int warps = 4; warps >= 1; warps /= 2) {
    const size_t fixed = warps * per_warp;
    if (fixed + per_tile + warps * per_warp_tile > kSharedBudget) continue;
    int64_t tile = (kSharedBudget - fixed) / (per_tile + warps * per_warp_tile);
    tile = tile > kMaxTile ? kMaxTile : tile;
    return Launch{warps, int(tile), fixed + size_t(tile) * (per_tile + warps * per_warp_tile)};
  }
  throw std::invalid_argument(std::string("xmc._cuda: dimension D = ") + std::to_string(D) +
                              " is too large for the shared-memory tiles of " + kernel +
                              "; use backend='chunked' or 'reference'");
}

void check_grid(const AttentionShape& s) {
  if (s.batch > 65535)
    throw std::invalid_argument("xmc._cuda: batch " + std::to_string(s.batch) + " exceeds 65535 documents per call");
}

template <typename Real>
void forward_typed(const AttentionShape& s, const void* H, const uint8_t* mask, const void* Q,
                   const int64_t* cand, void* out, void* lse, cudaStream_t stream) {
  if (s.batch == 0 || s.cand_per_doc == 0) return;
  check_grid(s);
  const size_t sz = sizeof(Real);
  const Launch l = plan(s.dim * sz, s.dim * sz, 2 * sz, "the forward", s.dim);
  const dim3 grid(unsigned((s.cand_per_doc + l.warps - 1) / l.warps), unsigned(s.batch));
  forward_kernel<Real><<<grid, l.warps * kWarp, l.smem, stream>>>(
      static_cast<const Real*>(H), mask, static_cast<const Real*>(Q), cand, static_cast<Real*>(out),
      static_cast<Real*>(lse), s.tokens, s.dim, s.cand_per_doc, l.tile);
  check(cudaGetLastError(), "forward launch");
}

template <typename Real>
void backward_typed(const AttentionShape& s, const void* H, const uint8_t* mask, const void* Q,
                    const int64_t* cand, const void* out, const void* lse, const void* grad_out, void* grad_H,
                    void* grad_Q, void* delta, cudaStream_t stream) {
  const size_t sz = sizeof(Real);
  check(cudaMemsetAsync(grad_Q, 0, size_t(s.labels * s.dim) * sz, stream), "zeroing grad_Q");
  if (s.batch == 0) return;
  if (s.cand_per_doc == 0 || s.tokens == 0) {
    check(cudaMemsetAsync(grad_H, 0, size_t(s.batch * s.tokens * s.dim) * sz, stream), "zeroing grad_H");
    return;
  }
  check_grid(s);
  const Launch lq = plan(s.dim * sz, s.dim * sz, sz, "the dQ backward", s.dim);
  const dim3 grid_q(unsigned((s.cand_per_doc + lq.warps - 1) / lq.warps), unsigned(s.batch));
  dq_kernel<Real><<<grid_q, lq.warps * kWarp, lq.smem, stream>>>(
      static_cast<const Real*>(H), mask, static_cast<const Real*>(Q), cand, static_cast<const Real*>(out),
      static_cast<const Real*>(lse), static_cast<const Real*>(grad_out), static_cast<Real*>(grad_Q),
      static_cast<Real*>(delta), s.tokens, s.dim, s.cand_per_doc, lq.tile);
  check(cudaGetLastError(), "dQ backward launch");
  const Launch lh = plan(2 * s.dim * sz + 2 * sz, 2 * s.dim * sz, 0, "the dH backward", s.dim);
  const dim3 grid_h(unsigned((s.tokens + lh.warps - 1) / lh.warps), unsigned(s.batch));
  dh_kernel<Real><<<grid_h, lh.warps * kWarp, lh.smem, stream>>>(
      static_cast<const Real*>(H), mask, static_cast<const Real*>(Q), cand, static_cast<const Real*>(lse),
      static_cast<const Real*>(grad_out), static_cast<const Real*>(delta), static_cast<Real*>(grad_H), s.tokens,
      s.dim, s.cand_per_doc, lh.tile);
  check(cudaGetLastError(), "dH backward launch");
}

}  // namespace

void label_attention_forward(DType dtype, const AttentionShape& s, const void* H, const uint8_t* mask,
                             const void* Q, const int64_t* candidates, void* out, void* lse, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  check(cudaSetDevice(s.device), "selecting the tensors' device");
  if (dtype == DType::Float64)
    forward_typed<double>(s, H, mask, Q, candidates, out, lse, st);
  else
    forward_typed<float>(s, H, mask, Q, candidates, out, lse, st);
}

void label_attention_backward(DType dtype, const AttentionShape& s, const void* H, const uint8_t* mask,
                              const void* Q, const int64_t* candidates, const void* out, const void* lse,
                              const void* grad_out, void* grad_H, void* grad_Q, void* delta, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  check(cudaSetDevice(s.device), "selecting the tensors' device");
  if (dtype == DType::Float64)
    backward_typed<double>(s, H, mask, Q, candidates, out, lse, grad_out, grad_H, grad_Q, delta, st);
  else
    backward_typed<float>(s, H, mask, Q, candidates, out, lse, grad_out, grad_H, grad_Q, delta, st);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace cuda
}  // namespace xmc
