#!/usr/bin/env bash
# Installs everything prefopt needs from Debian packages (Debian 12 "bookworm" or later).
# Usage: scripts/install-deps.sh [--python] [--ci]
#   --python  adds what the Python module needs (pybind11, NumPy, PyTorch, pytest; python/)
#   --ci      adds clang++ 14 with its sanitizer and libFuzzer runtimes (libclang-rt-14-dev, only
#             recommended by clang), OpenMP and everything of --python (used by .ci/run)
# Runs apt-get directly as root, through sudo otherwise. Non-interactive.
set -euo pipefail

packages=(
  cmake ninja-build g++ make
  libeigen3-dev        # prefopt::prefopt
  libfmt-dev nlohmann-json3-dev  # prefopt::io
  catch2               # tests (v2.13, single header)
  libbenchmark-dev     # kernel and solver benchmarks
  python3 python3-matplotlib  # plots
)
# libopenblas0-pthread: Debian's PyTorch multiplies matrices through libblas.so.3, which is the
# reference BLAS unless an optimised one is installed (20x slower: the comparisons would be unfair).
python_packages=(pybind11-dev python3-pybind11 python3-numpy python3-pytest python3-torch
                 libopenblas0-pthread)
for arg in "$@"; do
  case "${arg}" in
    --python) packages+=("${python_packages[@]}") ;;
    --ci) packages+=(clang-14 clang libclang-rt-14-dev libomp-dev "${python_packages[@]}") ;;
    *) echo "scripts/install-deps.sh: unknown option ${arg} (expected --python or --ci)" >&2; exit 2 ;;
  esac
done

run_as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update -qq
run_as_root apt-get install -y -qq --no-install-recommends "${packages[@]}"
