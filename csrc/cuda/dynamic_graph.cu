// CUDA dynamic graph propagation: out[b] = D^-1/2 S D^-1/2 H[b], S = sigmoid(Qa[b] Kb[b]^T),
// never stored. A block owns 32 rows (or 32 columns) of S and 64 feature columns of its result,
// and walks the other side of S in 32 x 32 tiles: scores from shared-memory tiles of Qa and Kb,
// sigmoid in registers, the tile's weights times 32 feature rows into register accumulators.
// The column-side sums of the backward (dG = S^T r dO and dKb = dZ^T Qa) are blocks that own
// columns and rebuild the same tiles, so no atomics and a fixed summation order.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/dynamic_graph_cuda.h"

namespace xmc {
namespace cuda {
namespace {

constexpr int kTile = 32;                           // rows and columns of a tile of S; blockDim.x
constexpr int kThreadsY = 8;                        // blockDim.y: 256 threads
constexpr int kRowsPerThread = kTile / kThreadsY;   // tile rows ty, ty + 8, ty + 16, ty + 24
constexpr int kChunk = 64;                          // result columns per block: tx and tx + 32

// What a block accumulates, for the 32 labels it owns (rows i or columns j of S):
enum class Pass {
  kProduct,  // rows:    out_i = r_i sum_j s_ij r_j H_j
  kGradG,    // columns: dG_j = sum_i s_ij r_i dO_i (grad_H before its scaling by r_j)
  kGradQ,    // rows:    dQa_i = sum_j dZ_ij Kb_j
  kGradK,    // columns: dKb_j = sum_i dZ_ij Qa_i
};                // with dZ_ij = (r_i r_j dO_i . H_j + dd_i) s_ij (1 - s_ij)

template <typename Real>
struct Problem {
  const Real* Qa = nullptr;
  const Real* Kb = nullptr;
  const Real* H = nullptr;
  const Real* degrees = nullptr;
  const Real* grad_out = nullptr;     // backward only
  const Real* degree_grad = nullptr;  // dd, backward only
  int64_t labels = 0, width = 0, dim = 0;
  Real min_degree = 0;
};

template <typename Real>
struct SharedTiles {
  Real own[kTile][kTile + 1];  // +1: a thread's column reads fall in distinct banks
  Real other[kTile][kTile + 1];
  Real weight[kTile][kTile + 1];
  Real feature[kTile][kChunk + 1];
};

__device__ inline float inv_sqrt(float x) { return rsqrtf(x); }
__device__ inline double inv_sqrt(double x) { return rsqrt(x); }
__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }

// exp(-z) = inf below about -88 (float) gives exactly 0, as the exact sigmoid rounds there.
template <typename Real>
__device__ Real sigmoid(Real z) {
  return Real(1) / (Real(1) + exp_of(-z));
}

template <typename Real>
__device__ Real degree_scale(const Real* degrees, int64_t i, Real min_degree) {
  return inv_sqrt(max(degrees[i], min_degree));
}

// acc[k] += A[own0 + ty + 8k] . B[other0 + tx] over `inner` columns (A, B: (labels, inner));
// rows past the last label read as zero. Every thread of the block must call it.
template <typename Real>
__device__ void add_tile_dots(const Real* A, const Real* B, int64_t own0, int64_t other0, int64_t labels,
                              int64_t inner, Real (&acc)[kRowsPerThread], SharedTiles<Real>& sh) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t p0 = 0; p0 < inner; p0 += kTile) {
    const int64_t p = p0 + tx;
    for (int k = 0; k < kRowsPerThread; ++k) {
      const int row = ty + kThreadsY * k;
      sh.own[row][tx] = own0 + row < labels && p < inner ? A[(own0 + row) * inner + p] : Real(0);
      sh.other[row][tx] = other0 + row < labels && p < inner ? B[(other0 + row) * inner + p] : Real(0);
    }
    __syncthreads();
    for (int q = 0; q < kTile; ++q) {
      const Real b = sh.other[tx][q];
      for (int k = 0; k < kRowsPerThread; ++k) acc[k] += sh.own[ty + kThreadsY * k][q] * b;
    }
    __syncthreads();
  }
}

