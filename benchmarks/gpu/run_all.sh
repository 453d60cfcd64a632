#!/bin/bash
# The one script for a GPU machine (issues 4, 7, 8): configure and build with nvcc for sm_90, run
# the CUDA test suite and the ResNet-50 parity check, arcnet-train on the GPU, the NCCL test,
# compute-sanitizer memcheck and racecheck on the CUDA op tests, then ResNet-50 + ArcFace
# training and inference beside PyTorch on the same GPU. Logs go to $OUT (or ./gpu-logs); the
# last thing printed is the table for the README.
#   benchmarks/gpu/run_all.sh [BUILD_DIR] [SIZE BATCH] [ITERS]
# The CPU test suite is not rerun here (CI runs it); the build is limited to the CUDA targets so
# that the device's minutes go to running. ARCNET_GPU_PREBUILT=1 skips configure and build and
# runs the binaries already in BUILD_DIR (built on a machine without a GPU, where nvcc works too,
# and packed with their libraries by benchmarks/gpu/pack_prebuilt.sh: the GPU machine's image has
# CUDA and PyTorch but not Eigen, Catch2 or Boost, so it cannot build arcnet itself).
# ARCNET_GPU_PARTS picks parts (default all: "tests parity train nccl memcheck racecheck bench
# compile"), so that a session can split the run over two calls of at most 10 minutes each.
set -u
build=${1:-build-gpu} iters=${4:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=${OUT:-$root/gpu-logs}
mkdir -p "$logs"
python=${PYTHON:-python3}
parts=" ${ARCNET_GPU_PARTS:-tests parity train nccl memcheck racecheck bench compile} "
wants() { [[ $parts == *" $1 "* ]]; }
status=0
step() { echo "== $(date -u +%T) $*"; }
tests_rc=- parity_rc=- train_rc=- nccl_rc=- memcheck_rc=- racecheck_rc=-

step "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
if [ "${ARCNET_GPU_PREBUILT:-0}" = 1 ]; then
  # A folder made by benchmarks/gpu/pack_prebuilt.sh: its lib/ holds the libraries the binaries
  # were linked with here; the machine's own copy of each wins where it has one (it may be built
  # for an older C library than ours). CUDA's libraries come from the machine: the toolkit's and
  # those of PyTorch's nvidia-* packages (cuDNN, NCCL).
  if [ -d "$build/lib" ]; then
    for f in "$build/lib"/*; do
      ldconfig -p | grep -q "^[[:space:]]*$(basename "$f") " && rm -f "$f"
    done
    export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  for d in /usr/local/cuda/lib64 $("$python" -c 'import glob, nvidia; print(" ".join(sorted(glob.glob(list(nvidia.__path__)[0] + "/*/lib"))))' 2>/dev/null); do
    [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
  done
  missing=$(ldd "$build/tests/cuda/arcnet_cuda_tests" "$build/examples/arcnet-train" 2>&1 | grep "not found" | sort -u)
  [ -z "$missing" ] || echo "missing libraries: $missing"
else
  step "configure + build (nvcc, sm_90)"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DARCNET_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    >"$logs/configure.log" 2>&1 || { tail -20 "$logs/configure.log"; exit 1; }
  grep "arcnet: cuDNN" "$logs/configure.log"
  cmake --build "$build" -j"$(nproc)" --target arcnet_cuda_tests arcnet_bench_resnet_arcface_cuda arcnet-train \
    arcnet-test arcnet_make_inshop >"$logs/build.log" 2>&1 || { grep -m20 -B2 -A8 "error" "$logs/build.log"; exit 1; }
  # Only when NCCL and MPI were found (the target does not exist otherwise).
  cmake --build "$build" -j"$(nproc)" --target arcnet_nccl_test >"$logs/nccl_build.log" 2>&1 ||
    echo "arcnet_nccl_test not built (no NCCL or MPI?): see nccl_build.log"
fi

if wants tests; then
  step "CUDA tests"
  "$build/tests/cuda/arcnet_cuda_tests" --durations yes >"$logs/tests.log" 2>&1
  tests_rc=$?
  tail -4 "$logs/tests.log"
  [ $tests_rc -eq 0 ] || { status=1; grep -m40 -B3 -A12 "FAILED\|failed" "$logs/tests.log"; }
fi

if wants parity; then  # issue 4: ResNet-50 + ArcFace, one batch, against the CPU (a hidden test case)
  step "ResNet-50 + ArcFace parity with the CPU (fp32: 1e-4, bf16: 2e-2)"
  "$build/tests/cuda/arcnet_cuda_tests" "[resnet50]" >"$logs/parity.log" 2>&1
  parity_rc=$?
  grep "resnet50 parity" "$logs/parity.log"
  tail -3 "$logs/parity.log"
  [ $parity_rc -eq 0 ] || { status=1; grep -m20 -B3 -A12 "FAILED" "$logs/parity.log"; }
fi

if wants train; then
  step "arcnet-train --device cuda (tests/programs/cuda_train.sh: against the CPU run, resume, bf16)"
  bash "$root/tests/programs/cuda_train.sh" train "$build/examples" "$build/tests/arcnet_make_inshop" \
    "$build/programs_cuda_train" "$root/tests/programs/tiny_inshop.cfg" >"$logs/train.log" 2>&1
  train_rc=$?
  tail -3 "$logs/train.log"
  [ $train_rc -eq 0 ] || status=1
fi

if wants nccl; then
  step "NCCL: nccl_communicator + gradient_reducer<cuda>, 1 rank"
  nccl_rc=1
  if ! command -v mpirun >/dev/null; then
    echo "no mpirun on this machine"
  elif [ -x "$build/tests/arcnet_nccl_test" ]; then
    mpirun --allow-run-as-root -np 1 "$build/tests/arcnet_nccl_test" >"$logs/nccl.log" 2>&1
    nccl_rc=$?
    tail -3 "$logs/nccl.log"
    [ $nccl_rc -eq 0 ] || grep -m40 -B3 -A12 "FAILED\|failed" "$logs/nccl.log"
  else
    echo "no arcnet_nccl_test binary"
  fi
  [ $nccl_rc -eq 0 ] || status=1
fi

if wants memcheck; then
  step "compute-sanitizer memcheck on the op tests (caching off, so a use after free is seen)"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  ARCNET_CUDA_CACHE=0 "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 \
    "$build/tests/cuda/arcnet_cuda_tests" "~[model]" >"$logs/memcheck.log" 2>&1
  memcheck_rc=$?
  tail -3 "$logs/memcheck.log"
  [ $memcheck_rc -eq 0 ] || status=1
fi

if wants racecheck; then  # issue 7: shared-memory races in the kernels that use __shared__
  step "compute-sanitizer racecheck on the op tests"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  "$sanitizer" --tool racecheck --error-exitcode 3 "$build/tests/cuda/arcnet_cuda_tests" "~[model]" \
    >"$logs/racecheck.log" 2>&1
  racecheck_rc=$?
  tail -3 "$logs/racecheck.log"
  [ $racecheck_rc -eq 0 ] || status=1
fi

# The issue's points: training in bf16 at 448x448 batch 128 and 32 and at 224x224 batch 256,
# inference at 448x448 batch 128 (the first point's infer_img_s), and 448x448 batch 128 in tf32
# and fp32. Each arcnet point runs on both convolution backends (cudnn, when the build has it,
# and gemm), PyTorch eager beside them; then PyTorch with torch.compile at the first point (its
# compilation bounded by COMPILE_TIMEOUT seconds). ARCNET_GPU_CONFIGS="SIZE:BATCH:PRECISION ..."
# sets the points; SIZE BATCH on the command line run that one point in bf16.
configs=${ARCNET_GPU_CONFIGS:-"448:128:bf16 448:32:bf16 224:256:bf16 448:128:tf32 448:128:fp32"}
[ $# -ge 3 ] && configs="$2:$3:bf16"
field() {  # the number after NAME= in a result line, "-" when the run printed none
  v=$(echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p" | head -1)
  echo "${v:--}"
}
rows=""
if wants bench; then
  step "benchmarks: ResNet-50 + ArcFace, $iters iterations each: $configs"
  for c in $configs; do
    IFS=: read -r sz bs p <<<"$c"
    t=$("$python" "$root/benchmarks/models/resnet_arcface_torch.py" "$sz" "$bs" "$iters" cuda "$p" 2>>"$logs/bench.log")
    echo "$t" >>"$logs/bench.log"
    for b in cudnn gemm; do  # a build without cuDNN refuses 'cudnn' at once: its row shows '-'
      a=$("$build/benchmarks/arcnet_bench_resnet_arcface_cuda" "$sz" "$bs" "$iters" "$p" "$b" 2>>"$logs/bench.log")
      echo "$a" >>"$logs/bench.log"
      rows="$rows${sz}x$bs $p $b $(field "$a" infer_img_s) $(field "$t" infer_img_s) $(field "$a" train_img_s) \
$(field "$t" train_img_s) $(field "$a" peak_in_use_mb) $(field "$t" peak_in_use_mb)
"
    done
  done
fi
first=${configs%% *}
tc=""
if wants compile; then
  IFS=: read -r sz bs p <<<"$first"
  step "PyTorch + torch.compile at $first (at most ${COMPILE_TIMEOUT:-300} s)"
  tc=$(timeout "${COMPILE_TIMEOUT:-300}" "$python" "$root/benchmarks/models/resnet_arcface_torch.py" "$sz" "$bs" \
    "$iters" cuda "$p" compile 2>>"$logs/bench_compile.log")
  echo "$tc" >>"$logs/bench.log"
fi

echo
verdict() { case $1 in -) echo "not run" ;; 0) echo passed ;; 77) echo "skipped (no GPU)" ;; *) echo "FAILED ($1)" ;; esac; }
echo "tests: $(verdict $tests_rc)   ResNet-50 parity: $(verdict $parity_rc)   arcnet-train --device cuda:" \
  "$(verdict $train_rc)   NCCL: $(verdict $nccl_rc)   memcheck: $(verdict $memcheck_rc)   racecheck:" \
  "$(verdict $racecheck_rc)"
