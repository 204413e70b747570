// Shared by the CPU micro-kernel files: GCC/Clang vector extensions (no intrinsics, so they
// build for any target) and the clone attributes that give each kernel an AVX2+FMA version
// picked at load time and an AVX-512 version picked at run time (cpu::avx512_enabled), never
// -march=native. Include only from .cpp files: the helpers are for code inside those clones.
#pragma once
#include <cstdint>
#include <cstring>

// x86-64 GCC 12+ gets an x86-64-v3 (AVX2+FMA) clone of each kernel besides the baseline one,
// and a separate AVX-512 (x86-64-v4) version with 512-bit vectors, chosen at run time when the
// CPU has it. Not "arch=haswell": its resolver tests the CPU model (Intel Haswell), not the
// features, so an AMD EPYC with AVX2 would run the baseline clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define XMC_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define XMC_CPU_AVX512 1
#else
#define XMC_CPU_CLONES
#define XMC_CPU_AVX512 0
#endif
#define XMC_ALWAYS_INLINE inline __attribute__((always_inline))

namespace xmc {
namespace ops {
namespace cpu {
namespace simd {

// VB: vector bytes (32 for AVX2 and the baseline, 64 for AVX-512).
template <typename Real, int VB>
struct Simd {
  typedef Real V __attribute__((vector_size(VB)));
  static constexpr int64_t kLanes = VB / sizeof(Real);
};

template <typename V, typename Real>
XMC_ALWAYS_INLINE V vload(const Real* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V, typename Real>
XMC_ALWAYS_INLINE void vstore(Real* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace simd
}  // namespace cpu
}  // namespace ops
}  // namespace xmc
