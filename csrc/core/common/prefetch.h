#pragma once

namespace xmc {

// A hint that `addr` will be read soon; compilers without the builtin get nothing,
// which is correct, only slower.
inline void prefetch(const void* addr) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(addr);
#else
  (void)addr;
#endif
}

}  // namespace xmc
