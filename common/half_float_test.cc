#include "common/half_float.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace contrail {
namespace {

bool IsHalfNaN(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool IsBf16NaN(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

// Torch's fp32 -> fp16 / bf16 conversions of `floats`, as raw 16-bit patterns.
std::vector<uint16_t> TorchToHalfBits(const std::vector<float>& floats) {
  const torch::Tensor halves =
      torch::tensor(floats).to(torch::kHalf).contiguous();
  std::vector<uint16_t> bits(floats.size());
  const at::Half* data = halves.data_ptr<at::Half>();
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = data[i].x;
  return bits;
}

std::vector<uint16_t> TorchToBf16Bits(const std::vector<float>& floats) {
  const torch::Tensor halves =
      torch::tensor(floats).to(torch::kBFloat16).contiguous();
  std::vector<uint16_t> bits(floats.size());
  const at::BFloat16* data = halves.data_ptr<at::BFloat16>();
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = data[i].x;
  return bits;
}

// Every 16-bit pattern, widened to fp32 by torch.
std::vector<float> TorchHalfToFloat() {
  torch::Tensor halves = torch::empty({65536}, torch::kHalf);
  at::Half* data = halves.data_ptr<at::Half>();
  for (uint32_t i = 0; i < 65536; ++i) {
    data[i] = at::Half(static_cast<uint16_t>(i), at::Half::from_bits());
  }
  const torch::Tensor floats = halves.to(torch::kFloat).contiguous();
  return std::vector<float>(floats.data_ptr<float>(),
                            floats.data_ptr<float>() + 65536);
}

std::vector<float> TorchBf16ToFloat() {
  torch::Tensor halves = torch::empty({65536}, torch::kBFloat16);
  at::BFloat16* data = halves.data_ptr<at::BFloat16>();
  for (uint32_t i = 0; i < 65536; ++i) {
    data[i] = at::BFloat16(static_cast<uint16_t>(i), at::BFloat16::from_bits());
  }
  const torch::Tensor floats = halves.to(torch::kFloat).contiguous();
  return std::vector<float>(floats.data_ptr<float>(),
                            floats.data_ptr<float>() + 65536);
}

// A dense sweep of fp32 bit patterns (every 4099th), then patterns chosen to
// hit the rounding boundaries of a format whose dropped bits are the low
// `dropped_bits`: every pattern with those bits zero (exact values) or equal
// to exactly half (ties), and the patterns one ulp either side of a tie. Both
// signs; the named specials last.
std::vector<float> SweepPatterns(int dropped_bits) {
  std::vector<uint32_t> patterns;
  for (uint64_t u = 0; u <= 0xffffffffu; u += 4099) {
    patterns.push_back(static_cast<uint32_t>(u));
  }
  const uint32_t half = 1u << (dropped_bits - 1);
  for (uint64_t k = 0; k < (uint64_t{1} << (32 - dropped_bits)); ++k) {
    const uint32_t base = static_cast<uint32_t>(k << dropped_bits);
    patterns.push_back(base);
    patterns.push_back(base | half);
    patterns.push_back(base | (half - 1));
    patterns.push_back(base | (half + 1));
  }
  std::vector<float> floats;
  floats.reserve(patterns.size() + 16);
  for (uint32_t p : patterns) floats.push_back(BitsFloat(p));
  const float inf = std::numeric_limits<float>::infinity();
  for (float f : {0.0f, -0.0f, inf, -inf, 65504.0f, 65519.996f, 65520.0f,
                  -65520.0f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
                  std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::min()}) {
    floats.push_back(f);
  }
  return floats;
}

TEST(HalfFloatTest, FloatToHalfMatchesTorchBitForBit) {
  const std::vector<float> floats = SweepPatterns(13);
  const std::vector<uint16_t> expected = TorchToHalfBits(floats);
  int mismatches = 0;
  for (size_t i = 0; i < floats.size() && mismatches < 20; ++i) {
    const uint16_t ours = FloatToHalfBits(floats[i]);
    if (std::isnan(floats[i])) {
      if (!IsHalfNaN(ours)) {
        ADD_FAILURE() << "NaN " << std::hex << FloatBits(floats[i])
                      << " gave non-NaN half " << ours;
        ++mismatches;
      }
      continue;
    }
    if (ours != expected[i]) {
      ADD_FAILURE() << std::hex << "float bits " << FloatBits(floats[i]) << " ("
                    << floats[i] << "): ours " << ours << ", torch "
                    << expected[i];
      ++mismatches;
    }
  }
}

TEST(HalfFloatTest, FloatToBf16MatchesTorchBitForBit) {
  const std::vector<float> floats = SweepPatterns(16);
  const std::vector<uint16_t> expected = TorchToBf16Bits(floats);
  int mismatches = 0;
  for (size_t i = 0; i < floats.size() && mismatches < 20; ++i) {
    const uint16_t ours = FloatToBf16Bits(floats[i]);
    if (std::isnan(floats[i])) {
      if (!IsBf16NaN(ours)) {
        ADD_FAILURE() << "NaN " << std::hex << FloatBits(floats[i])
                      << " gave non-NaN bf16 " << ours;
        ++mismatches;
      }
      continue;
    }
    if (ours != expected[i]) {
      ADD_FAILURE() << std::hex << "float bits " << FloatBits(floats[i]) << " ("
                    << floats[i] << "): ours " << ours << ", torch "
                    << expected[i];
      ++mismatches;
    }
  }
}

TEST(HalfFloatTest, NamedSpecialsConvertAsIeeeSays) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FloatToHalfBits(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(inf), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(-inf), 0xfc00);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65519.996f), 0x7bff);  // just below the tie
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // tie to even: infinity
  EXPECT_EQ(FloatToHalfBits(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(FloatToHalfBits(std::ldexp(3.0f, -25)), 0x0002);  // tie to even: 2
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie down
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie up
  EXPECT_TRUE(IsHalfNaN(FloatToHalfBits(std::nanf(""))));

  EXPECT_EQ(FloatToBf16Bits(0.0f), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBf16Bits(inf), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(-inf), 0xff80);
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie down
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(3.0f, -8)), 0x3f82);  // tie up
  EXPECT_TRUE(IsBf16NaN(FloatToBf16Bits(std::nanf(""))));
  EXPECT_TRUE(IsBf16NaN(FloatToBf16Bits(BitsFloat(0x7f800001u))));  // signalling
  EXPECT_TRUE(IsBf16NaN(FloatToBf16Bits(BitsFloat(0xffc00000u))));
}

