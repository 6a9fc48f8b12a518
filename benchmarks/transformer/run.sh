#!/usr/bin/env bash
# Runs the transformer benchmark and its PyTorch counterpart at 1 and 2 threads, and prints the
# JSON lines side by side. Needs the `openmp` preset built (`cmake --preset openmp && cmake
# --build --preset openmp --target prefopt_bench_transformer`) for the 2-thread figures, and
# Debian's python3-torch (scripts/install-deps.sh --python).
# Usage: benchmarks/transformer/run.sh [build dir]   (default build/openmp; --tiny via PREFOPT_BENCH_TINY=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build/openmp}"
bench="${build}/benchmarks/transformer/prefopt_bench_transformer"
[[ -x "${bench}" ]] || { echo "run.sh: ${bench} is not built" >&2; exit 1; }
tiny=()
[[ -n "${PREFOPT_BENCH_TINY:-}" ]] && tiny=(--tiny)
for threads in 1 2; do
  echo "== prefopt, ${threads} thread(s)"
  OMP_NUM_THREADS=${threads} "${bench}" "${threads}"
  echo "== PyTorch eager, ${threads} thread(s)"
  /usr/bin/python3 benchmarks/transformer/bench_torch_transformer.py --threads "${threads}" "${tiny[@]}"
done
