#!/usr/bin/env bash
# Sanitizer runs of the test suite, part of CI (scripts/run_tests.sh calls this after the normal
# tests). Each builds only what it runs (the target arcnet_sanitize_targets, see
# cmake/arcnet_sanitize.cmake) in its own build directory, and any sanitizer report fails it:
#  1. AddressSanitizer + UndefinedBehaviorSanitizer, leaks included: every unit test of
#     arcnet_tests (one process per test case), then the programs (arcnet-train, -test,
#     -retrieve, -invert) built the same way, through the `programs` tests: end to end with kill,
#     resume and bad input (programs.end_to_end) and the numeric guards (programs.numeric_guard);
#     then, when MPI is found, the MPI unit tests and the 2-rank training (label distributed).
#  2. ThreadSanitizer: the loader tests (tests/data/test_loader.cpp: worker threads, prefetch
#     window, errors, restart and destruction mid-epoch), with ARCNET_OPENMP=OFF: libgomp is not
#     built with TSan, so every OpenMP region would be reported as a race.
# Left out, and why: programs.crash_safety (30 SIGKILLs over about 40 training runs: 3 minutes
# under ASan, and a killed process reports nothing; its resume path runs in programs.end_to_end),
# data.loader_memory (measures peak RSS, which ASan's shadow memory and quarantine distort),
# models.torch_parity and the Python / Pillow comparisons (they check numbers against PyTorch,
# not memory; torch_parity takes minutes), the compile-fail, header and packaging checks (no
# arcnet code runs), CUDA; leak checking in the MPI runs (arcnet_mpi_tests, programs.distributed),
# which see OpenMPI's own allocations at exit as leaks (they run with detect_leaks=0). Works from
# any directory.
#   ARCNET_ASAN_BUILD_DIR  build directory of run 1 (default: <repo>/build-asan)
#   ARCNET_TSAN_BUILD_DIR  build directory of run 2 (default: <repo>/build-tsan)
#   ARCNET_SANITIZERS      which runs: "asan tsan" (default), "asan", "tsan" or "none"
#   ARCNET_JOBS            parallel build and test jobs (default: nproc)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
asan_build="${ARCNET_ASAN_BUILD_DIR:-$root/build-asan}"
tsan_build="${ARCNET_TSAN_BUILD_DIR:-$root/build-tsan}"
runs="${ARCNET_SANITIZERS:-asan tsan}"
jobs="${ARCNET_JOBS:-$(nproc)}"

# Every report ends the process with a non-zero status, so ctest fails the test. The only
# suppressions are documented third-party false positives (scripts/lsan_suppressions.txt).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan_suppressions.txt:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

# -Og -g1: half the compile time of -O1 -g under the sanitizers (the Eigen-heavy test batches and
# the programs dominate), for tests that run about 20% slower; -g1 keeps file:line in reports.
# Debug: assertions, Eigen's included, stay on.
common=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-Og -g1" -DARCNET_CUDA=OFF -DARCNET_BUILD_BENCHMARKS=OFF)
TIMEFORMAT="run_sanitizers: %0R s wall, %0U s user + %0S s system CPU"

if [[ " $runs " == *" asan "* ]]; then
  echo "run_sanitizers: AddressSanitizer + UndefinedBehaviorSanitizer: build ($asan_build)"
  # ARCNET_NATIVE=OFF: the programs' -O3 -march=native would replace -Og.
  time {
    cmake -S "$root" -B "$asan_build" "${common[@]}" -DARCNET_SANITIZE=address,undefined -DARCNET_TEST_FILTER= \
          -DARCNET_BUILD_EXAMPLES=ON -DARCNET_NATIVE=OFF
    cmake --build "$asan_build" -j "$jobs" --target arcnet_sanitize_targets
  }
  echo "run_sanitizers: AddressSanitizer + UndefinedBehaviorSanitizer: tests"
  time {
    cd "$asan_build"
    # Unit tests: catch_discover_tests adds them without labels; every other test has one.
    ctest --output-on-failure -j "$jobs" --timeout 600 -LE .
    # The programs (present when arcnet::engine is: Boost.Program_options found).
    ctest --output-on-failure --timeout 900 -L '^programs$' -E '^programs\.(crash_safety|distributed)$'
    # The MPI tests and the 2-rank training (when MPI was found), without leak checking: OpenMPI
    # loads plugins with dlopen and leaves their allocations at exit, where LeakSanitizer sees
    # them as leaks of unknown modules. Memory errors and undefined behaviour are still fatal.
    if ctest -N -L '^distributed$' | grep -q 'Total Tests: [1-9]'; then
      ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" \
        ctest --output-on-failure --timeout 900 -L '^distributed$'
    fi
    cd "$root"
  }
fi

if [[ " $runs " == *" tsan "* ]]; then
  echo "run_sanitizers: ThreadSanitizer (loader): build ($tsan_build)"
  time {
    cmake -S "$root" -B "$tsan_build" "${common[@]}" -DARCNET_SANITIZE=thread -DARCNET_OPENMP=OFF \
          "-DARCNET_TEST_FILTER=/data/test_loader\\.cpp\$" -DARCNET_BUILD_EXAMPLES=OFF
    cmake --build "$tsan_build" -j "$jobs" --target arcnet_sanitize_targets
  }
  echo "run_sanitizers: ThreadSanitizer (loader): tests"
  time {
    cd "$tsan_build"
    # Ten rounds: a race shows only when the threads interleave badly (about 0.3 s a round).
    ctest --output-on-failure -j "$jobs" --timeout 600 -LE . --repeat until-fail:10
    cd "$root"
  }
fi
