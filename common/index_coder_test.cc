#include "common/index_coder.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace contrail {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int64_t kTwoTo32 = int64_t{1} << 32;

// The exact length of the Rice code of `indices` with parameter `r`, in bits.
uint64_t CodeBits(const std::vector<uint32_t>& indices, uint32_t r) {
  uint64_t bits = 0;
  int64_t previous = -1;
  for (uint32_t index : indices) {
    const uint64_t gap = static_cast<uint64_t>(index - previous - 1);
    bits += (gap >> r) + 1 + r;
    previous = index;
  }
  return bits;
}

class IndexCoderTest : public ::testing::Test {
 protected:
  // `count` distinct indices below `limit`, uniformly at random, sorted.
  std::vector<uint32_t> RandomIndices(int64_t limit, size_t count) {
    std::vector<uint32_t> indices;
    if (static_cast<int64_t>(count) * 4 > limit) {
      // Dense: pick each entry with the right probability, then trim.
      std::uniform_int_distribution<int64_t> pick(0, limit - 1);
      std::vector<bool> taken(limit, false);
      size_t chosen = 0;
      while (chosen < count) {
        const int64_t i = pick(rng_);
        if (!taken[i]) {
          taken[i] = true;
          ++chosen;
        }
      }
      for (int64_t i = 0; i < limit; ++i) {
        if (taken[i]) indices.push_back(static_cast<uint32_t>(i));
      }
      return indices;
    }
    std::uniform_int_distribution<int64_t> pick(0, limit - 1);
    while (indices.size() < count) {
      for (size_t i = indices.size(); i < count; ++i) {
        indices.push_back(static_cast<uint32_t>(pick(rng_)));
      }
      std::sort(indices.begin(), indices.end());
      indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
    }
    return indices;
  }

  // Encodes with `r`, checks the length, decodes and checks the indices.
  void ExpectRoundTrip(const std::vector<uint32_t>& indices, uint32_t r,
                       int64_t limit) {
    SCOPED_TRACE(testing::Message() << indices.size() << " indices below "
                                    << limit << ", Rice parameter " << r);
    std::string code = "prefix";
    EncodeIndices(indices, r, &code);
    ASSERT_EQ(code.substr(0, 6), "prefix") << "EncodeIndices must append";
    code.erase(0, 6);
    EXPECT_EQ(code.size(), (CodeBits(indices, r) + 7) / 8);
    std::vector<uint32_t> decoded = {12345};  // overwritten, not appended to
    const absl::Status status = DecodeIndices(
        code, r, static_cast<uint32_t>(indices.size()), limit, &decoded);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_EQ(decoded.size(), indices.size());
    ASSERT_TRUE(decoded == indices);
  }

  // Round trips with ChooseRiceBits's parameter and with 0, 5 and 31, leaving
  // out parameters whose code would be unreasonably long (a gap of 2^32 with
  // parameter 0 is 2^32 one-bits).
  void ExpectRoundTripsWithSeveralParameters(
      const std::vector<uint32_t>& indices, int64_t limit) {
    for (uint32_t r : {ChooseRiceBits(indices), 0u, 5u, 31u}) {
      if (CodeBits(indices, r) > (uint64_t{64} << 20)) continue;  // 8 MiB
      ExpectRoundTrip(indices, r, limit);
    }
  }

  std::mt19937 rng_{20240611};
};

TEST_F(IndexCoderTest, EmptyListIsEmptyCode) {
  std::string code;
  EncodeIndices({}, 3, &code);
  EXPECT_TRUE(code.empty());
  std::vector<uint32_t> decoded = {1, 2};
  ASSERT_TRUE(DecodeIndices(code, 3, 0, 10, &decoded).ok());
  EXPECT_TRUE(decoded.empty());
  EXPECT_EQ(ChooseRiceBits({}), 0u);
}

TEST_F(IndexCoderTest, SingleIndexRoundTrips) {
  for (uint32_t index : {0u, 1u, 2u, 999u, 65535u, 1u << 24, 0xfffffffeu,
                         0xffffffffu}) {
    ExpectRoundTripsWithSeveralParameters({index}, kTwoTo32);
  }
  ExpectRoundTripsWithSeveralParameters({0}, 1);
  ExpectRoundTripsWithSeveralParameters({6}, 7);
}

TEST_F(IndexCoderTest, AllNeighboursRoundTripAtOneBitEach) {
  std::vector<uint32_t> indices(800);
  for (uint32_t i = 0; i < indices.size(); ++i) indices[i] = i;
  EXPECT_EQ(ChooseRiceBits(indices), 0u);
  ExpectRoundTripsWithSeveralParameters(indices, 800);
  std::string code;
  EncodeIndices(indices, ChooseRiceBits(indices), &code);
  EXPECT_EQ(code, std::string(100, '\0'));  // 800 zero-bits

  // The same run further in.
  for (uint32_t& i : indices) i += 100000;
  ExpectRoundTripsWithSeveralParameters(indices, 100800);
}

