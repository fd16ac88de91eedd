#!/usr/bin/env bash
# A short fuzzing run of the update decoder in `bazel test`: replays the
# committed seed corpus, then fuzzes for SECONDS more from it. Fails, with the
# crashing input saved among the test's outputs, when the target crashes, a
# sanitizer reports, or the decoder breaks its contract.
#
#   run_fuzzer_test.sh FUZZER SEED_DIR SECONDS
set -euo pipefail
fuzzer=$1
seeds=$2
seconds=$3
work="${TEST_TMPDIR:-$(mktemp -d)}/corpus"
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-${TEST_TMPDIR:-/tmp}}"
mkdir -p "$work"
cp "$seeds"/* "$work"/
count=$(ls "$work" | wc -l)
echo "fuzzing the update decoder for ${seconds}s from ${count} seeds"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 "$work"
echo "no crash; the corpus grew from ${count} to $(ls "$work" | wc -l) inputs"
