#!/usr/bin/env bash
# The main job: a trainer and a server on this machine, Fashion-MNIST from
# Debian's dataset-fashion-mnist, sparse proactive training streamed to the
# server, predictions from the server. Sets the machine up first if needed.
#
# Environment overrides: INITIAL_EXAMPLES (10000), INITIAL_EPOCHS (5),
# STREAM_EXAMPLES (20000), TRIGGER_SIZE (8), BATCH_SIZE (128),
# SPARSITY (topk), RATIO (0.001).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
echo "demo: building (the first build compiles LibTorch code and takes a few minutes)"
bazel build //trainer:trainer //server:server //server:contrailctl

BIN=bazel-bin
DATA=/usr/share/datasets/fashion-mnist
WORK=$(mktemp -d /tmp/contrail-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_for_file() {  # path, seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for $1" >&2
  return 1
}

start=$(date +%s)
"$BIN/trainer/trainer" --listen=127.0.0.1:0 --port_file="$WORK/trainer.port" \
  --data_dir="$DATA" \
  --initial_examples="${INITIAL_EXAMPLES:-10000}" --initial_epochs="${INITIAL_EPOCHS:-5}" \
  --stream_examples="${STREAM_EXAMPLES:-20000}" \
  --trigger_size="${TRIGGER_SIZE:-8}" --batch_size="${BATCH_SIZE:-128}" \
  --sparsity="${SPARSITY:-topk}" --ratio="${RATIO:-0.001}" \
  > >(tee "$WORK/trainer.log") 2>&1 &
PIDS+=($!)
wait_for_file "$WORK/trainer.port" 60
TRAINER=127.0.0.1:$(cat "$WORK/trainer.port")

"$BIN/server/server" --listen=127.0.0.1:0 --port_file="$WORK/server.port" \
  --trainer="$TRAINER" --threads=1 > >(tee "$WORK/server.log") 2>&1 &
PIDS+=($!)
wait_for_file "$WORK/server.port" 60
SERVER=127.0.0.1:$(cat "$WORK/server.port")
echo "demo: trainer on $TRAINER, server on $SERVER, logs in $WORK"

echo "demo: waiting for the stream to finish and the server to catch up"
"$BIN/server/contrailctl" compare --trainer="$TRAINER" --server="$SERVER" \
  --wait_s=1800 > "$WORK/compare.txt" || true
"$BIN/server/contrailctl" status --target="$TRAINER" > "$WORK/trainer.status"
"$BIN/server/contrailctl" status --target="$SERVER" > "$WORK/server.status"
"$BIN/server/contrailctl" predict --target="$SERVER" --data_dir="$DATA" \
  --count=10000 > "$WORK/predict.txt"
elapsed=$(( $(date +%s) - start ))

field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }
params=$(field parameters "$WORK/trainer.status")
updates=$(( $(field updates_published "$WORK/trainer.status") - 1 ))
entries=$(field entries_published "$WORK/trainer.status")
payload=$(field payload_bytes_published "$WORK/trainer.status")

echo
echo "================================ contrail demo ================================"
echo "stream: $(field examples_seen "$WORK/trainer.status") examples, t=${TRIGGER_SIZE:-8}, b=${BATCH_SIZE:-128}, ${SPARSITY:-topk} ${RATIO:-0.001}"
echo "cumulative prequential accuracy: trainer $(field prequential_accuracy "$WORK/trainer.status"), served model $(field served_prequential_accuracy "$WORK/trainer.status")"
awk -v u="$updates" -v e="$entries" -v b="$payload" -v p="$params" 'BEGIN {
  if (u < 1) { print "no updates published"; exit }
  printf "updates: %d; per update %.1f parameters of %d (%.3f%%), %.0f bytes vs %d bytes dense (%.0fx fewer)\n",
         u, e / u, p, 100 * e / u / p, b / u, 4 * p, 4 * p / (b / u) }'
echo
cat "$WORK/compare.txt"
echo
echo "test set on the server: $(grep accuracy "$WORK/predict.txt")"
echo "answered by: $(grep versions "$WORK/predict.txt" | cut -d' ' -f2-)"
echo "demo run time: ${elapsed} s"
echo "==============================================================================="
grep -q "^identical" "$WORK/compare.txt"
