#!/usr/bin/env bash
# The face demo: trains a CIFAR-style ResNet-14 with a 128-d embedding and ArcFace on 25 people of
# the ORL / AT&T face set (examples/configs/orl-faces.cfg), then, on the 15 people it never saw:
# retrieval (leave-one-out), verification of 1,200 balanced pairs in 10 folds (with and without
# mirror images), and the inversion of one face's embedding back into an image. Works from any
# directory.
#   run_face_demo.sh [FACES_ROOT]   (default: <repo>/../shared/data/orl_faces; any ROOT/<person>/<image> tree)
#   ARCNET_BUILD_DIR  build directory (default: <repo>/build)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
faces="$(cd "${1:-$root/../shared/data/orl_faces}" && pwd)"
cd "$root"
build="${ARCNET_BUILD_DIR:-$root/build}"

scripts/install_deps.sh
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j "$(nproc)" --target arcnet-train arcnet-test arcnet-invert

config="$root/examples/configs/orl-faces.cfg"
work="$build/demo/faces"
rm -rf "$work"  # a fresh run each time (arcnet-train never overwrites another run's checkpoints)
start=$(date +%s)
"$build/examples/arcnet-train" --config "$config" --data.root "$faces" --work-dir "$work"
test=("$build/examples/arcnet-test" --config "$config" --data.root "$faces" --checkpoint "$work/latest.safetensors")
"${test[@]}" --pairs "$work/pairs.txt" --make-pairs 60 --out "$work/metrics.json"
"${test[@]}" --pairs "$work/pairs.txt" --flip --out "$work/metrics_flip.json"
# ORL's s4/1.pgm (the README's picture; s4 is not trained on), or else the first image of the first
# person not trained on (label 25 in sorted folder order).
target="$faces/s4/1.pgm"
if [[ ! -f $target ]]; then
  person=$(find "$faces" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort | sed -n 26p)
  target=$(find "$faces/$person" -type f | LC_ALL=C sort | head -1)
fi
"$build/examples/arcnet-invert" --config "$config" --checkpoint "$work/latest.safetensors" --target "$target" \
  --grey --steps 400 --bn-weight 0.5 --tv-weight 0.1 --out "$work/inverted.png" --strip "$work/inversion.png"
end=$(date +%s)
echo "face demo: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s on $(nproc) cores; results in $work"
