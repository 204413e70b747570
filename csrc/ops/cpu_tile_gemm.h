// Small dense products and a vectorised sigmoid for kernels that work on cache-sized tiles
// (the dynamic graph propagation): register-blocked, no packing, so each call should touch
// only what fits in L2. Same build scheme as cpu_microkernels.h (AVX2+FMA clones, AVX-512 at
// run time). Real: float, double.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace xmc {
namespace ops {
namespace cpu {

// C (m x n) = A (m x k) B (k x n), or C += A B when accumulate. A's element (i, p) is
// A[i * a_row + p * a_col], so a transposed A is only a change of strides; B and C are
// row-major with leading dimensions ldb and ldc.
template <typename Real>
struct TileProduct {
  int64_t m = 0, n = 0, k = 0;
  const Real* A = nullptr;
  int64_t a_row = 0, a_col = 1;
  const Real* B = nullptr;
  int64_t ldb = 0;
  Real* C = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
};

template <typename Real>
void tile_product(const TileProduct<Real>& p);

// Storage for tiles and packed operands, aligned to cache lines: large blocks from malloc sit
// 16 bytes past a page, so every other 32-byte load of a row would straddle two lines (measured:
// the tile products ran 10-25% slower on such buffers).
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlignment); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// x[i] = 1 / (1 + exp(-x[i])) for i < n, in place; exactly 0 where exp(-x) would overflow
// (x below about -88 in float32, -708 in float64), as the exact sigmoid rounds there.
template <typename Real>
void sigmoid_inplace(Real* x, int64_t n);

}  // namespace cpu
}  // namespace ops
}  // namespace xmc
