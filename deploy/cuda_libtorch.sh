#!/usr/bin/env bash
# Makes a Bazel repository that stands in for Debian's CPU-only LibTorch with
# a CUDA-enabled one, so that `--device=cuda` trains on a GPU:
#
#   deploy/cuda_libtorch.sh TORCH_DIR OUT_DIR
#   bazel build --override_repository=libtorch=OUT_DIR //trainer:trainer
#
# TORCH_DIR holds include/ and lib/ of a CUDA LibTorch: an unpacked
# libtorch-cxx11-abi-*-cu*.zip, or the torch/ folder of a CUDA PyTorch wheel
# (python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))').
# Its headers come before Debian's in the include path and its libraries
# are linked with an rpath, so the binaries find them at run time.
set -euo pipefail
if [ "$#" -ne 2 ]; then
  echo "usage: $0 TORCH_DIR OUT_DIR" >&2
  exit 2
fi
torch_dir=$(cd "$1" && pwd)
out=$2
for needed in include/torch/csrc/api/include lib/libtorch_cuda.so lib/libc10_cuda.so; do
  if [ ! -e "$torch_dir/$needed" ]; then
    echo "$0: $torch_dir/$needed is missing: not a CUDA LibTorch" >&2
    exit 1
  fi
done
mkdir -p "$out"
ln -sfn "$torch_dir/include" "$out/include"
: > "$out/WORKSPACE"
cat > "$out/BUILD" <<BUILD
# A CUDA LibTorch at $torch_dir (written by deploy/cuda_libtorch.sh).
cc_library(
    name = "libtorch",
    hdrs = glob(["include/**/*.h"]),
    includes = ["include", "include/torch/csrc/api/include"],
    linkopts = [
        "-L$torch_dir/lib",
        "-Wl,-rpath,$torch_dir/lib",
        "-Wl,--no-as-needed",
        "-ltorch_cuda",
        "-lc10_cuda",
        "-Wl,--as-needed",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10",
    ],
    visibility = ["//visibility:public"],
)
BUILD
echo "wrote $out; build with: bazel build --override_repository=libtorch=$out //trainer:trainer"
