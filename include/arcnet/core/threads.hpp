#pragma once
// The CPU kernels' thread count, whether or not OpenMP is on: with OpenMP these are
// omp_get_max_threads and friends, without it (ARCNET_OPENMP=OFF, e.g. ThreadSanitizer builds)
// every kernel runs on the calling thread and these say so. Programs use them instead of
// omp_* so that they build either way.
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace arcnet {

/// Threads the kernels use from now on (n >= 1); ignored without OpenMP.
inline void set_num_threads(int n) {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}
/// Threads a kernel started now would use (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
/// This thread's index in the running parallel region (0 outside one, or without OpenMP).
inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
/// Threads in the running parallel region (1 outside one, or without OpenMP).
inline int team_size() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace arcnet
