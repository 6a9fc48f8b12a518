#!/usr/bin/env bash
# Builds and runs prefopt's test suite.
# Usage: scripts/test.sh [preset]   (default: "default"; also "clang", "sanitize")
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${1:-default}"
cmake --preset "${preset}"
cmake --build --preset "${preset}"
ctest --preset "${preset}"
