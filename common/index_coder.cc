#include "common/index_coder.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace contrail {
namespace {

// Accumulates bits LSB-first and flushes whole bytes.
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}
  // Appends the low `n` (<= 32) bits of `bits`.
  void Write(uint64_t bits, int n) {
    buffer_ |= (bits & ((uint64_t{1} << n) - 1)) << filled_;
    filled_ += n;
    while (filled_ >= 8) {
      out_->push_back(static_cast<char>(buffer_ & 0xff));
      buffer_ >>= 8;
      filled_ -= 8;
    }
  }
  void Ones(uint64_t n) {
    for (; n >= 32; n -= 32) Write(0xffffffffu, 32);
    Write((uint64_t{1} << n) - 1, static_cast<int>(n));
  }
  void Finish() {
    if (filled_ > 0) out_->push_back(static_cast<char>(buffer_ & 0xff));
    buffer_ = 0;
    filled_ = 0;
  }

 private:
  std::string* out_;
  uint64_t buffer_ = 0;
  int filled_ = 0;
};

// Reads bits LSB-first from a byte string; never reads past its end.
class BitReader {
 public:
  explicit BitReader(const std::string& bytes)
      : data_(reinterpret_cast<const uint8_t*>(bytes.data())),
        size_bits_(static_cast<uint64_t>(bytes.size()) * 8) {}

  uint64_t remaining() const { return size_bits_ - position_; }

  // The next up-to-57 bits without consuming them (zeros past the end).
  uint64_t Peek() const {
    const uint64_t byte = position_ >> 3;
    uint64_t window = 0;
    const uint64_t available = (size_bits_ >> 3) - byte;
    std::memcpy(&window, data_ + byte, available < 8 ? available : 8);
    return window >> (position_ & 7);
  }
  void Skip(uint64_t n) { position_ += n; }

 private:
  const uint8_t* data_;
  uint64_t size_bits_;
  uint64_t position_ = 0;
};

}  // namespace

uint32_t ChooseRiceBits(absl::Span<const uint32_t> indices) {
  if (indices.empty()) return 0;
  // Sum of gaps = last index + 1 - count.
  const uint64_t gaps = static_cast<uint64_t>(indices.back()) + 1 - indices.size();
  // For geometric gaps of mean m the best r is about log2(m * ln 2).
  const double mean = static_cast<double>(gaps) / indices.size() * 0.6931;
  uint32_t r = 0;
  while (r < 31 && static_cast<double>(uint64_t{1} << (r + 1)) <= mean) ++r;
  return r;
}

void EncodeIndices(absl::Span<const uint32_t> indices, uint32_t rice_bits,
                   std::string* out) {
  BitWriter writer(out);
  int64_t previous = -1;
  for (uint32_t index : indices) {
    const uint64_t gap = static_cast<uint64_t>(index - previous - 1);
    writer.Ones(gap >> rice_bits);
    writer.Write(0, 1);
    writer.Write(gap, static_cast<int>(rice_bits));
    previous = index;
  }
  writer.Finish();
}

absl::Status DecodeIndices(const std::string& bytes, uint32_t rice_bits,
                           uint32_t count, int64_t limit,
                           std::vector<uint32_t>* indices) {
  if (rice_bits >= 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("Rice parameter ", rice_bits, " is not below 32"));
  }
  indices->resize(count);
  BitReader reader(bytes);
  int64_t previous = -1;
  for (uint32_t i = 0; i < count; ++i) {
    // The quotient: a run of one-bits ended by a zero-bit.
    uint64_t quotient = 0;
    while (true) {
      if (reader.remaining() == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "index ", i, " of ", count, ": the index code is truncated"));
      }
      const uint64_t window = reader.Peek();
      const uint64_t valid = reader.remaining() < 56 ? reader.remaining() : 56;
      // __builtin_ctzll(0) is undefined: a window of 64 one-bits is a run
      // longer than `valid`.
      const uint64_t ones = ~window == 0 ? 64 : __builtin_ctzll(~window);
      if (ones < valid) {
        quotient += ones;
        reader.Skip(ones + 1);
        break;
      }
      quotient += valid;
      reader.Skip(valid);
      if ((quotient << rice_bits) >= static_cast<uint64_t>(limit)) break;
    }
    if (reader.remaining() < rice_bits) {
      return absl::InvalidArgumentError(absl::StrCat(
          "index ", i, " of ", count, ": the index code is truncated"));
    }
    const uint64_t low = rice_bits == 0 ? 0 : reader.Peek() & ((uint64_t{1} << rice_bits) - 1);
    reader.Skip(rice_bits);
    const uint64_t gap = (quotient << rice_bits) | low;
    const int64_t index = previous + 1 + static_cast<int64_t>(gap);
    if (gap >= static_cast<uint64_t>(limit) || index >= limit) {
      return absl::InvalidArgumentError(absl::StrCat(
          "index ", i, " of ", count, " is out of range [0, ", limit, ")"));
    }
    (*indices)[i] = static_cast<uint32_t>(index);
    previous = index;
  }
  if (reader.remaining() >= 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader.remaining() / 8, " bytes after the last index"));
  }
  if ((reader.Peek() & ((uint64_t{1} << reader.remaining()) - 1)) != 0) {
    return absl::InvalidArgumentError("non-zero padding after the last index");
  }
  return absl::OkStatus();
}

}  // namespace contrail
