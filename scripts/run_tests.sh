#!/usr/bin/env bash
# Builds arcnet (Release) and runs every test: the unit tests, the header compile-alone check
# (part of the build), the packaging tests, and the CUDA tests when nvcc is found (reported as
# skipped without a GPU). Works from any directory.
#   ARCNET_BUILD_DIR  build directory (default: <repo>/build)
#   ARCNET_CUDA       AUTO (the default of a new build directory), ON or OFF
# Then the sanitizer runs, scripts/run_sanitizers.sh (build-asan/, build-tsan/; ARCNET_SANITIZERS
# picks them, "none" skips them), and a short fuzzing run of every file parser on its committed
# corpus, scripts/fuzz.sh (build-fuzz/; ARCNET_FUZZ_SECONDS per target, default 30, 0 skips it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${ARCNET_BUILD_DIR:-$root/build}"
jobs="$(nproc)"

scripts/install_deps.sh
cuda=()  # ARCNET_CUDA only when given: otherwise the build directory keeps its choice (default AUTO)
[[ -n "${ARCNET_CUDA:-}" ]] && cuda=(-DARCNET_CUDA="$ARCNET_CUDA")
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda[@]}"
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs"
"$root/scripts/run_sanitizers.sh"
fuzz_seconds="${ARCNET_FUZZ_SECONDS:-30}"
if [[ $fuzz_seconds != 0 ]]; then
  FUZZ_SEED="${FUZZ_SEED:-1}" "$root/scripts/fuzz.sh" "$fuzz_seconds"
fi
