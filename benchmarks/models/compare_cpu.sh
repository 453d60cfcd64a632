#!/bin/sh
# ResNet-50 + ArcFace on the CPU, arcnet beside Debian's PyTorch 1.13, same machine, same run.
# The two alternate, ROUNDS times per configuration, so that a busy spell of a shared machine
# hits both; the table gives each side's median and the ratio of the medians, and the lowest
# and highest ratio of a single round.
# Usage: benchmarks/models/compare_cpu.sh BUILD_DIR [ITERS] [ROUNDS]
set -eu
build=${1:-build} iters=${2:-3} rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
export OMP_NUM_THREADS=$threads
field() { echo "$1" | sed "s/.*$2=\([0-9.]*\).*/\1/"; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $threads threads; $(date -u +%F); $iters iterations, $rounds rounds"
printf "%-8s %-5s %10s %10s %10s %10s %12s %12s\n" size batch "arcnet inf" "torch inf" "arcnet trn" "torch trn" \
  "inf x (min-max)" "train x (min-max)"
for cfg in "224 8" "448 2"; do
  set -- $cfg
  rows=""
  r=0
  while [ "$r" -lt "$rounds" ]; do
    a=$("$build/benchmarks/arcnet_bench_resnet_arcface" "$1" "$2" "$iters")
    t=$(/usr/bin/python3 "$here/resnet_arcface_torch.py" "$1" "$2" "$iters")
    rows="$rows$(field "$a" infer_img_s) $(field "$t" infer_img_s) $(field "$a" train_img_s) $(field "$t" train_img_s)
"
    r=$((r + 1))
  done
  printf "%s" "$rows" | awk -v size="${1}x$1" -v batch="$2" '
    function median(v, n,   i, j, t) {  # v[1..n], sorted in place
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    { n++; ai[n] = $1; ti[n] = $2; at[n] = $3; tt[n] = $4
      ri = $1 / $2; rt = $3 / $4
      if (n == 1 || ri < rimin) rimin = ri; if (n == 1 || ri > rimax) rimax = ri
      if (n == 1 || rt < rtmin) rtmin = rt; if (n == 1 || rt > rtmax) rtmax = rt }
    END {
      mai = median(ai, n); mti = median(ti, n); mat = median(at, n); mtt = median(tt, n)
      printf "%-8s %-5s %10.3f %10.3f %10.3f %10.3f %4.2f (%.2f-%.2f) %4.2f (%.2f-%.2f)\n", size, batch,
             mai, mti, mat, mtt, mai / mti, rimin, rimax, mat / mtt, rtmin, rtmax
    }'
done
