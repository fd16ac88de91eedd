#!/usr/bin/env bash
# Sets the machine up if needed, then builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
bazel test //... "$@"
