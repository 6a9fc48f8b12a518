#!/usr/bin/env bash
# Builds prefopt's libFuzzer harnesses (tests/fuzz/: every parser) with clang in build/fuzz and runs
# each for SECONDS (default 60) from its seeds and committed findings. A crash, a leak, a broken
# property or an input slower than the timeout fails the script; libFuzzer leaves the input in
# build/fuzz/findings/<target>/ (commit it, reduced, under tests/fuzz/regressions/<target>/ with
# the fix, where every build replays it).
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET]        (env: CXX_FUZZ=clang++-14, JOBS=2: builds and
#                                                 harnesses run at a time)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS-PER-TARGET]" >&2
  exit 2
fi
build=build/fuzz
targets=(json game_json jsonl logprob_cache config)

start=$(date +%s)
cmake -S . -B "$build" -G Ninja \
  -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++-14}" -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" \
  -DPREFOPT_BUILD_FUZZERS=ON -DPREFOPT_WARNINGS_AS_ERRORS=ON \
  -DPREFOPT_BUILD_TESTS=OFF -DPREFOPT_BUILD_EXAMPLES=OFF -DPREFOPT_BUILD_BENCHMARKS=OFF \
  -DPREFOPT_INSTALL=OFF >/dev/null
cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]/#/prefopt_fuzz_}"
echo "fuzz: built ${#targets[@]} harnesses in $(($(date +%s) - start))s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# fuzz_one <target>: runs one harness; its log is $build/<target>.log.
fuzz_one() {
  local t=$1 corpus="$build/corpus/$1" findings="$build/findings/$1"
  mkdir -p "$corpus" "$findings"
  cp tests/fuzz/corpus/"$t"/* tests/fuzz/regressions/"$t"/* "$corpus"/
  local dict=()
  [ "$t" != logprob_cache ] && dict=(-dict=tests/fuzz/json.dict)
  "$build/tests/fuzz/prefopt_fuzz_$t" "$corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$build/$t.log" 2>&1
}
# JOBS harnesses at a time (one core each); a failure is reported once its batch is done.
jobs="${JOBS:-2}"
failed=()
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  batch=("${targets[@]:i:jobs}")
  pids=()
  for t in "${batch[@]}"; do
    echo "fuzz: $t for ${seconds}s"
    fuzz_one "$t" &
    pids+=($!)
  done
  for k in "${!batch[@]}"; do
    t=${batch[k]}
    if wait "${pids[k]}"; then
      grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE" "$build/$t.log" | tail -n 2 || true
    else
      tail -n 60 "$build/$t.log" >&2
      echo "fuzz: $t FAILED (input in $build/findings/$t/)" >&2
      failed+=("$t")
    fi
  done
done
((${#failed[@]} == 0)) || exit 1
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding ($(($(date +%s) - start))s in all)"
