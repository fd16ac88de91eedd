#include "tests/test_util/idx_writer.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace contrail::test {
namespace {

constexpr int64_t kSyntheticSide = 28;
constexpr int kSyntheticClasses = 10;

void AppendBigEndian32(uint32_t value, std::string& out) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>(value >> 16));
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

bool FitsUint32(int64_t value) {
  return value >= 0 && value <= std::numeric_limits<uint32_t>::max();
}

absl::Status CreateDirectories(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::UnknownError(
        absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  return absl::OkStatus();
}

// Examples of one synthetic split; see WriteSyntheticFashionMnist.
void GenerateSynthetic(int64_t count, std::mt19937& rng,
                       std::vector<uint8_t>& pixels,
                       std::vector<uint8_t>& labels) {
  std::vector<uint8_t> order(kSyntheticClasses);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);

  std::uniform_int_distribution<int> background(0, 50);
  std::uniform_int_distribution<int> bright(180, 255);
  std::uniform_int_distribution<int64_t> bar_start(0, 6);
  std::uniform_int_distribution<int64_t> bar_end(21, kSyntheticSide - 1);

  const int64_t example_size = kSyntheticSide * kSyntheticSide;
  pixels.assign(static_cast<size_t>(count * example_size), 0);
  labels.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t label = order[i % kSyntheticClasses];
    labels[i] = label;
    uint8_t* image = &pixels[i * example_size];
    for (int64_t p = 0; p < example_size; ++p) {
      image[p] = static_cast<uint8_t>(background(rng));
    }
    const int64_t first_col = bar_start(rng);
    const int64_t last_col = bar_end(rng);
    for (int64_t row = 4 + 2 * label; row <= 5 + 2 * label; ++row) {
      for (int64_t col = first_col; col <= last_col; ++col) {
        image[row * kSyntheticSide + col] = static_cast<uint8_t>(bright(rng));
      }
    }
  }
}

}  // namespace

std::string EncodeIdxImages(uint32_t count, uint32_t rows, uint32_t cols,
                            const std::vector<uint8_t>& pixels) {
  std::string bytes;
  bytes.reserve(16 + pixels.size());
  AppendBigEndian32(0x00000803, bytes);
  AppendBigEndian32(count, bytes);
  AppendBigEndian32(rows, bytes);
  AppendBigEndian32(cols, bytes);
  bytes.append(pixels.begin(), pixels.end());
  return bytes;
}

std::string EncodeIdxLabels(const std::vector<uint8_t>& labels) {
  std::string bytes;
  bytes.reserve(8 + labels.size());
  AppendBigEndian32(0x00000801, bytes);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), bytes);
  bytes.append(labels.begin(), labels.end());
  return bytes;
}

absl::Status WriteGzipFile(const std::string& path, absl::string_view bytes) {
  errno = 0;
  gzFile file = gzopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno != 0 ? errno : ENOMEM,
                               absl::StrCat("cannot create ", path));
  }
  constexpr size_t kChunkBytes = size_t{1} << 20;
  for (size_t offset = 0; offset < bytes.size(); offset += kChunkBytes) {
    const size_t n = std::min(kChunkBytes, bytes.size() - offset);
    if (gzwrite(file, bytes.data() + offset, static_cast<unsigned>(n)) !=
        static_cast<int>(n)) {
      int errnum = Z_OK;
      const std::string message = gzerror(file, &errnum);
      gzclose(file);
      return absl::UnknownError(
          absl::StrCat("cannot write ", path, ": ", message));
    }
  }
  if (const int result = gzclose(file); result != Z_OK) {
    return absl::UnknownError(
        absl::StrCat("cannot finish ", path, ": zlib error ", result));
  }
  return absl::OkStatus();
}

absl::Status WriteRawFile(const std::string& path, absl::string_view bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
  }
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), file);
  const int write_errno = errno;
  if (std::fclose(file) != 0 || written != bytes.size()) {
    return absl::ErrnoToStatus(write_errno != 0 ? write_errno : EIO,
                               absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadRawFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    bytes.append(buffer, n);
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return bytes;
}

absl::Status WriteIdxPair(const std::string& dir, const std::string& prefix,
                          int64_t rows, int64_t cols,
                          const std::vector<uint8_t>& pixels,
                          const std::vector<uint8_t>& labels) {
  if (rows <= 0 || cols <= 0 || !FitsUint32(rows) || !FitsUint32(cols) ||
      !FitsUint32(static_cast<int64_t>(labels.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", labels.size(), " images of ", rows, "x",
                     cols, " pixels as IDX"));
  }
  const uint64_t expected =
      labels.size() * static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  if (pixels.size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", expected, " pixels for ", labels.size(),
                     " images of ", rows, "x", cols, ", got ", pixels.size()));
  }
  CONTRAIL_RETURN_IF_ERROR(CreateDirectories(dir));
  CONTRAIL_RETURN_IF_ERROR(
      WriteGzipFile(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"),
                    EncodeIdxImages(static_cast<uint32_t>(labels.size()),
                                    static_cast<uint32_t>(rows),
                                    static_cast<uint32_t>(cols), pixels)));
  return WriteGzipFile(absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz"),
                       EncodeIdxLabels(labels));
}

absl::Status WriteSyntheticFashionMnist(const std::string& dir,
                                        int64_t train_count, int64_t test_count,
                                        uint32_t seed) {
  if (train_count < 0 || test_count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("example counts must be non-negative, got ", train_count,
                     " and ", test_count));
  }
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  // Each split draws from its own stream, so the test split does not depend
  // on train_count.
  std::seed_seq train_seed{seed, 0u};
  std::mt19937 train_rng(train_seed);
  GenerateSynthetic(train_count, train_rng, pixels, labels);
  CONTRAIL_RETURN_IF_ERROR(WriteIdxPair(dir, "train", kSyntheticSide,
                                        kSyntheticSide, pixels, labels));
  std::seed_seq test_seed{seed, 1u};
  std::mt19937 test_rng(test_seed);
  GenerateSynthetic(test_count, test_rng, pixels, labels);
  return WriteIdxPair(dir, "t10k", kSyntheticSide, kSyntheticSide, pixels,
                      labels);
}

}  // namespace contrail::test
