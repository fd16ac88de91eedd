// Reads labelled image sets stored in the IDX format of MNIST and
// Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), gzipped or plain, into
// memory as floats the training data pipeline can batch without LibTorch.
//
// An IDX file is a big-endian header -- magic 0x0000TTNN (TT: element type,
// 0x08 = unsigned byte; NN: number of dimensions), then one uint32 size per
// dimension -- followed by the elements, row-major. Every malformed input is
// answered with a Status naming the file and the problem: NOT_FOUND (or the
// errno's code) when a file cannot be opened, DATA_LOSS for corrupt or
// truncated gzip streams and short payloads, INVALID_ARGUMENT for a wrong
// magic, an absurd declared size, images and labels that disagree on the
// example count, and bytes after the declared payload.
//
// The functions below are thread-safe: they share no state between calls.
#ifndef CONTRAIL_COMMON_IDX_READER_H_
#define CONTRAIL_COMMON_IDX_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace contrail {

// A set of labelled images; pixels scaled to [0, 1], row-major,
// example-major.
struct LabelledImages {
  int64_t count = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> pixels;    // count * rows * cols
  std::vector<int32_t> labels;  // count, each in [0, 255] as stored
  int64_t example_size() const { return rows * cols; }
};

// Reads an images file (magic 0x00000803: unsigned bytes, 3 dimensions
// count x rows x cols) and a labels file (magic 0x00000801: unsigned bytes,
// 1 dimension count). Pixels are divided by 255. Both headers are checked
// before either payload is decompressed, so a count mismatch fails fast.
// Declared payloads over 2^31 bytes are rejected as INVALID_ARGUMENT.
absl::StatusOr<LabelledImages> ReadIdxPair(const std::string& images_path,
                                           const std::string& labels_path);

// Reads "<dir>/train-images-idx3-ubyte.gz" and
// "<dir>/train-labels-idx1-ubyte.gz" when `train` is true, otherwise the
// "t10k-" pair, the file names of the Fashion-MNIST distribution (Debian
// installs it under /usr/share/datasets/fashion-mnist).
absl::StatusOr<LabelledImages> ReadFashionMnist(const std::string& dir,
                                                bool train);

// Where Debian's dataset-fashion-mnist installs the data: the default of
// every --data_dir.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

}  // namespace contrail

#endif  // CONTRAIL_COMMON_IDX_READER_H_
