// Writes IDX files (the MNIST / Fashion-MNIST format that
// common/idx_reader.h reads) for tests: exact pairs from given bytes, a
// synthetic learnable Fashion-MNIST stand-in, and the raw pieces (encoded
// payloads, gzip and plain files) that corruption tests splice together.
//
// The functions are thread-safe as long as concurrent calls write different
// paths.
#ifndef CONTRAIL_TESTS_TEST_UTIL_IDX_WRITER_H_
#define CONTRAIL_TESTS_TEST_UTIL_IDX_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace contrail::test {

// Writes <dir>/<prefix>-images-idx3-ubyte.gz and
// <dir>/<prefix>-labels-idx1-ubyte.gz, creating `dir` if needed. `pixels`
// holds labels.size() examples of rows x cols bytes, example-major.
absl::Status WriteIdxPair(const std::string& dir, const std::string& prefix,
                          int64_t rows, int64_t cols,
                          const std::vector<uint8_t>& pixels,
                          const std::vector<uint8_t>& labels);

// Writes a synthetic, learnable data set shaped like Fashion-MNIST (28x28
// pixels, 10 classes) under `dir` with the real file names: train-* with
// `train_count` examples and t10k-* with `test_count`. Class c is a bright
// horizontal bar over rows 4 + 2c and 5 + 2c (random start, end and
// brightness) on a dim noisy background: of the ten bands rows
// {4 + 2k, 5 + 2k}, the brightest names the class, and a small model learns
// it within a few hundred SGD steps. Labels cycle through a shuffled order of
// the 10 classes. The same `seed` writes the same bytes.
absl::Status WriteSyntheticFashionMnist(const std::string& dir,
                                        int64_t train_count, int64_t test_count,
                                        uint32_t seed);

// The uncompressed bytes of an images file whose header declares `count`
// examples of rows x cols, followed by `pixels` verbatim (whatever their
// size, so tests can build short or long payloads).
std::string EncodeIdxImages(uint32_t count, uint32_t rows, uint32_t cols,
                            const std::vector<uint8_t>& pixels);

// The uncompressed bytes of a labels file declaring labels.size() labels.
std::string EncodeIdxLabels(const std::vector<uint8_t>& labels);

// Writes `bytes` gzip-compressed to `path`.
absl::Status WriteGzipFile(const std::string& path, absl::string_view bytes);

// Writes `bytes` to `path` as they are.
absl::Status WriteRawFile(const std::string& path, absl::string_view bytes);

// Returns the bytes of the file at `path` as they are.
absl::StatusOr<std::string> ReadRawFile(const std::string& path);

}  // namespace contrail::test

#endif  // CONTRAIL_TESTS_TEST_UTIL_IDX_WRITER_H_