[ -f "$logs/parity.log" ] && grep "resnet50 parity" "$logs/parity.log"
wants compile && echo "torch.compile at $first: train_img_s=$(field "$tc" train_img_s)" \
  "infer_img_s=$(field "$tc" infer_img_s) peak_in_use_mb=$(field "$tc" peak_in_use_mb)"
if wants bench; then
  # 'limit': arcnet's training img/s as a fraction of what 800 TFLOP/s allows at ~99 GFLOP per
  # image per step at 448x448 (scaled by the pixel count for other sizes).
  printf "%-8s %-5s %-6s %10s %10s %6s %10s %10s %6s %6s %9s %9s\n" input prec conv "arcnet inf" "torch inf" ratio \
    "arcnet trn" "torch trn" ratio limit "arcnet MB" "torch MB"
  printf "%s" "$rows" | awk '{ ri = ($4 + 0 > 0 && $5 + 0 > 0) ? $4 / $5 : 0; rt = ($6 + 0 > 0 && $7 + 0 > 0) ? $6 / $7 : 0
    split($1, d, "x"); lim = $6 * 99e9 * (d[1] / 448) ^ 2 / 800e12
    printf "%-8s %-5s %-6s %10s %10s %6.2f %10s %10s %6.2f %6.3f %9s %9s\n", $1, $2, $3, $4, $5, ri, $6, $7, rt, lim, $8, $9 }'
fi
exit $status
