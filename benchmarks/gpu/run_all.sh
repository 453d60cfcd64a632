#!/bin/bash
# The one script for a GPU machine (issue 4): configure and build with nvcc for sm_90, run the
# CUDA test suite, run compute-sanitizer memcheck on the CUDA op tests, then ResNet-50 + ArcFace
# training and inference beside PyTorch on the same GPU. Logs go to $OUT (or ./gpu-logs); the
# last thing printed is the table for the README.
#   benchmarks/gpu/run_all.sh [BUILD_DIR] [SIZE] [BATCH] [ITERS]
# The CPU test suite is not rerun here (CI runs it); the build is limited to the CUDA targets so
# that the device's minutes go to running. ARCNET_GPU_PREBUILT=1 skips configure and build and
# runs the binaries already in BUILD_DIR (built on a machine without a GPU, where nvcc works too,
# and carried over: arcnet_cuda_tests, arcnet_nccl_test, arcnet_make_inshop, arcnet-train,
# arcnet-test, arcnet_bench_resnet_arcface_cuda).
set -u
build=${1:-build-gpu} size=${2:-224} batch=${3:-64} iters=${4:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=${OUT:-$root/gpu-logs}
mkdir -p "$logs"
python=${PYTHON:-python3}
status=0
step() { echo "== $(date -u +%T) $*"; }

step "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
if [ "${ARCNET_GPU_PREBUILT:-0}" != 1 ]; then
  step "configure + build (nvcc, sm_90)"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DARCNET_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    >"$logs/configure.log" 2>&1 || { tail -20 "$logs/configure.log"; exit 1; }
  cmake --build "$build" -j"$(nproc)" --target arcnet_cuda_tests arcnet_bench_resnet_arcface_cuda arcnet-train \
    arcnet-test arcnet_make_inshop >"$logs/build.log" 2>&1 || { grep -m20 -B2 -A8 "error" "$logs/build.log"; exit 1; }
  # Only when NCCL and MPI were found (the target does not exist otherwise).
  cmake --build "$build" -j"$(nproc)" --target arcnet_nccl_test >"$logs/nccl_build.log" 2>&1 ||
    echo "arcnet_nccl_test not built (no NCCL or MPI?): see nccl_build.log"
fi

step "CUDA tests"
"$build/tests/cuda/arcnet_cuda_tests" --durations yes >"$logs/tests.log" 2>&1
tests_rc=$?
tail -4 "$logs/tests.log"
[ $tests_rc -eq 0 ] || { status=1; grep -m40 -B3 -A12 "FAILED\|failed" "$logs/tests.log"; }

step "arcnet-train --device cuda (tests/programs/cuda_train.sh: against the CPU run, resume, bf16)"
bash "$root/tests/programs/cuda_train.sh" train "$build/examples" "$build/tests/arcnet_make_inshop" \
  "$build/programs_cuda_train" "$root/tests/programs/tiny_inshop.cfg" >"$logs/train.log" 2>&1
train_rc=$?
tail -3 "$logs/train.log"
[ $train_rc -eq 0 ] || status=1

step "NCCL: nccl_communicator + gradient_reducer<cuda>, 1 rank"
nccl_rc=1
if [ -x "$build/tests/arcnet_nccl_test" ]; then
  mpirun --allow-run-as-root -np 1 "$build/tests/arcnet_nccl_test" >"$logs/nccl.log" 2>&1
  nccl_rc=$?
  tail -3 "$logs/nccl.log"
  [ $nccl_rc -eq 0 ] || grep -m40 -B3 -A12 "FAILED\|failed" "$logs/nccl.log"
else
  echo "no arcnet_nccl_test binary"
fi
[ $nccl_rc -eq 0 ] || status=1

step "compute-sanitizer memcheck on the op tests (caching off, so a use after free is seen)"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
ARCNET_CUDA_CACHE=0 "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 \
  "$build/tests/cuda/arcnet_cuda_tests" "~[model]" >"$logs/memcheck.log" 2>&1
memcheck_rc=$?
tail -3 "$logs/memcheck.log"
[ $memcheck_rc -eq 0 ] || status=1

step "benchmarks: ResNet-50 + ArcFace, ${size}x${size}, batch $batch, $iters iterations"
field() {  # the number after NAME= in a result line, "-" when the run printed none
  v=$(echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p" | head -1)
  echo "${v:--}"
}
rows=""
for p in fp32 tf32 bf16; do
  a=$("$build/benchmarks/arcnet_bench_resnet_arcface_cuda" "$size" "$batch" "$iters" "$p" 2>>"$logs/bench.log")
  echo "$a" >>"$logs/bench.log"
  t=$("$python" "$root/benchmarks/models/resnet_arcface_torch.py" "$size" "$batch" "$iters" cuda "$p" 2>>"$logs/bench.log")
  echo "$t" >>"$logs/bench.log"
  rows="$rows$p $(field "$a" infer_img_s) $(field "$t" infer_img_s) $(field "$a" train_img_s) $(field "$t" train_img_s) $(field "$a" peak_in_use_mb) $(field "$t" peak_in_use_mb)
"
done

echo
verdict() { case $1 in 0) echo passed ;; 77) echo "skipped (no GPU)" ;; *) echo "FAILED ($1)" ;; esac; }
echo "tests: $(verdict $tests_rc)   arcnet-train --device cuda: $(verdict $train_rc)   NCCL: $(verdict $nccl_rc)" \
  "  memcheck: $(verdict $memcheck_rc)"
printf "%-9s %12s %12s %8s %12s %12s %8s %10s %10s\n" precision "arcnet inf" "torch inf" "ratio" "arcnet trn" \
  "torch trn" ratio "arcnet MB" "torch MB"
printf "%s" "$rows" | awk '{ ri = ($2 + 0 > 0 && $3 + 0 > 0) ? $2 / $3 : 0; rt = ($4 + 0 > 0 && $5 + 0 > 0) ? $4 / $5 : 0
  printf "%-9s %12s %12s %8.2f %12s %12s %8.2f %10s %10s\n", $1, $2, $3, ri, $4, $5, rt, $6, $7 }'
exit $status
