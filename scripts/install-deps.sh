#!/usr/bin/env bash
# Installs everything prefopt needs from Debian packages (Debian 12 "bookworm" or later).
# Usage: scripts/install-deps.sh [--ci]   (--ci adds clang++ 14, used by .ci/run)
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
if [[ "${1:-}" == "--ci" ]]; then
  packages+=(clang-14 clang libomp-dev)
fi

run_as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update -qq
run_as_root apt-get install -y -qq --no-install-recommends "${packages[@]}"
