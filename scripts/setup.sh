#!/usr/bin/env bash
# One command from a fresh Debian machine to prefopt's main job: installs the dependencies, builds
# the release preset, and runs the main job: the experiment runner on the default comparison
# (examples/arena/configs/default.json), which prints a summary table and writes
# build/release/prefopt-results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target prefopt-arena
echo
echo "== main job: prefopt-arena, every solver on the default game =="
./build/release/examples/arena/prefopt-arena --output build/release/prefopt-results.json
