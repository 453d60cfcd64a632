#!/bin/bash
# Packs what benchmarks/gpu/run_all.sh runs with ARCNET_GPU_PREBUILT=1 into one folder to carry to
# the GPU machine: the CUDA binaries built here (nvcc works without a GPU) in the layout run_all.sh
# expects, and in lib/ the shared libraries they need that the GPU machine's image lacks (Boost,
# libjpeg-turbo, libpng, cairo, OpenMPI, ...; the image has CUDA, cuBLAS, cuDNN and NCCL, which
# run_all.sh finds there). Prints the folder's size: a carry holds 64 MiB.
#   benchmarks/gpu/pack_prebuilt.sh BUILD_DIR OUT_DIR      (OUT_DIR under the repository: build-*/)
set -eu
build=$1 out=$2
bins="tests/cuda/arcnet_cuda_tests tests/arcnet_make_inshop tests/arcnet_nccl_test examples/arcnet-train
      examples/arcnet-test benchmarks/arcnet_bench_resnet_arcface_cuda"
rm -rf "$out"
mkdir -p "$out/lib"
for b in $bins; do
  [ -x "$build/$b" ] || { echo "missing $build/$b (build it first)" >&2; exit 1; }
  mkdir -p "$out/$(dirname "$b")"
  cp "$build/$b" "$out/$b"
done
cp "$build/CMakeCache.txt" "$out/" 2>/dev/null || true
# Every resolved dependency but the C runtime, the compiler's runtime and CUDA's own libraries.
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libstdc\+\+|libgcc_s|libcuda\.|libcudart|libcublas|libcudnn|libnccl)'
for b in $bins; do
  ldd "$build/$b" | awk '$3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] || cp -L "$path" "$out/lib/$name"
done
du -sh "$out" | awk '{ print "packed: " $1 }'
ls "$out/lib" | tr '\n' ' '
echo
