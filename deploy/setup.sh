#!/usr/bin/env bash
# Installs everything contrail needs to build, test and run, from Debian's
# package archive only. Idempotent: a second run installs nothing new.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java
  g++ libtorch-dev
  clang-14 libclang-rt-14-dev pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libspdlog-dev libfmt-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
  python3 python3-torch python3-numpy python3-grpcio python3-protobuf python3-yaml gnuplot-nox gzip
  nats-server libnats-dev
  openssl prometheus prometheus-cpp-dev libcpp-httplib-dev chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
