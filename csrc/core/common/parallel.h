// Thread count handling shared by every multithreaded routine.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace xmc {

// threads <= 0 means "all cores", the convention of every public entry point.
inline int resolve_threads(int threads) {
#ifdef _OPENMP
  if (threads <= 0) return omp_get_max_threads();
  return threads;
#else
  (void)threads;
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace xmc