// grid (label tiles, result column chunks, documents), block (32, 8).
template <typename Real, Pass kPass>
__global__ void pair_kernel(Problem<Real> pr, Real* __restrict__ result) {
  constexpr bool kOwnsRows = kPass == Pass::kProduct || kPass == Pass::kGradQ;
  constexpr bool kScoreGrad = kPass == Pass::kGradQ || kPass == Pass::kGradK;
  __shared__ SharedTiles<Real> sh;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t L = pr.labels, d = pr.width, D = pr.dim;
  const int64_t own0 = int64_t(blockIdx.x) * kTile, c0 = int64_t(blockIdx.y) * kChunk, b = blockIdx.z;
  const Real* Q = pr.Qa + b * L * d;
  const Real* K = pr.Kb + b * L * d;
  const Real* H = pr.H + b * L * D;
  const Real* dO = pr.grad_out ? pr.grad_out + b * L * D : nullptr;
  const Real* deg = pr.degrees + b * L;
  const Real* dd = pr.degree_grad ? pr.degree_grad + b * L : nullptr;
  // The rows of the other side that the weights multiply.
  const Real* X = kPass == Pass::kProduct ? H : kPass == Pass::kGradG ? dO : kPass == Pass::kGradQ ? K : Q;
  const int64_t width = kPass == Pass::kProduct || kPass == Pass::kGradG ? D : d;

  Real acc[kRowsPerThread][2] = {};
  for (int64_t other0 = 0; other0 < L; other0 += kTile) {
    Real z[kRowsPerThread] = {}, m[kRowsPerThread] = {};
    if (kOwnsRows)
      add_tile_dots(Q, K, own0, other0, L, d, z, sh);
    else
      add_tile_dots(K, Q, own0, other0, L, d, z, sh);
    if (kPass == Pass::kGradQ) add_tile_dots(dO, H, own0, other0, L, D, m, sh);
    if (kPass == Pass::kGradK) add_tile_dots(H, dO, own0, other0, L, D, m, sh);
    for (int k = 0; k < kRowsPerThread; ++k) {
      const int64_t own = own0 + ty + kThreadsY * k, other = other0 + tx;
      Real w = 0;
      if (own < L && other < L) {
        const int64_t i = kOwnsRows ? own : other, j = kOwnsRows ? other : own;
        const Real s = sigmoid(z[k]);
        const Real r_i = degree_scale(deg, i, pr.min_degree), r_j = degree_scale(deg, j, pr.min_degree);
        if (kScoreGrad)
          w = (r_i * r_j * m[k] + dd[i]) * s * (Real(1) - s);
        else
          w = s * (kPass == Pass::kProduct ? r_j : r_i);
      }
      sh.weight[ty + kThreadsY * k][tx] = w;
    }
    for (int e = ty * kTile + tx; e < kTile * kChunk; e += kTile * kThreadsY) {
      const int o = e / kChunk, c = e % kChunk;
      sh.feature[o][c] = other0 + o < L && c0 + c < width ? X[(other0 + o) * width + c0 + c] : Real(0);
    }
    __syncthreads();
    for (int o = 0; o < kTile; ++o) {
      const Real f0 = sh.feature[o][tx], f1 = sh.feature[o][tx + kTile];
      for (int k = 0; k < kRowsPerThread; ++k) {
        const Real w = sh.weight[ty + kThreadsY * k][o];
        acc[k][0] += w * f0;
        acc[k][1] += w * f1;
      }
    }
    __syncthreads();
  }
  for (int k = 0; k < kRowsPerThread; ++k) {
    const int64_t own = own0 + ty + kThreadsY * k;
    if (own >= L) continue;
    const Real scale = kPass == Pass::kProduct ? degree_scale(deg, own, pr.min_degree) : Real(1);
    for (int half = 0; half < 2; ++half) {
      const int64_t c = c0 + tx + kTile * half;
      if (c < width) result[(b * L + own) * width + c] = scale * acc[k][half];
    }
  }
}

