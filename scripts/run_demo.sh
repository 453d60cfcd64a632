#!/usr/bin/env bash
# The demo: builds arcnet (Release), trains a CIFAR-style ResNet-14 + ArcFace on Fashion-MNIST
# on the CPU (examples/configs/fashion-mnist.cfg), evaluates retrieval (the 10,000 test images as
# queries against the 60,000 training images: Recall@1, Recall@10, MAP@R), and shows retrieval
# examples (printed, and drawn into WORK/retrieval.png). Works from any directory; extra
# arguments go to arcnet-train (e.g. --epochs 1).
#   ARCNET_BUILD_DIR  build directory (default: <repo>/build)
#   ARCNET_CUDA       AUTO (the default of a new build directory), ON or OFF
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${ARCNET_BUILD_DIR:-$root/build}"

scripts/install_deps.sh
cuda=()  # ARCNET_CUDA only when given: otherwise the build directory keeps its choice (default AUTO)
[[ -n "${ARCNET_CUDA:-}" ]] && cuda=(-DARCNET_CUDA="$ARCNET_CUDA")
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${cuda[@]}" > /dev/null
cmake --build "$build" -j "$(nproc)" --target arcnet-train arcnet-test

config="$root/examples/configs/fashion-mnist.cfg"
work="$build/demo/fashion-mnist"
rm -rf "$work"  # a fresh run each time (arcnet-train never overwrites another run's checkpoints)
start=$(date +%s)
"$build/examples/arcnet-train" --config "$config" --work-dir "$work" "$@"
"$build/examples/arcnet-test" --config "$config" --checkpoint "$work/latest.safetensors" \
  --show 4 --grid "$work/retrieval.png" --out "$work/metrics.json"
end=$(date +%s)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "demo: training and evaluation took $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s on $(nproc) cores ($cpu)"
echo "demo: checkpoints, log.jsonl, curves.png and retrieval.png are in $work"
