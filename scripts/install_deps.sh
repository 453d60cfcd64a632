#!/usr/bin/env bash
# Installs the Debian packages arcnet needs to build, test and run its demo, if any is missing.
# Idempotent and silent when everything is present. Uses sudo when not run as root.
set -euo pipefail

packages=(
  cmake g++ make                  # build
  libeigen3-dev                   # CPU kernels
  catch2                          # tests
  nlohmann-json3-dev              # arcnet::io (safetensors headers, checkpoints)
  libboost-program-options-dev    # arcnet::engine (command-line options)
  libturbojpeg0-dev libpng-dev zlib1g-dev  # arcnet::data (JPEG, PNG, gzip IDX files)
  pkg-config libcairo2-dev         # arcnet::viz (plots, image grids as PNG / SVG)
  dataset-fashion-mnist           # /usr/share/datasets/fashion-mnist: the IDX test, the coming ArcFace demo
  python3-pil python3-numpy       # tests/fixtures/compare_pillow.py, benchmarks/data/pipeline_pillow.py
  python3-torch python3-torchvision  # the reference that tests/fixtures/*.py are generated with
  libopenmpi-dev openmpi-bin      # arcnet::mpi: training on several processes (mpirun), its tests
  clang-14 libclang-rt-14-dev     # scripts/fuzz.sh: libFuzzer targets of the file parsers (CI runs them)
)

missing=()
for p in "${packages[@]}"; do
  # dpkg -s also succeeds for a removed package whose config files remain: check the status line
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install_deps.sh: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install_deps.sh: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