template <typename Real>
__device__ Real warp_sum(Real v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // complete in lane 0
}

// degrees[b, i] = sum_j sigmoid(Qa_i . Kb_j); grid (row tiles, documents), block (32, 8).
template <typename Real>
__global__ void degrees_kernel(const Real* __restrict__ Qa, const Real* __restrict__ Kb, int64_t L, int64_t d,
                               Real* __restrict__ degrees) {
  __shared__ SharedTiles<Real> sh;
  const int64_t own0 = int64_t(blockIdx.x) * kTile, b = blockIdx.y;
  const Real* Q = Qa + b * L * d;
  const Real* K = Kb + b * L * d;
  Real sums[kRowsPerThread] = {};
  for (int64_t other0 = 0; other0 < L; other0 += kTile) {
    Real z[kRowsPerThread] = {};
    add_tile_dots(Q, K, own0, other0, L, d, z, sh);
    if (other0 + threadIdx.x < L)
      for (int k = 0; k < kRowsPerThread; ++k) sums[k] += sigmoid(z[k]);
  }
  for (int k = 0; k < kRowsPerThread; ++k) {  // a warp is one ty: its 32 lanes are the 32 columns
    const Real total = warp_sum(sums[k]);
    const int64_t own = own0 + threadIdx.y + kThreadsY * k;
    if (threadIdx.x == 0 && own < L) degrees[b * L + own] = total;
  }
}

// One warp per (document, label) row: dr = H . dG + dO . out / r, dd = -r^3 dr / 2 where the
// degree is not clamped, and grad_H = r dG in place (it holds dG on entry).
template <typename Real>
__global__ void degree_grad_kernel(const Real* __restrict__ H, const Real* __restrict__ grad_out,
                                   const Real* __restrict__ out, const Real* __restrict__ degrees, int64_t rows,
                                   int64_t D, Real min_degree, Real* __restrict__ grad_H,
                                   Real* __restrict__ degree_grad) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // the same for the whole warp
  Real through_H = 0, through_out = 0;
  for (int64_t c = lane; c < D; c += 32) {
    through_H += H[row * D + c] * grad_H[row * D + c];
    through_out += grad_out[row * D + c] * out[row * D + c];
  }
  through_H = warp_sum(through_H);
  through_out = warp_sum(through_out);
  const Real r = degree_scale(degrees, row, min_degree);
  if (lane == 0)
    degree_grad[row] = degrees[row] > min_degree ? Real(-0.5) * r * r * r * (through_H + through_out / r) : Real(0);
  for (int64_t c = lane; c < D; c += 32) grad_H[row * D + c] *= r;
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("xmc._cuda: dynamic_graph_propagate: ") + what + ": " +
                             cudaGetErrorString(err));
}

void check_sizes(int64_t batch, int64_t labels) {
  if (batch > 65535 || labels > (int64_t(1) << 36))
    throw std::invalid_argument("xmc._cuda: dynamic_graph_propagate: at most 65535 documents and 2^36 labels per call");
}

template <typename Real, Pass kPass>
void launch_pair(const Problem<Real>& pr, int64_t batch, int64_t width, Real* result, cudaStream_t s) {
  if (width == 0) return;
  const dim3 grid(static_cast<unsigned>((pr.labels + kTile - 1) / kTile),
                  static_cast<unsigned>((width + kChunk - 1) / kChunk), static_cast<unsigned>(batch));
  pair_kernel<Real, kPass><<<grid, dim3(kTile, kThreadsY), 0, s>>>(pr, result);
  check(cudaGetLastError(), "launch");
}

template <typename Real>
Problem<Real> problem(const void* Qa, const void* Kb, const void* H, const void* degrees, int64_t labels,
                      int64_t width, int64_t dim, double min_degree) {
  Problem<Real> pr;
  pr.Qa = static_cast<const Real*>(Qa);
  pr.Kb = static_cast<const Real*>(Kb);
  pr.H = static_cast<const Real*>(H);
  pr.degrees = static_cast<const Real*>(degrees);
  pr.labels = labels;
  pr.width = width;
  pr.dim = dim;
  pr.min_degree = static_cast<Real>(min_degree);
  return pr;
}

