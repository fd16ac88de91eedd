#include "common/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace contrail {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // ubyte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // ubyte, 1 dimension

// Bounds what a header may make us decompress and allocate (as floats, four
// times this), so a corrupt or hostile header cannot exhaust memory.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 31;

// gzread() is called with chunks this large; zlib's own input buffer is
// kGzBufferBytes (its output buffer twice that).
constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr unsigned kGzBufferBytes = 1u << 18;

// Output vectors reserve at most this many elements up front (the full
// Fashion-MNIST training set fits); beyond it they grow as data arrives, so
// an absurd declared size costs nothing until the bytes really exist.
constexpr size_t kMaxReservedElements = size_t{1} << 26;

struct GzCloser {
  void operator()(gzFile file) const { gzclose(file); }
};

// An IDX file opened for one sequential pass: header, payload, end.
class IdxFile {
 public:
  static absl::StatusOr<IdxFile> Open(const std::string& path) {
    errno = 0;
    gzFile file = gzopen(path.c_str(), "rb");
    if (file == nullptr) {
      const int error = errno;
      if (error == 0) {
        return absl::ResourceExhaustedError(
            absl::StrCat("cannot open ", path, ": out of memory"));
      }
      return absl::ErrnoToStatus(error, absl::StrCat("cannot open ", path));
    }
    gzbuffer(file, kGzBufferBytes);
    return IdxFile(path, file);
  }

  const std::string& path() const { return path_; }

  // Reads the magic number and the dimension sizes; fails unless the magic
  // is `expected_magic`, described to the user as `description`.
  absl::StatusOr<std::vector<uint32_t>> ReadHeader(
      uint32_t expected_magic, absl::string_view description) {
    std::array<uint8_t, 4> magic_bytes;
    CONTRAIL_ASSIGN_OR_RETURN(size_t got,
                              Read(magic_bytes.data(), magic_bytes.size()));
    if (got < magic_bytes.size()) {
      return absl::DataLossError(absl::StrCat(
          path_, ": truncated: expected a 4-byte magic number, got ", got,
          " bytes"));
    }
    const uint32_t magic = BigEndian32(magic_bytes.data());
    if (magic != expected_magic) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: bad magic 0x%08x, expected 0x%08x (%s)", path_,
                          magic, expected_magic, description));
    }
    const size_t num_dims = expected_magic & 0xff;
    std::vector<uint8_t> dim_bytes(4 * num_dims);
    CONTRAIL_ASSIGN_OR_RETURN(got, Read(dim_bytes.data(), dim_bytes.size()));
    if (got < dim_bytes.size()) {
      return absl::DataLossError(
          absl::StrCat(path_, ": truncated: expected ", dim_bytes.size(),
                       " bytes of dimension sizes, got ", got));
    }
    std::vector<uint32_t> dims(num_dims);
    for (size_t i = 0; i < num_dims; ++i) {
      dims[i] = BigEndian32(&dim_bytes[4 * i]);
    }
    return dims;
  }

  // Reads exactly `size` payload bytes, handing them to `consume` chunk by
  // chunk, and then requires the stream to end. `what` names the payload
  // in messages ("pixel data").
  absl::Status ReadPayload(
      uint64_t size, absl::string_view what,
      absl::FunctionRef<void(const uint8_t*, size_t)> consume) {
    std::vector<uint8_t> chunk(
        static_cast<size_t>(std::min<uint64_t>(size, kChunkBytes)) + 1);
    uint64_t total = 0;
    while (total < size) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(size - total, kChunkBytes));
      CONTRAIL_ASSIGN_OR_RETURN(size_t got, Read(chunk.data(), want));
      consume(chunk.data(), got);
      total += got;
      if (got < want) {
        return absl::DataLossError(absl::StrCat(path_, ": truncated: expected ",
                                                size, " bytes of ", what,
                                                ", got ", total));
      }
    }
    // The data must end here. Reading on also makes zlib check the gzip
    // trailer (CRC-32 and length) of the last member. Extra bytes are read
    // to the end: zlib checks the CRC only there, and corruption explains
    // surplus output better than a wrong header does.
    uint64_t trailing = 0;
    size_t got = 0;
    do {
      CONTRAIL_ASSIGN_OR_RETURN(got, Read(chunk.data(), chunk.size()));
      trailing += got;
    } while (got == chunk.size());
    if (trailing > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": ", trailing, " trailing bytes after the ",
                       size, " bytes of ", what, " the header declares"));
    }
    return absl::OkStatus();
  }

 private:
  IdxFile(std::string path, gzFile file)
      : path_(std::move(path)), file_(file) {}

  static uint32_t BigEndian32(const uint8_t* bytes) {
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
           (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  }

  // Reads up to `size` (at most INT_MAX) bytes; returns fewer only where
  // the data ends cleanly. A gzip stream that is corrupt, or that stops
  // before its trailer, is DATA_LOSS.
  absl::StatusOr<size_t> Read(uint8_t* buffer, size_t size) {
    size_t got = 0;
    while (got < size) {
      errno = 0;
      const int n =
          gzread(file_.get(), buffer + got, static_cast<unsigned>(size - got));
      const int read_errno = errno;
      if (n < 0) return StreamError(read_errno);
      if (n == 0) break;
      got += static_cast<size_t>(n);
      decompressed_bytes_ += static_cast<uint64_t>(n);
    }
    if (got < size) {
      // zlib reports input that runs out inside a gzip member as a short
      // read with Z_BUF_ERROR pending, not as a failed read.
      int errnum = Z_OK;
      gzerror(file_.get(), &errnum);
      if (errnum != Z_OK) return StreamError(0);
    }
    return got;
  }

  absl::Status StreamError(int read_errno) {
    int errnum = Z_OK;
    std::string message = gzerror(file_.get(), &errnum);
    // zlib prefixes its messages with the path it was given.
    const std::string prefix = absl::StrCat(path_, ": ");
    if (absl::StartsWith(message, prefix)) message.erase(0, prefix.size());
    switch (errnum) {
      case Z_ERRNO:
        return absl::ErrnoToStatus(read_errno != 0 ? read_errno : EIO,
                                   absl::StrCat("cannot read ", path_));
      case Z_DATA_ERROR:
        // No offset: zlib may fail before handing over a call's output.
        return absl::DataLossError(
            absl::StrCat(path_, ": corrupt gzip stream: ", message));
      case Z_BUF_ERROR:
        return absl::DataLossError(absl::StrCat(
            path_, ": truncated gzip stream: compressed data ends after ",
            decompressed_bytes_, " decompressed bytes"));
      case Z_MEM_ERROR:
        return absl::ResourceExhaustedError(
            absl::StrCat(path_, ": out of memory while decompressing"));
      default:
        return absl::InternalError(
            absl::StrCat(path_, ": zlib error ", errnum, ": ", message));
    }
  }

  std::string path_;
  std::unique_ptr<gzFile_s, GzCloser> file_;
  uint64_t decompressed_bytes_ = 0;
};