TEST(HalfFloatTest, HalfToFloatMatchesTorchForEveryPattern) {
  const std::vector<float> expected = TorchHalfToFloat();
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = HalfBitsToFloat(static_cast<uint16_t>(h));
    if (IsHalfNaN(static_cast<uint16_t>(h))) {
      ASSERT_TRUE(std::isnan(ours)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(FloatBits(ours), FloatBits(expected[h]))
        << std::hex << "half " << h << ": ours " << ours << ", torch "
        << expected[h];
  }
}

TEST(HalfFloatTest, Bf16ToFloatMatchesTorchForEveryPattern) {
  const std::vector<float> expected = TorchBf16ToFloat();
  for (uint32_t b = 0; b < 65536; ++b) {
    const float ours = Bf16BitsToFloat(static_cast<uint16_t>(b));
    if (IsBf16NaN(static_cast<uint16_t>(b))) {
      ASSERT_TRUE(std::isnan(ours)) << std::hex << b;
      continue;
    }
    ASSERT_EQ(FloatBits(ours), FloatBits(expected[b]))
        << std::hex << "bf16 " << b << ": ours " << ours << ", torch "
        << expected[b];
  }
}

TEST(HalfFloatTest, EveryHalfPatternRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const uint16_t back = FloatToHalfBits(HalfBitsToFloat(bits));
    if (IsHalfNaN(bits)) {
      ASSERT_TRUE(IsHalfNaN(back)) << std::hex << h << " -> " << back;
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
}

TEST(HalfFloatTest, EveryBf16PatternRoundTripsThroughFloat) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const uint16_t back = FloatToBf16Bits(Bf16BitsToFloat(bits));
    if (IsBf16NaN(bits)) {
      ASSERT_TRUE(IsBf16NaN(back)) << std::hex << b << " -> " << back;
    } else {
      ASSERT_EQ(back, bits) << std::hex << b;
    }
  }
}

}  // namespace
}  // namespace contrail
