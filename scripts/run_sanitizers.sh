#!/usr/bin/env bash
# Sanitizer runs of the test suite, part of CI (scripts/run_tests.sh calls this after the normal
# tests). Each builds only what it runs, in its own build directory, and any sanitizer report
# fails the script:
#  1. AddressSanitizer + UndefinedBehaviorSanitizer (-O1 -g, assertions on): every unit test in
#     arcnet_tests, and the programs end to end (train, test, retrieve, invert, kill and resume,
#     bad input: tests/programs/run_programs.sh) with the programs built the same way. Leaks
#     count as errors.
#  2. ThreadSanitizer: the data tests (the loader's worker threads), OpenMP off (ARCNET_OPENMP=OFF:
#     libgomp is not built with TSan, so OpenMP regions would give false race reports).
# Not run here: models.torch_parity (minutes of ResNet-50 in Python and C++), the Python interop
# and Pillow comparisons (they test numbers, not memory), the compile-fail, header and packaging
# checks (no code runs), CUDA. Works from any directory.
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

# Every report ends the process with a non-zero status; ctest then fails the test.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"

common=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" -DARCNET_CUDA=OFF -DARCNET_BUILD_BENCHMARKS=OFF)
seconds() { date +%s; }
report() { printf 'run_sanitizers: %s: build %ds, tests %ds\n' "$1" "$2" "$3"; }

if [[ " $runs " == *" asan "* ]]; then
  t0=$(seconds)
  # ARCNET_NATIVE=OFF: the programs' -O3 -march=native would replace -O1 (slower to build, and
  # the run checks memory, not speed).
  cmake -S "$root" -B "$asan_build" "${common[@]}" -DARCNET_SANITIZE=address,undefined -DARCNET_TEST_FILTER= \
        -DARCNET_BUILD_EXAMPLES=ON -DARCNET_NATIVE=OFF
  # arcnet_sanitize_targets (cmake/arcnet_sanitize.cmake): arcnet_tests, and the programs.
  cmake --build "$asan_build" -j "$jobs" --target arcnet_sanitize_targets
  t1=$(seconds)
  # The unit tests (catch_discover_tests names them after their TEST_CASE) and the programs.
  (cd "$asan_build" && ctest --output-on-failure -j "$jobs" --timeout 600 \
     -E '^(models\.torch_parity|io\.safetensors_python_interop|data\.compare_pillow|packaging\..*|compile_fail\..*)$')
  t2=$(seconds)
  report "AddressSanitizer + UndefinedBehaviorSanitizer" $((t1 - t0)) $((t2 - t1))
fi

if [[ " $runs " == *" tsan "* ]]; then
  t0=$(seconds)
  cmake -S "$root" -B "$tsan_build" "${common[@]}" -DARCNET_SANITIZE=thread -DARCNET_OPENMP=OFF \
        "-DARCNET_TEST_FILTER=/data/test_[^/]*\\.cpp\$" -DARCNET_BUILD_EXAMPLES=OFF
  cmake --build "$tsan_build" -j "$jobs" --target arcnet_sanitize_targets
  t1=$(seconds)
  (cd "$tsan_build" && ctest --output-on-failure -j "$jobs" --timeout 600 -R '^loader: ')
  t2=$(seconds)
  report "ThreadSanitizer (loader)" $((t1 - t0)) $((t2 - t1))
fi