struct ImagesHeader {
  uint64_t count = 0;
  uint64_t rows = 0;
  uint64_t cols = 0;
};

absl::StatusOr<ImagesHeader> ReadImagesHeader(IdxFile& file) {
  CONTRAIL_ASSIGN_OR_RETURN(
      std::vector<uint32_t> dims,
      file.ReadHeader(kImagesMagic, "ubyte images, 3 dimensions"));
  const ImagesHeader header{dims[0], dims[1], dims[2]};
  if (header.rows == 0 || header.cols == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": images of ", header.rows, "x", header.cols,
                     " pixels; expected at least 1x1"));
  }
  // rows * cols < 2^64 since each is < 2^32; the count check divides.
  const uint64_t example_bytes = header.rows * header.cols;
  if (example_bytes > kMaxPayloadBytes ||
      header.count > kMaxPayloadBytes / example_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": header declares ", header.count, " images of ",
        header.rows, "x", header.cols, " pixels, over the limit of ",
        kMaxPayloadBytes, " bytes"));
  }
  return header;
}

absl::StatusOr<uint64_t> ReadLabelsHeader(IdxFile& file) {
  CONTRAIL_ASSIGN_OR_RETURN(
      std::vector<uint32_t> dims,
      file.ReadHeader(kLabelsMagic, "ubyte labels, 1 dimension"));
  const uint64_t count = dims[0];
  if (count > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": header declares ", count,
                     " labels, over the limit of ", kMaxPayloadBytes));
  }
  return count;
}

// byte / 255 for every byte, so conversion is a lookup of an exact quotient.
const std::array<float, 256>& PixelScale() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values;
    for (int i = 0; i < 256; ++i) values[i] = static_cast<float>(i) / 255.0f;
    return values;
  }();
  return table;
}

}  // namespace

absl::StatusOr<LabelledImages> ReadIdxPair(const std::string& images_path,
                                           const std::string& labels_path) {
  CONTRAIL_ASSIGN_OR_RETURN(IdxFile images_file, IdxFile::Open(images_path));
  CONTRAIL_ASSIGN_OR_RETURN(IdxFile labels_file, IdxFile::Open(labels_path));
  CONTRAIL_ASSIGN_OR_RETURN(const ImagesHeader header,
                            ReadImagesHeader(images_file));
  CONTRAIL_ASSIGN_OR_RETURN(const uint64_t label_count,
                            ReadLabelsHeader(labels_file));
  if (header.count != label_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "images file ", images_path, " has ", header.count,
        " examples but labels file ", labels_path, " has ", label_count));
  }

  LabelledImages result;
  result.count = static_cast<int64_t>(header.count);
  result.rows = static_cast<int64_t>(header.rows);
  result.cols = static_cast<int64_t>(header.cols);

  const uint64_t pixel_bytes = header.count * header.rows * header.cols;
  result.pixels.reserve(static_cast<size_t>(
      std::min<uint64_t>(pixel_bytes, kMaxReservedElements)));
  const std::array<float, 256>& scale = PixelScale();
  CONTRAIL_RETURN_IF_ERROR(images_file.ReadPayload(
      pixel_bytes, "pixel data", [&](const uint8_t* bytes, size_t n) {
        const size_t old_size = result.pixels.size();
        result.pixels.resize(old_size + n);
        std::transform(bytes, bytes + n, result.pixels.begin() + old_size,
                       [&scale](uint8_t byte) { return scale[byte]; });
      }));

  result.labels.reserve(static_cast<size_t>(
      std::min<uint64_t>(label_count, kMaxReservedElements)));
  CONTRAIL_RETURN_IF_ERROR(labels_file.ReadPayload(
      label_count, "labels", [&](const uint8_t* bytes, size_t n) {
        result.labels.insert(result.labels.end(), bytes, bytes + n);
      }));
  return result;
}

absl::StatusOr<LabelledImages> ReadFashionMnist(const std::string& dir,
                                                bool train) {
  const absl::string_view prefix = train ? "train" : "t10k";
  return ReadIdxPair(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"),
                     absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz"));
}

}  // namespace contrail