TEST_F(IndexCoderTest, SparseRandomSetsRoundTrip) {
  struct Case {
    int64_t limit;
    size_t count;
  };
  for (const Case& c : std::vector<Case>{{1000000, 1000},     // 0.1 %
                                         {1 << 24, 1678},     // 0.01 %
                                         {1000000, 100000},   // 10 %
                                         {1000000, 500000},   // 50 %
                                         {100000, 99999},     // all but one
                                         {kTwoTo32, 10000},   // over all of uint32
                                         {kTwoTo32, 3}}) {
    ExpectRoundTripsWithSeveralParameters(RandomIndices(c.limit, c.count),
                                          c.limit);
  }
}

TEST_F(IndexCoderTest, IndicesNearTheTopOfUint32RoundTrip) {
  const std::vector<uint32_t> top = {0xfffffff0u, 0xfffffff1u, 0xfffffffau,
                                     0xfffffffeu, 0xffffffffu};
  ExpectRoundTripsWithSeveralParameters(top, kTwoTo32);
  std::vector<uint32_t> spread = {0, 1u << 31, 0xffffffffu};
  ExpectRoundTripsWithSeveralParameters(spread, kTwoTo32);
  // A random set in the last 2^20 entries.
  std::vector<uint32_t> last = RandomIndices(1 << 20, 2000);
  for (uint32_t& i : last) i += 0xfff00000u;
  ExpectRoundTripsWithSeveralParameters(last, kTwoTo32);
}

TEST_F(IndexCoderTest, UniformSetsCostAboutLog2NOverKPlusTwoBitsEach) {
  struct Case {
    int64_t limit;
    size_t count;
  };
  for (const Case& c : std::vector<Case>{{1000000, 1000},
                                         {1 << 24, 1678},
                                         {1000000, 10000},
                                         {kTwoTo32, 4096}}) {
    SCOPED_TRACE(testing::Message() << c.count << " of " << c.limit);
    const std::vector<uint32_t> indices = RandomIndices(c.limit, c.count);
    std::string code;
    EncodeIndices(indices, ChooseRiceBits(indices), &code);
    const double bits_per_index = 8.0 * code.size() / indices.size();
    EXPECT_LE(bits_per_index,
              std::log2(static_cast<double>(c.limit) / c.count) + 2.0);
  }
  // 0.1 % of 10^6: at most 1.5 bytes an index (a varint needs 2).
  const std::vector<uint32_t> indices = RandomIndices(1000000, 1000);
  std::string code;
  EncodeIndices(indices, ChooseRiceBits(indices), &code);
  EXPECT_LE(code.size(), 1500u);
}

TEST_F(IndexCoderTest, ChooseRiceBitsFollowsTheMeanGap) {
  // Mean gap about 999: r = floor(log2(999 * ln 2)) = 9.
  std::vector<uint32_t> every_thousandth;
  for (uint32_t i = 999; i < 1000000; i += 1000) every_thousandth.push_back(i);
  EXPECT_EQ(ChooseRiceBits(every_thousandth), 9u);
  EXPECT_EQ(ChooseRiceBits({0xffffffffu}), 31u);
  EXPECT_EQ(ChooseRiceBits({0, 1, 2, 3}), 0u);
}

TEST_F(IndexCoderTest, EveryTruncationOfAValidCodeIsInvalidArgument) {
  const std::vector<std::vector<uint32_t>> sets = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
      {7, 300, 301, 5000, 99999},
      RandomIndices(1000000, 1000),
      {0xfffffffeu, 0xffffffffu}};
  const std::vector<int64_t> limits = {10, 100000, 1000000, kTwoTo32};
  for (size_t s = 0; s < sets.size(); ++s) {
    for (uint32_t r : {ChooseRiceBits(sets[s]), 0u, 5u, 31u}) {
      // Each truncated decode reads up to the cut: keep the codes short.
      if (CodeBits(sets[s], r) > (uint64_t{1} << 16)) continue;
      std::string code;
      EncodeIndices(sets[s], r, &code);
      for (size_t length = 0; length < code.size(); ++length) {
        SCOPED_TRACE(testing::Message() << "set " << s << ", parameter " << r
                                        << ", cut to " << length << " of "
                                        << code.size());
        std::vector<uint32_t> decoded;
        const absl::Status status =
            DecodeIndices(code.substr(0, length), r,
                          static_cast<uint32_t>(sets[s].size()), limits[s],
                          &decoded);
        ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
        EXPECT_THAT(std::string(status.message()), HasSubstr("truncated"));
      }
    }
  }
}

