#!/bin/sh
# ResNet-50 + ArcFace on the CPU, arcnet beside Debian's PyTorch 1.13, same machine, same run.
# Usage: benchmarks/models/compare_cpu.sh BUILD_DIR [ITERS]
set -eu
build=${1:-build} iters=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
export OMP_NUM_THREADS=$threads
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $threads threads; $(date -u +%F)"
printf "%-10s %-6s %14s %14s %14s %14s %8s %8s\n" size batch "arcnet inf" "torch inf" "arcnet train" "torch train" "inf x" "train x"
for cfg in "224 8" "448 2"; do
  set -- $cfg
  a=$("$build/benchmarks/arcnet_bench_resnet_arcface" "$1" "$2" "$iters")
  t=$(/usr/bin/python3 "$here/resnet_arcface_torch.py" "$1" "$2" "$iters")
  ai=$(echo "$a" | sed 's/.*infer_img_s=\([0-9.]*\).*/\1/'); at=$(echo "$a" | sed 's/.*train_img_s=\([0-9.]*\).*/\1/')
  ti=$(echo "$t" | sed 's/.*infer_img_s=\([0-9.]*\).*/\1/'); tt=$(echo "$t" | sed 's/.*train_img_s=\([0-9.]*\).*/\1/')
  printf "%-10s %-6s %14s %14s %14s %14s %8.2f %8.2f\n" "${1}x$1" "$2" "$ai" "$ti" "$at" "$tt" \
    "$(echo "$ai / $ti" | bc -l)" "$(echo "$at / $tt" | bc -l)"
done
