#!/usr/bin/env bash
# One command from a fresh Debian machine to prefopt's main job: installs the dependencies, builds
# the release preset, and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
echo
echo "== main job =="
./build/release/examples/01_bradley_terry_win_rate
