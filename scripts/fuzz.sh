#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a while each (docs/fuzzing.md).
#
#   bash scripts/fuzz.sh [--seconds N] [--sanitizer address|none] [--seed N] [target ...]
#
# Default: every target, 10 seconds each, a random seed. The test command's smoke run
# passes a fixed --seed, so CI explores the same inputs on every run (a prefix of them on a
# slower machine) and a failure there reproduces here with the same seed. Seeds the
# corpora from the recorded fixtures in testdata/ and the hand-written seeds in
# fuzz/seeds/. Needs the nightly toolchain and cargo-fuzz; without them it says so and
# exits 0, so the test command still passes on a machine without nightly.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
# AddressSanitizer by default (the long runs); the test command's smoke run passes `none`:
# the crates forbid unsafe code, and the uninstrumented build takes minutes less in CI.
sanitizer=address
# 0 lets libFuzzer pick a random seed (the long runs); any other value fixes the sequence.
seed=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --sanitizer) sanitizer="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain: rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped (cargo-fuzz is not installed: cargo install cargo-fuzz --locked)"
  exit 0
fi

all_targets=(sse_decoder stream_decoders chat_search_query message_content request_bodies persisted_errors)
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all_targets[@]}")
fi

python3 scripts/fuzz_seed.py fuzz/corpus

status=0
mkdir -p fuzz/artifacts
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/artifacts/$t.log"
  # -rss_limit_mb bounds a runaway allocation; -max_len fits the largest recorded stream.
  if cargo +nightly fuzz run --sanitizer "$sanitizer" --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -seed="$seed" -rss_limit_mb=2048 -max_len=262144 \
      -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    echo "fuzz $t: ok, ${runs:-?} runs in ${seconds}s, corpus $corpus inputs"
  else
    echo "fuzz $t: FAILED (log: $log)"
    grep -v '^"' "$log" | tail -n 60
    status=1
  fi
done
exit "$status"
