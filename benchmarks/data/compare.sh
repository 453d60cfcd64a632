#!/bin/sh
# The training input pipeline (decode a 600x800 JPEG, resize 512x512, random crop 448, flip,
# normalise to float) in arcnet beside Pillow + numpy: same JPEG, same machine, same run.
# Rates per wall-clock second and per CPU second (each worker's own CPU time: what one core gives
# on a machine nobody else uses, and much steadier than wall time on a shared one). The two
# alternate for ROUNDS rounds; the best rate of each is kept.
# Usage: benchmarks/data/compare.sh BUILD_DIR [SECONDS] [WORKERS] [ROUNDS]
# PILLOW_BLOCKS_MAX=N lets Pillow cache N freed image blocks (default 0, as torchvision runs it).
set -eu
build=${1:-build} secs=${2:-3} workers=${3:-$(nproc)} rounds=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
python=${ARCNET_PIL_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
"$python" "$here/pipeline_pillow.py" --make "$tmp/bench.jpg"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg);" \
     "$(date -u +%F); best of $rounds rounds of ${secs} s; Pillow blocks_max ${PILLOW_BLOCKS_MAX:-0}"
field() { echo "$1" | sed -n "s/.*$2=$3 .*$4=\([0-9.]*\).*/\1/p"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'; }
a1="" an="" p1="" pn="" c_a1="" c_an="" c_p1="" c_pn=""
i=0
while [ "$i" -lt "$rounds" ]; do
  a=$("$build/benchmarks/arcnet_bench_pipeline" --jpeg "$tmp/bench.jpg" --seconds "$secs" --threads "$workers")
  p=$("$python" "$here/pipeline_pillow.py" --jpeg "$tmp/bench.jpg" --seconds "$secs" --processes "$workers" \
       --blocks-max "${PILLOW_BLOCKS_MAX:-0}")
  echo "round $((i + 1)): arcnet $(echo "$a" | grep '^stages')"
  echo "round $((i + 1)): Pillow $(echo "$p" | grep '^stages')"
  a1=$(max "$a1" "$(field "$a" threads 1 img_s)") c_a1=$(max "$c_a1" "$(field "$a" threads 1 img_per_cpu_s)")
  p1=$(max "$p1" "$(field "$p" processes 1 img_s)") c_p1=$(max "$c_p1" "$(field "$p" processes 1 img_per_cpu_s)")
  if [ "$workers" -gt 1 ]; then
    an=$(max "$an" "$(field "$a" threads "$workers" img_s)")
    c_an=$(max "$c_an" "$(field "$a" threads "$workers" img_per_cpu_s)")
    pn=$(max "$pn" "$(field "$p" processes "$workers" img_s)")
    c_pn=$(max "$c_pn" "$(field "$p" processes "$workers" img_per_cpu_s)")
  else
    an=$a1 pn=$p1 c_an=$c_a1 c_pn=$c_p1
  fi
  i=$((i + 1))
done
awk -v a1="$a1" -v an="$an" -v p1="$p1" -v pn="$pn" -v ca1="$c_a1" -v can="$c_an" -v cp1="$c_p1" -v cpn="$c_pn" \
    -v n="$workers" 'BEGIN {
  printf "%-34s %12s %14s %8s\n", "images per second", "arcnet", "Pillow+numpy", "ratio"
  printf "%-34s %12.1f %14.1f %8.2f\n", "1 worker, per CPU second", ca1, cp1, ca1 / cp1
  printf "%-34s %12.1f %14.1f %8.2f\n", n " workers, per CPU second", can, cpn, can / cpn
  printf "%-34s %12.1f %14.1f %8.2f\n", "1 worker, wall clock", a1, p1, a1 / p1
  printf "%-34s %12.1f %14.1f %8.2f\n", n " workers, wall clock", an, pn, an / pn
}'