template <typename Real>
void forward_typed(const void* Qa, const void* Kb, const void* H, void* out, void* degrees, int64_t batch,
                   int64_t labels, int64_t width, int64_t dim, double min_degree, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((labels + kTile - 1) / kTile), static_cast<unsigned>(batch));
  degrees_kernel<Real><<<grid, dim3(kTile, kThreadsY), 0, s>>>(
      static_cast<const Real*>(Qa), static_cast<const Real*>(Kb), labels, width, static_cast<Real*>(degrees));
  check(cudaGetLastError(), "launch");
  const auto pr = problem<Real>(Qa, Kb, H, degrees, labels, width, dim, min_degree);
  launch_pair<Real, Pass::kProduct>(pr, batch, dim, static_cast<Real*>(out), s);
}

template <typename Real>
void backward_typed(const void* Qa, const void* Kb, const void* H, const void* degrees, const void* out,
                    const void* grad_out, void* grad_Qa, void* grad_Kb, void* grad_H, void* degree_grad,
                    int64_t batch, int64_t labels, int64_t width, int64_t dim, double min_degree, cudaStream_t s) {
  auto pr = problem<Real>(Qa, Kb, H, degrees, labels, width, dim, min_degree);
  pr.grad_out = static_cast<const Real*>(grad_out);
  launch_pair<Real, Pass::kGradG>(pr, batch, dim, static_cast<Real*>(grad_H), s);
  const int64_t rows = batch * labels;
  constexpr int kWarps = 8;
  degree_grad_kernel<Real><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), 32 * kWarps, 0, s>>>(
      static_cast<const Real*>(H), static_cast<const Real*>(grad_out), static_cast<const Real*>(out),
      static_cast<const Real*>(degrees), rows, dim, pr.min_degree, static_cast<Real*>(grad_H),
      static_cast<Real*>(degree_grad));
  check(cudaGetLastError(), "launch");
  pr.degree_grad = static_cast<const Real*>(degree_grad);
  launch_pair<Real, Pass::kGradQ>(pr, batch, width, static_cast<Real*>(grad_Qa), s);
  launch_pair<Real, Pass::kGradK>(pr, batch, width, static_cast<Real*>(grad_Kb), s);
}

}  // namespace

void dynamic_graph_forward(DType dtype, const void* Qa, const void* Kb, const void* H, void* out, void* degrees,
                           int64_t batch, int64_t labels, int64_t width, int64_t dim, double min_degree, void* stream,
                           int device) {
  check_sizes(batch, labels);
  if (batch == 0 || labels == 0) return;
  check(cudaSetDevice(device), "selecting the tensors' device");
  auto s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::Float64)
    forward_typed<double>(Qa, Kb, H, out, degrees, batch, labels, width, dim, min_degree, s);
  else
    forward_typed<float>(Qa, Kb, H, out, degrees, batch, labels, width, dim, min_degree, s);
}

void dynamic_graph_backward(DType dtype, const void* Qa, const void* Kb, const void* H, const void* degrees,
                            const void* out, const void* grad_out, void* grad_Qa, void* grad_Kb, void* grad_H,
                            void* degree_grad, int64_t batch, int64_t labels, int64_t width, int64_t dim,
                            double min_degree, void* stream, int device) {
  check_sizes(batch, labels);
  if (batch == 0 || labels == 0) return;
  check(cudaSetDevice(device), "selecting the tensors' device");
  auto s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::Float64)
    backward_typed<double>(Qa, Kb, H, degrees, out, grad_out, grad_Qa, grad_Kb, grad_H, degree_grad, batch, labels,
                           width, dim, min_degree, s);
  else
    backward_typed<float>(Qa, Kb, H, degrees, out, grad_out, grad_Qa, grad_Kb, grad_H, degree_grad, batch, labels,
                          width, dim, min_degree, s);
}

}  // namespace cuda
}  // namespace xmc
