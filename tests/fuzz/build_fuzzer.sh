#!/usr/bin/env bash
# Builds the update decoder's fuzz target with Debian's clang (clang-14 and
# libclang-rt-14-dev: libFuzzer, AddressSanitizer, UndefinedBehaviorSanitizer)
# against the system's Abseil, protobuf and xxHash. Bazel's toolchain is gcc,
# so the //tests/fuzz:update_decoder_fuzzer genrule runs this script.
#
#   build_fuzzer.sh OUT GENDIR SOURCES...
#
# OUT is the binary to write; GENDIR the root of generated files (where
# proto/contrail.pb.h lies); SOURCES the .cc files (headers are found from
# the working directory, the workspace root, and GENDIR).
set -euo pipefail
out=$1
gendir=$2
shift 2
sources=()
for f in "$@"; do
  case "$f" in *.cc) sources+=("$f") ;; esac
done
CXX=${CXX:-clang++-14}
# shellcheck disable=SC2046
exec "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. -I"$gendir" "${sources[@]}" -o "$out" \
  $(pkg-config --libs absl_statusor absl_strings absl_str_format protobuf libxxhash) \
  -lpthread
