#!/usr/bin/env bash
# Data-parallel scaling on this machine, arcnet beside PyTorch DDP (gloo) in one run:
# ResNet-50 + ArcFace (3997 classes) training steps on random SIZE x SIZE images, the same global
# batch as 1 process x all cores and as N ranks x (cores / N) threads.
#   benchmarks/distributed/compare.sh BUILD_DIR [SIZE] [GLOBAL_BATCH] [RANKS] [STEPS]
set -euo pipefail
build=$1 size=${2:-112} batch=${3:-8} ranks=${4:-2} steps=${5:-5}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$build/benchmarks/arcnet_bench_data_parallel"
cores=$(nproc)
per=$((cores / ranks > 0 ? cores / ranks : 1))
mpirun=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $cores cores; $(mpirun --version | head -1)"
echo "ResNet-50 + ArcFace (3997 classes), ${size}x${size}, global batch $batch, median of $steps steps"
run() { echo "$1 $("${@:2}" | tail -1)"; }
{
  run arcnet env OMP_NUM_THREADS="$cores" "$bench" "$size" "$batch" "$steps"
  run arcnet "${mpirun[@]}" -np "$ranks" -x OMP_NUM_THREADS="$per" "$bench" "$size" "$batch" "$steps"
  run pytorch /usr/bin/python3 "$here/data_parallel_torch.py" "$size" "$batch" 1 "$cores" "$steps"
  run pytorch /usr/bin/python3 "$here/data_parallel_torch.py" "$size" "$batch" "$ranks" "$per" "$steps"
} | tee /dev/stderr | awk '
  { for (i = 2; i < NF; i += 2) v[$i] = $(i + 1); key = $1 " " v["ranks"]; ips[key] = v["img_s"]; ms[key] = v["step_ms"];
    wait[key] = v["allreduce_wait_ms"]; mb[key] = v["allreduce_mb"]; th[key] = v["threads"]; order[n++] = key }
  END {
    printf "\n%-8s %5s %7s %8s %9s %13s %11s\n", "", "ranks", "threads", "img/s", "ms/step", "wait after bw", "MB reduced"
    for (i = 0; i < n; ++i) { k = order[i]; split(k, p, " ");
      printf "%-8s %5s %7s %8.2f %9.0f %13s %11s\n", p[1], p[2], th[k], ips[k], ms[k], wait[k], mb[k] }
    r = "'"$ranks"'"
    printf "\nscaling %s ranks / 1 process:  arcnet %.2f   pytorch %.2f\n", r, ips["arcnet " r] / ips["arcnet 1"], ips["pytorch " r] / ips["pytorch 1"]
    printf "arcnet / pytorch img/s:        1 process %.2f   %s ranks %.2f\n", ips["arcnet 1"] / ips["pytorch 1"], r, ips["arcnet " r] / ips["pytorch " r]
  }'
