#!/usr/bin/env bash
# Builds arcnet (Release) and runs the demo: a small MLP trained with SGD on a synthetic spiral.
# Works from any directory; extra arguments go to the demo (--epochs N --seed S --lr X).
#   ARCNET_BUILD_DIR  build directory (default: <repo>/build)
#   ARCNET_CUDA       AUTO (the default of a new build directory), ON or OFF
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${ARCNET_BUILD_DIR:-$root/build}"

scripts/install_deps.sh
cuda=()  # ARCNET_CUDA only when given: otherwise the build directory keeps its choice (default AUTO)
[[ -n "${ARCNET_CUDA:-}" ]] && cuda=(-DARCNET_CUDA="$ARCNET_CUDA")
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda[@]}"
cmake --build "$build" -j "$(nproc)" --target arcnet-tiny-mlp
"$build/examples/arcnet-tiny-mlp" "$@"
