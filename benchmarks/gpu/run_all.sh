#!/bin/bash
# The one script for a GPU machine (issues 4, 5, 7, 8): configure and build with nvcc for sm_90,
# run the CUDA test suite (pinned-memory loader tests included) and the ResNet-50 parity check,
# the NCCL test, compute-sanitizer memcheck and racecheck on the CUDA op tests, arcnet-train on
# the GPU, then ResNet-50 + ArcFace training and inference beside PyTorch on the same GPU and
# torch.compile. Logs go to $OUT (or ./gpu-logs); the last thing printed is the table for the
# README, and summary.txt in the logs folder is rewritten after every part, so a run cut short
# still brings back what it measured.
#   benchmarks/gpu/run_all.sh [BUILD_DIR] [SIZE BATCH] [ITERS]
# The CPU test suite is not rerun here (CI runs it); the build is limited to the CUDA targets so
# that the device's minutes go to running. ARCNET_GPU_PREBUILT=1 skips configure and build and
# runs the binaries already in BUILD_DIR (built on a machine without a GPU, where nvcc works too,
# and packed with their libraries by benchmarks/gpu/pack_prebuilt.sh: the GPU machine's image has
# CUDA and PyTorch but not Eigen, Catch2 or Boost, so it cannot build arcnet itself).
#
# A session has 15 minutes of device time, start-up included, and 10 minutes per command: the
# run is meant to be one command. ARCNET_GPU_BUDGET (seconds, default 540; 0 = no limit) bounds
# the whole run: the parts run in the order of ARCNET_GPU_PARTS (default, most needed first:
# "tests nccl parity bench1 memcheck racecheck train bench compile"; bench1 is the first
# benchmark point, bench the others), each under `timeout` with its own cap and at most what is
# left; a part that gets under 15 s is reported as not run.
set -u
build=${1:-build-gpu} iters=${4:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=${OUT:-$root/gpu-logs}
mkdir -p "$logs"
python=${PYTHON:-python3}
parts=${ARCNET_GPU_PARTS:-tests nccl parity bench1 memcheck racecheck train bench compile}
budget=${ARCNET_GPU_BUDGET:-540}
status=0
step() { echo "== $(date -u +%T) (${SECONDS}s) $*"; }
declare -A rc
for p in tests nccl parity memcheck racecheck train; do rc[$p]=-; done

# Seconds part may use: min(CAP, what is left of the budget - 5 s for the summary).
allowance() {
  if [ "$budget" -le 0 ]; then echo "$1"; return; fi
  local left=$((budget - SECONDS - 5))
  echo $((left < $1 ? left : $1))
}
# bounded CAP LOG COMMAND...: runs COMMAND under its allowance, output to LOG; returns its status
# (124 when it ran out of time, 125 when no time was left to start it).
bounded() {
  local cap=$1 log=$2
  shift 2
  local t
  t=$(allowance "$cap")
  if [ "$t" -lt 15 ]; then
    echo "not started: ${t}s left of the ${budget}s budget" | tee "$log"
    return 125
  fi
  timeout --kill-after=5 "$t" "$@" >"$log" 2>&1
  local r=$?
  [ $r -eq 124 ] || [ $r -eq 137 ] && { echo "stopped after ${t}s (time limit)" >>"$log"; r=124; }
  return $r
}
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
  missing=$(ldd "$build/tests/cuda/arcnet_cuda_tests" "$build/examples/arcnet-train" 2>&1 |
    grep "not found\|version .GLIBC" | sort -u)
  [ -z "$missing" ] || echo "missing libraries: $missing"
  ldd --version | head -1
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


part_tests() {
  step "CUDA tests"
  bounded 180 "$logs/tests.log" "$build/tests/cuda/arcnet_cuda_tests" --durations yes
  rc[tests]=$?
  tail -4 "$logs/tests.log"
  [ "${rc[tests]}" -eq 0 ] || grep -m40 -B3 -A12 "FAILED\|failed" "$logs/tests.log"
}

part_parity() {  # issue 4: ResNet-50 + ArcFace, one batch, against the CPU (a hidden test case)
  step "ResNet-50 + ArcFace parity with the CPU (fp32: 1e-4, bf16: 2e-2)"
  bounded 120 "$logs/parity.log" "$build/tests/cuda/arcnet_cuda_tests" "[resnet50]"
  rc[parity]=$?
  grep "resnet50 parity" "$logs/parity.log"
  tail -3 "$logs/parity.log"
  [ "${rc[parity]}" -eq 0 ] || grep -m20 -B3 -A12 "FAILED" "$logs/parity.log"
}

part_train() {
  step "arcnet-train --device cuda (tests/programs/cuda_train.sh: against the CPU run, resume, bf16)"
  bounded 150 "$logs/train.log" bash "$root/tests/programs/cuda_train.sh" train "$build/examples" \
    "$build/tests/arcnet_make_inshop" "$build/programs_cuda_train" "$root/tests/programs/tiny_inshop.cfg"
  rc[train]=$?
  tail -3 "$logs/train.log"
}

part_nccl() {  # issue 8: the NCCL path with one rank
  step "NCCL: nccl_communicator + gradient_reducer<cuda>, 1 rank"
  if [ ! -x "$build/tests/arcnet_nccl_test" ]; then
    echo "no arcnet_nccl_test binary"
    rc[nccl]=1
    return
  fi
  # Without mpirun (the GPU image has none) the program is one rank on its own: no MPI, the
  # NCCL unique id made locally, the same NCCL calls.
  local launch=()
  command -v mpirun >/dev/null && launch=(mpirun --allow-run-as-root -np 1)
  [ ${#launch[@]} -gt 0 ] || echo "no mpirun on this machine: one rank without a launcher"
  bounded 90 "$logs/nccl.log" "${launch[@]}" "$build/tests/arcnet_nccl_test"
  rc[nccl]=$?
  head -1 "$logs/nccl.log"
  tail -3 "$logs/nccl.log"
  [ "${rc[nccl]}" -eq 0 ] || grep -m40 -B3 -A12 "FAILED\|failed" "$logs/nccl.log"
}

sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
part_memcheck() {  # issues 4 and 7
  step "compute-sanitizer memcheck on the op tests (caching off, so a use after free is seen)"
  bounded 180 "$logs/memcheck.log" env ARCNET_CUDA_CACHE=0 "$sanitizer" --tool memcheck --leak-check full \
    --error-exitcode 3 "$build/tests/cuda/arcnet_cuda_tests" "~[model]"
  rc[memcheck]=$?
  tail -3 "$logs/memcheck.log"
}

part_racecheck() {  # issue 7: shared-memory races in the kernels that use __shared__
  step "compute-sanitizer racecheck on the op tests"
  bounded 150 "$logs/racecheck.log" "$sanitizer" --tool racecheck --error-exitcode 3 \
    "$build/tests/cuda/arcnet_cuda_tests" "~[model]"
  rc[racecheck]=$?
  tail -3 "$logs/racecheck.log"
}

# The issue's points: training in bf16 at 448x448 batch 128 and 32 and at 224x224 batch 256,
# inference at 448x448 batch 128 (the first point's infer_img_s), and 448x448 batch 128 in tf32
# and fp32. Each arcnet point runs on both convolution backends (cudnn, when the build has it,
# and gemm), PyTorch eager beside them; then PyTorch with torch.compile at the first point (its
# compilation bounded by COMPILE_TIMEOUT seconds and the budget). ARCNET_GPU_CONFIGS="SIZE:BATCH:PRECISION
# ..." sets the points; SIZE BATCH on the command line run that one point in bf16.
configs=${ARCNET_GPU_CONFIGS:-"448:128:bf16 448:32:bf16 224:256:bf16 448:128:tf32 448:128:fp32"}
[ $# -ge 3 ] && configs="$2:$3:bf16"
first=${configs%% *}
field() {  # the number after NAME= in a result line, "-" when the run printed none
  local v
  v=$(echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p" | head -1)
  echo "${v:--}"
}
rows="" tc="" done_configs=" "
bench_config() {  # one point: PyTorch eager, then arcnet on each convolution backend
  local c=$1 sz bs p t a b n act variants
  IFS=: read -r sz bs p <<<"$c"
  n=$(echo "$c" | tr ':' '_')
  done_configs="$done_configs$c "
  bounded 90 "$logs/bench_torch_$n.log" "$python" "$root/benchmarks/models/resnet_arcface_torch.py" "$sz" "$bs" \
    "$iters" cuda "$p"
  t=$(grep "^pytorch " "$logs/bench_torch_$n.log")
  [ -n "$t" ] && echo "$t"
  # a build without cuDNN refuses 'cudnn' at once: its row shows '-'. At the first bf16 point,
  # also bf16 operands on fp32 activations (ARCNET_BF16_ACTIVATIONS=0), to measure the storage.
  variants="cudnn gemm"
  [ "$p" = bf16 ] && [ "$c" = "$first" ] && variants="$variants cudnn:fp32act"
  for b in $variants; do
    act=1
    [ "${b#*:}" = fp32act ] && act=0
    bounded 90 "$logs/bench_arcnet_${n}_${b%%:*}_$act.log" env ARCNET_BF16_ACTIVATIONS=$act \
      "$build/benchmarks/arcnet_bench_resnet_arcface_cuda" "$sz" "$bs" "$iters" "$p" "${b%%:*}"
    a=$(grep "train_img_s=\|infer_img_s=" "$logs/bench_arcnet_${n}_${b%%:*}_$act.log" | tail -1)
    [ -n "$a" ] && echo "$a"
    act=$(echo "$a" | sed -n 's/.*activations=\([a-z0-9]*\).*/\1/p')
    rows="$rows${sz}x$bs $p ${act:--} ${b%%:*} $(field "$a" infer_img_s) $(field "$t" infer_img_s) \
$(field "$a" train_img_s) $(field "$t" train_img_s) $(field "$a" peak_in_use_mb) $(field "$t" peak_in_use_mb)
"
  done
  summary
}
part_bench1() {
  step "benchmark: ResNet-50 + ArcFace at $first, $iters iterations"
  bench_config "$first"
}
part_bench() {  # the points bench1 did not run
  step "benchmarks: ResNet-50 + ArcFace, $iters iterations each: $configs"
  local c
  for c in $configs; do
    [[ $done_configs == *" $c "* ]] && continue
    if [ "$(allowance 90)" -lt 15 ]; then
      echo "no time left for $c and the points after it"
      break
    fi
    bench_config "$c"
  done
}

part_compile() {
  local sz bs p
  IFS=: read -r sz bs p <<<"$first"
  step "PyTorch + torch.compile at $first"
  bounded "${COMPILE_TIMEOUT:-300}" "$logs/bench_compile.log" "$python" "$root/benchmarks/models/resnet_arcface_torch.py" \
    "$sz" "$bs" "$iters" cuda "$p" compile
  tc=$(grep "^pytorch " "$logs/bench_compile.log")
  [ -n "$tc" ] || tail -3 "$logs/bench_compile.log"
}

verdict() {
  case $1 in
    -) echo "not run" ;; 0) echo passed ;; 77) echo "skipped (no GPU)" ;; 124) echo "TIMED OUT" ;;
    125) echo "not run (no time left)" ;; *) echo "FAILED ($1)" ;;
  esac
}
summary() {  # the table for the README, rewritten in summary.txt after every part
  {
    echo "tests: $(verdict "${rc[tests]}")   ResNet-50 parity: $(verdict "${rc[parity]}")   NCCL: $(verdict "${rc[nccl]}")" \
      "  memcheck: $(verdict "${rc[memcheck]}")   racecheck: $(verdict "${rc[racecheck]}")   arcnet-train --device cuda:" \
      "$(verdict "${rc[train]}")"
    [ -f "$logs/parity.log" ] && grep "resnet50 parity" "$logs/parity.log"
    [ -n "$tc" ] && echo "torch.compile at $first: train_img_s=$(field "$tc" train_img_s)" \
      "infer_img_s=$(field "$tc" infer_img_s) peak_in_use_mb=$(field "$tc" peak_in_use_mb)"
    if [ -n "$rows" ]; then
      # 'limit': arcnet's training img/s as a fraction of what 800 TFLOP/s allows at ~99 GFLOP per
      # image per step at 448x448 (scaled by the pixel count for other sizes).
      printf "%-8s %-5s %-4s %-6s %10s %10s %6s %10s %10s %6s %6s %9s %9s\n" input prec act conv "arcnet inf" \
        "torch inf" ratio "arcnet trn" "torch trn" ratio limit "arcnet MB" "torch MB"
      printf "%s" "$rows" | awk '{ ri = ($5 + 0 > 0 && $6 + 0 > 0) ? $5 / $6 : 0; rt = ($7 + 0 > 0 && $8 + 0 > 0) ? $7 / $8 : 0
        split($1, d, "x"); lim = $7 * 99e9 * (d[1] / 448) ^ 2 / 800e12
        printf "%-8s %-5s %-4s %-6s %10s %10s %6.2f %10s %10s %6.2f %6.3f %9s %9s\n", $1, $2, $3, $4, $5, $6, ri, $7, $8, rt,
          lim, $9, $10 }'
    fi
  } >"$logs/summary.txt"
}

for p in $parts; do
  if ! declare -F "part_$p" >/dev/null; then
    echo "unknown part '$p' (tests nccl parity bench1 memcheck racecheck train bench compile)"
    status=1
    continue
  fi
  "part_$p"
  summary
done
for p in "${!rc[@]}"; do
  case ${rc[$p]} in -|0|77) ;; *) status=1 ;; esac
done
echo
cat "$logs/summary.txt"
exit $status