TEST_F(IndexCoderTest, UnaryRunOverflowingTheLimitIsOutOfRange) {
  // 100 one-bits and no terminating zero: a quotient far beyond limit 16.
  std::vector<uint32_t> decoded;
  absl::Status status =
      DecodeIndices(std::string(13, '\xff'), 0, 1, 16, &decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("out of range"));

  // A megabyte of one-bits against a 2^32 limit with parameter 31: stops
  // once the quotient passes the limit rather than reading to the end.
  status = DecodeIndices(std::string(1 << 20, '\xff'), 31, 1, kTwoTo32,
                         &decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("out of range"));

  // A terminated gap that lands exactly on the limit.
  std::string code;
  EncodeIndices({16}, 2, &code);
  status = DecodeIndices(code, 2, 1, 16, &decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("out of range"));
  ASSERT_TRUE(DecodeIndices(code, 2, 1, 17, &decoded).ok());
  EXPECT_THAT(decoded, ElementsAreArray({16u}));

  // A later index pushed past the limit by an in-range gap.
  code.clear();
  EncodeIndices({10, 20}, 3, &code);
  status = DecodeIndices(code, 3, 2, 20, &decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("out of range"));
}

TEST_F(IndexCoderTest, TrailingBytesAreInvalidArgument) {
  std::string code;
  EncodeIndices({1, 2, 3}, 0, &code);
  std::vector<uint32_t> decoded;
  ASSERT_TRUE(DecodeIndices(code, 0, 3, 10, &decoded).ok());
  code.push_back('\0');
  const absl::Status status = DecodeIndices(code, 0, 3, 10, &decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("after the last index"));
  // Any byte with count 0.
  EXPECT_EQ(DecodeIndices(std::string(1, '\0'), 0, 0, 10, &decoded).code(),
            absl::StatusCode::kInvalidArgument);
  // Fewer indices declared than coded.
  EXPECT_EQ(DecodeIndices(std::string(2, '\0'), 0, 3, 10, &decoded).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IndexCoderTest, NonZeroPaddingIsInvalidArgument) {
  std::string code;
  EncodeIndices({1, 2, 3}, 0, &code);  // "10" "0" "0": 4 bits, 4 of padding
  ASSERT_EQ(code, std::string(1, '\x01'));
  for (int bit = 4; bit < 8; ++bit) {
    std::string padded = code;
    padded[0] = static_cast<char>(padded[0] | (1 << bit));
    std::vector<uint32_t> decoded;
    const absl::Status status = DecodeIndices(padded, 0, 3, 10, &decoded);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("padding"));
  }
}

TEST_F(IndexCoderTest, RiceParameterOf32OrMoreIsInvalidArgument) {
  std::string code;
  EncodeIndices({1, 2, 3}, 31, &code);
  std::vector<uint32_t> decoded;
  for (uint32_t r : {32u, 33u, 64u, 0xffffffffu}) {
    const absl::Status status = DecodeIndices(code, r, 3, kTwoTo32, &decoded);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("Rice parameter"));
  }
}

TEST_F(IndexCoderTest, RandomGarbageNeverCrashes) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<uint32_t> parameter(0, 33);
  std::uniform_int_distribution<uint32_t> count(0, 50);
  std::bernoulli_distribution mostly_ones(0.9);
  const std::vector<int64_t> limits = {1, 2, 17, 1000, 1 << 24, kTwoTo32};
  int ok = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    std::string bytes(length(rng_), '\0');
    // Half the trials run long stretches of one-bits, the unary code's edge.
    const bool ones = trial % 2 == 0;
    for (char& b : bytes) {
      b = static_cast<char>(ones && mostly_ones(rng_) ? 0xff : byte(rng_));
    }
    const uint32_t r = parameter(rng_);
    const uint32_t n = count(rng_);
    const int64_t limit = limits[trial % limits.size()];
    std::vector<uint32_t> decoded;
    const absl::Status status = DecodeIndices(bytes, r, n, limit, &decoded);
    if (!status.ok()) {
      ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      continue;
    }
    ++ok;
    ASSERT_EQ(decoded.size(), n);
    for (size_t i = 0; i < decoded.size(); ++i) {
      ASSERT_LT(decoded[i], limit);
      if (i > 0) {
        ASSERT_LT(decoded[i - 1], decoded[i]);
      }
    }
    // A code that decodes re-encodes to the same bytes.
    std::string again;
    EncodeIndices(decoded, r, &again);
    ASSERT_EQ(again, bytes);
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace contrail
