#!/usr/bin/env bash
# The convergence suite: runs prefopt-arena on every config of benchmarks/solvers/configs/ and
# regenerates the figures of benchmarks/solvers/figures/ (shown in the README); with no CONFIG
# arguments it also runs the shipped sequence-task configs (examples/arena/configs/sequence_*.json:
# every trainer on the shipped transformer, results named after the task) and
# examples/03_token_length_bias (the token-level length experiment).
# Usage: benchmarks/solvers/run_suite.sh [BUILD_DIR] [CONFIG ...]
#   BUILD_DIR defaults to build/release (configure and build it with `cmake --preset release`).
#   Results JSON files go to BUILD_DIR/suite/; pass config files to run only those.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
build="${1:-${root}/build/release}"
shift || true
arena="${build}/examples/arena/prefopt-arena"
if [[ ! -x "${arena}" ]]; then
  echo "run_suite.sh: ${arena} not found; build it first: cmake --preset release && cmake --build --preset release" >&2
  exit 1
fi
configs=("$@")
if [[ ${#configs[@]} -eq 0 ]]; then
  configs=("${here}"/configs/*.json "${root}"/examples/arena/configs/sequence_*.json)
fi
out="${build}/suite"
mkdir -p "${out}"
results=()
for config in "${configs[@]}"; do
  config="$(cd "$(dirname "${config}")" && pwd)/$(basename "${config}")"
  name="$(basename "${config}" .json)"
  if [[ "${name}" == sequence_* ]]; then
    name="${name#sequence_}"
    [[ "${name}" == default ]] && name=quality
  fi
  echo "== ${name}"
  # From the results folder: sequence tasks cache their reference in .prefopt-cache there.
  (cd "${out}" && "${arena}" --quiet --threads "$(nproc)" "${config}" --output "${out}/${name}.json")
  results+=("${out}/${name}.json")
done
if [[ $# -eq 0 ]]; then
  # The token-level length experiment (DPO vs length-averaged DPO at matched KL).
  echo "== token_level"
  "${build}/examples/03_token_length_bias" --output "${out}/token_level.json"
  results+=("${out}/token_level.json")
fi
/usr/bin/python3 "${root}/benchmarks/plot_results.py" "${results[@]}" --out "${here}/figures"
