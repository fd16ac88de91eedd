#include "common/update_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/index_coder.h"
#include "common/model_spec.h"
#include "common/tensor_views.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"

namespace contrail {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

void AddTensor(const std::string& name, std::vector<int64_t> shape,
               ModelSpec* spec) {
  TensorSpec* t = spec->add_tensors();
  t->set_name(name);
  for (int64_t d : shape) t->add_shape(d);
  t->set_dtype("float32");
}

// Three tensors: "w" [4, 5] (20), "b" [5], "big" [2^22 + 10] (so that gaps
// over 2^21 fit).
ModelSpec SmallSpec() {
  ModelSpec spec;
  spec.set_architecture("test");
  spec.add_input_shape(3);
  spec.set_num_classes(5);
  AddTensor("w", {4, 5}, &spec);
  AddTensor("b", {5}, &spec);
  AddTensor("big", {(int64_t{1} << 22) + 10}, &spec);
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

// Model buffers for a spec, zeroed, with views onto them.
class Buffers {
 public:
  explicit Buffers(const ModelSpec& spec) {
    for (const TensorSpec& t : spec.tensors()) {
      storage_.emplace_back(TensorSize(t), 0.0f);
    }
  }
  TensorViews Views() {
    TensorViews views;
    for (std::vector<float>& s : storage_) views.push_back(absl::MakeSpan(s));
    return views;
  }
  const std::vector<float>& tensor(int i) const { return storage_[i]; }
  uint64_t Checksum() {
    TensorViews views = Views();
    return ChecksumTensors(AsConst(views));
  }

 private:
  std::vector<std::vector<float>> storage_;
};

Update NewUpdate(const ModelSpec& spec, ValueEncoding encoding = FP32_ASSIGN) {
  Update update;
  update.set_version(7);
  update.set_base_version(6);
  update.set_fingerprint(spec.fingerprint());
  update.set_encoding(encoding);
  return update;
}

// Reference rounding, independent of common/half_float.h: `x` rounded to
// nearest even with `mantissa_bits` stored bits and exponents no lower than
// `min_exponent` (below it, a fixed quantum: subnormals). Exact in double,
// since x / quantum only shifts the exponent; overflow is not modelled.
float RoundTo(float x, int mantissa_bits, int min_exponent) {
  if (x == 0 || !std::isfinite(x)) return x;
  const int exponent = std::max(std::ilogb(x), min_exponent);
  const double quantum = std::ldexp(1.0, exponent - mantissa_bits);
  return static_cast<float>(std::nearbyint(x / quantum) * quantum);
}

// What a delta `d` becomes on the wire: fp16 of d * 2^-scale (10 stored
// bits, smallest normal exponent -14), scaled back; or bf16 (7 bits,
// fp32's exponent range).
float ExpectedDelta(ValueEncoding encoding, int scale_exponent, float d) {
  if (encoding == FP16_DELTA) {
    return std::ldexp(RoundTo(std::ldexp(d, -scale_exponent), 10, -14),
                      scale_exponent);
  }
  return RoundTo(d, 7, -126);
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

float BitsFloat32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

class UpdateCodecTest : public ::testing::Test {
 protected:
  // Expects `update` to be rejected with `code`, leaving every buffer as it
  // was.
  void ExpectRejected(const Update& update, absl::StatusCode code,
                      const std::string& message_part = "") {
    const uint64_t before = buffers_.Checksum();
    const absl::Status status = ApplyUpdate(update, spec_, buffers_.Views());
    EXPECT_EQ(status.code(), code) << status;
    if (!message_part.empty()) {
      EXPECT_THAT(std::string(status.message()), HasSubstr(message_part));
    }
    EXPECT_EQ(DecodeUpdate(update, spec_).status().code(), code);
    EXPECT_EQ(buffers_.Checksum(), before) << "buffers changed on failure";
  }

  // A valid update touching "w" densely-ish (sparse), then "b" sparsely; the
  // tests corrupt the last tensor after it, so that a codec applying as it
  // decodes would already have written the earlier ones.
  // In a delta encoding "b" is sparse too (dense tensors are fp32 only).
  // Every value is exact in fp16 and bf16.
  Update ValidPrefix(ValueEncoding encoding = FP32_ASSIGN) {
    Update update = NewUpdate(spec_, encoding);
    const std::vector<uint32_t> indices = {0, 3, 19};
    const std::vector<float> values = {1.5f, -2.0f, 3.25f};
    EXPECT_EQ(AppendSparseTensor(0, indices, values, &update), 3);
    const std::vector<float> b = {1, 2, 3, 4, 5};
    if (IsDeltaEncoding(encoding)) {
      EXPECT_EQ(AppendSparseTensor(1, std::vector<uint32_t>{0, 1, 2, 3, 4}, b,
                                   &update),
                5);
    } else {
      AppendDenseTensor(1, b, &update);
    }
    return update;
  }

  const ModelSpec spec_ = SmallSpec();
  Buffers buffers_{spec_};
};

TEST_F(UpdateCodecTest, SparseAndDenseValuesLandExactlyAtTheirIndices) {
  Update update = NewUpdate(spec_);
  const std::vector<uint32_t> w_indices = {0, 1, 2, 7, 19};
  const std::vector<float> w_values = {1.0f, -0.0f, 3.5f, -1e-30f, 42.0f};
  AppendSparseTensor(0, w_indices, w_values, &update);
  const std::vector<float> b_values = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
  AppendDenseTensor(1, b_values, &update);
  SealUpdate(&update);

  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());

  std::vector<float> expected_w(20, 0.0f);
  for (size_t i = 0; i < w_indices.size(); ++i) {
    expected_w[w_indices[i]] = w_values[i];
  }
  const std::vector<float>& w = buffers_.tensor(0);
  ASSERT_EQ(w.size(), expected_w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    // Bit-for-bit, so -0.0 is distinguished from 0.0.
    EXPECT_EQ(std::memcmp(&w[i], &expected_w[i], sizeof(float)), 0)
        << "w[" << i << "] = " << w[i];
  }
  EXPECT_THAT(buffers_.tensor(1), ElementsAreArray(b_values));
  for (float v : buffers_.tensor(2)) ASSERT_EQ(v, 0.0f);
}

TEST_F(UpdateCodecTest, SparseApplyOverwritesOnlySelectedEntries) {
  // Start from non-zero values so that "nothing else changes" is visible.
  TensorViews views = buffers_.Views();
  for (size_t i = 0; i < views[0].size(); ++i) views[0][i] = 100.0f + i;
  Update update = NewUpdate(spec_);
  AppendSparseTensor(0, std::vector<uint32_t>{4, 5}, std::vector<float>{-1, -2},
                     &update);
  SealUpdate(&update);
  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  const std::vector<float>& w = buffers_.tensor(0);
  for (size_t i = 0; i < w.size(); ++i) {
    if (i == 4) {
      EXPECT_EQ(w[i], -1.0f);
    } else if (i == 5) {
      EXPECT_EQ(w[i], -2.0f);
    } else {
      EXPECT_EQ(w[i], 100.0f + i) << i;
    }
  }
}

TEST_F(UpdateCodecTest, EmptyUpdateAppliesAndChangesNothing) {
  Update update = NewUpdate(spec_);
  SealUpdate(&update);
  const uint64_t before = buffers_.Checksum();
  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  EXPECT_EQ(buffers_.Checksum(), before);
}

TEST_F(UpdateCodecTest, IndicesWithLargeGapsAndNeighboursRoundTrip) {
  const uint32_t big = static_cast<uint32_t>(TensorSize(spec_.tensors(2)));
  const std::vector<uint32_t> indices = {
      0,       1,         2,         127,           128,     129,
      16511,   16512,     (1u << 21) + 200, (1u << 21) + 201,
      (1u << 22) + 3, big - 2, big - 1};
  std::vector<float> values;
  for (size_t i = 0; i < indices.size(); ++i) values.push_back(0.5f + i);
  Update update = NewUpdate(spec_);
  AppendSparseTensor(2, indices, values, &update);
  SealUpdate(&update);

  absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 1u);
  EXPECT_EQ((*decoded)[0].tensor, 2u);
  EXPECT_FALSE((*decoded)[0].dense);
  EXPECT_THAT((*decoded)[0].indices, ElementsAreArray(indices));
  EXPECT_THAT((*decoded)[0].values, ElementsAreArray(values));

  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  const std::vector<float>& t = buffers_.tensor(2);
  size_t next = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (next < indices.size() && i == indices[next]) {
      ASSERT_EQ(t[i], values[next]) << i;
      ++next;
    } else {
      ASSERT_EQ(t[i], 0.0f) << i;
    }
  }
  EXPECT_EQ(next, indices.size());
}

TEST_F(UpdateCodecTest, NeighbouringIndicesCostOneBitEach) {
  // 800 neighbours from index 3: gaps 3, then 799 zeros. Rice parameter 0,
  // so 4 bits, then one bit an index: 803 bits, 101 bytes.
  std::vector<uint32_t> indices(800);
  for (uint32_t i = 0; i < indices.size(); ++i) indices[i] = 3 + i;
  const std::vector<float> values(indices.size(), 1.0f);
  Update update = NewUpdate(spec_);
  ASSERT_EQ(AppendSparseTensor(2, indices, values, &update), 800);
  EXPECT_EQ(update.tensors(0).rice_bits(), 0u);
  EXPECT_LE(update.tensors(0).indices().size(), 101u);
  SealUpdate(&update);
  absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT((*decoded)[0].indices, ElementsAreArray(indices));
}

TEST_F(UpdateCodecTest, IndicesUpToFullUint32RangeDecode) {
  // Decoding needs only the spec, so a 2^32-entry tensor costs no memory.
  ModelSpec spec;
  spec.set_architecture("huge");
  AddTensor("t", {int64_t{1} << 32}, &spec);
  spec.set_fingerprint(ComputeFingerprint(spec));
  const std::vector<uint32_t> indices = {0,          (1u << 21) + 1,
                                         (1u << 28) + 5, (1u << 28) + 6,
                                         0xFFFFFFFEu, 0xFFFFFFFFu};
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  Update update = NewUpdate(spec);
  AppendSparseTensor(0, indices, values, &update);
  SealUpdate(&update);
  absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT((*decoded)[0].indices, ElementsAreArray(indices));
  EXPECT_THAT((*decoded)[0].values, ElementsAreArray(values));
}

TEST_F(UpdateCodecTest, SnapshotWithEveryTensorDenseRoundTrips) {
  Update update = NewUpdate(spec_);
  update.set_snapshot(true);
  update.set_base_version(0);
  *update.mutable_spec() = spec_;
  std::vector<std::vector<float>> expected;
  for (int i = 0; i < spec_.tensors_size(); ++i) {
    std::vector<float> values(TensorSize(spec_.tensors(i)));
    for (size_t j = 0; j < values.size(); ++j) {
      values[j] = static_cast<float>(i) * 1000.0f + static_cast<float>(j % 997);
    }
    AppendDenseTensor(i, values, &update);
    expected.push_back(std::move(values));
  }
  SealUpdate(&update);

  // Through the wire, as a server would receive it.
  std::string wire;
  ASSERT_TRUE(update.SerializeToString(&wire));
  Update received;
  ASSERT_TRUE(received.ParseFromString(wire));
  ASSERT_TRUE(ApplyUpdate(received, spec_, buffers_.Views()).ok());
  for (int i = 0; i < spec_.tensors_size(); ++i) {
    EXPECT_TRUE(buffers_.tensor(i) == expected[i]) << "tensor " << i;
  }
}

TEST_F(UpdateCodecTest, SnapshotMissingATensorIsInvalid) {
  Update update = NewUpdate(spec_);
  update.set_snapshot(true);
  AppendDenseTensor(0, std::vector<float>(20, 1.0f), &update);
  AppendDenseTensor(1, std::vector<float>(5, 1.0f), &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument);
}

TEST_F(UpdateCodecTest, SnapshotWithSparseTensorIsInvalid) {
  Update update = NewUpdate(spec_);
  update.set_snapshot(true);
  AppendDenseTensor(0, std::vector<float>(20, 1.0f), &update);
  AppendDenseTensor(1, std::vector<float>(5, 1.0f), &update);
  AppendSparseTensor(2, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                     &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument);
}

TEST_F(UpdateCodecTest, WrongFingerprintIsFailedPrecondition) {
  Update update = ValidPrefix();
  update.set_fingerprint(spec_.fingerprint() ^ 1);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kFailedPrecondition, "fingerprint");
}

TEST_F(UpdateCodecTest, FlippedValueByteIsDataLoss) {
  Update update = ValidPrefix();
  SealUpdate(&update);
  update.mutable_tensors(1)->mutable_values()->at(2) ^= 0x01;
  ExpectRejected(update, absl::StatusCode::kDataLoss, "checksum");
}

TEST_F(UpdateCodecTest, FlippedIndexByteOrHeaderIsDataLoss) {
  Update update = ValidPrefix();
  SealUpdate(&update);
  Update flipped_index = update;
  flipped_index.mutable_tensors(0)->mutable_indices()->at(1) ^= 0x01;
  ExpectRejected(flipped_index, absl::StatusCode::kDataLoss);
  Update other_version = update;
  other_version.set_version(update.version() + 1);
  ExpectRejected(other_version, absl::StatusCode::kDataLoss);
  Update unsealed = ValidPrefix();
  ExpectRejected(unsealed, absl::StatusCode::kDataLoss);
  Update other_rice_bits = update;
  other_rice_bits.mutable_tensors(0)->set_rice_bits(
      update.tensors(0).rice_bits() + 1);
  ExpectRejected(other_rice_bits, absl::StatusCode::kDataLoss);
  Update other_encoding = update;
  other_encoding.set_encoding(BF16_DELTA);
  ExpectRejected(other_encoding, absl::StatusCode::kDataLoss);

  Update fp16 = ValidPrefix(FP16_DELTA);
  SealUpdate(&fp16);
  Update other_scale = fp16;
  other_scale.mutable_tensors(0)->set_scale_exponent(
      fp16.tensors(0).scale_exponent() - 1);
  ExpectRejected(other_scale, absl::StatusCode::kDataLoss);
}

TEST_F(UpdateCodecTest, ChecksumIgnoresSpecAndModelChecksum) {
  Update update = ValidPrefix();
  SealUpdate(&update);
  const uint64_t sealed = update.checksum();
  *update.mutable_spec() = spec_;
  update.set_model_checksum(12345);
  EXPECT_EQ(PayloadChecksum(update), sealed);
}

TEST_F(UpdateCodecTest, IndexOutOfRangeIsInvalidArgument) {
  Update update = ValidPrefix();
  // "b" has 5 entries; index 5 is one past the end.
  AppendSparseTensor(1, std::vector<uint32_t>{2, 5},
                     std::vector<float>{1.0f, 2.0f}, &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "out of range");
}

TEST_F(UpdateCodecTest, UnaryRunOverflowingTheTensorIsInvalidArgument) {
  {
    // Sixteen one-bits and no terminating zero: a gap of at least 16 in "b"
    // (5 entries).
    Update update = ValidPrefix();
    AppendSparseTensor(1, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                       &update);
    TensorUpdate* t = update.mutable_tensors(2);
    t->set_rice_bits(0);
    t->set_indices(std::string("\xff\xff", 2));
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "out of range");
  }
  {
    // A megabyte of one-bits with parameter 31 against the 2^22 + 10 entries
    // of "big": far beyond the tensor, and beyond uint32.
    Update update = ValidPrefix();
    AppendSparseTensor(2, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                       &update);
    TensorUpdate* t = update.mutable_tensors(2);
    t->set_rice_bits(31);
    t->set_indices(std::string(1 << 20, '\xff'));
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "out of range");
  }
}

TEST_F(UpdateCodecTest, CountNotMatchingValueBytesIsInvalidArgument) {
  {
    Update update = ValidPrefix();
    AppendSparseTensor(0, std::vector<uint32_t>{1, 2},
                       std::vector<float>{1.0f, 2.0f}, &update);
    update.mutable_tensors(2)->set_count(3);  // one more than the values
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "value bytes");
  }
  {
    Update update = ValidPrefix();
    AppendSparseTensor(0, std::vector<uint32_t>{1, 2},
                       std::vector<float>{1.0f, 2.0f}, &update);
    update.mutable_tensors(2)->mutable_values()->pop_back();  // 7 bytes
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "value bytes");
  }
}

TEST_F(UpdateCodecTest, CountLargerThanTensorIsInvalidArgument) {
  Update update = ValidPrefix();
  // 6 distinct indices cannot fit in "b" (5 entries).
  AppendSparseTensor(1, std::vector<uint32_t>{0, 1, 2, 3, 4},
                     std::vector<float>(5, 1.0f), &update);
  TensorUpdate* t = update.mutable_tensors(2);
  t->set_count(6);
  t->mutable_indices()->push_back('\0');
  t->mutable_values()->append(4, '\0');
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument);
}

TEST_F(UpdateCodecTest, TruncatedIndexCodeIsInvalidArgument) {
  {
    // Gap 2^21, parameter 20: "110" and 20 low bits, 3 bytes; the last one
    // cut leaves the low bits short.
    Update update = ValidPrefix();
    AppendSparseTensor(2, std::vector<uint32_t>{1u << 21},
                       std::vector<float>{1.0f}, &update);
    std::string* indices = update.mutable_tensors(2)->mutable_indices();
    ASSERT_EQ(update.tensors(2).rice_bits(), 20u);
    ASSERT_EQ(indices->size(), 3u);
    indices->pop_back();
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "truncated");
  }
  {
    // A unary run that reaches the end of the bytes without its zero-bit.
    Update update = ValidPrefix();
    AppendSparseTensor(2, std::vector<uint32_t>{100, 200},
                       std::vector<float>{1.0f, 2.0f}, &update);
    TensorUpdate* t = update.mutable_tensors(2);
    t->set_rice_bits(0);
    t->set_indices(std::string(3, '\xff'));
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "truncated");
  }
  {
    // Fewer codes than count: no bytes at all for three indices.
    Update update = ValidPrefix();
    AppendSparseTensor(0, std::vector<uint32_t>{1, 2, 3},
                       std::vector<float>{1.0f, 2.0f, 3.0f}, &update);
    ASSERT_EQ(update.tensors(2).indices().size(), 1u);
    update.mutable_tensors(2)->mutable_indices()->clear();
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "truncated");
  }
}

TEST_F(UpdateCodecTest, NonZeroPaddingIsInvalidArgument) {
  Update update = ValidPrefix();
  // Gaps 1, 0 with parameter 0: "10" "0", 3 bits and 5 of padding.
  AppendSparseTensor(0, std::vector<uint32_t>{1, 2},
                     std::vector<float>{1.0f, 2.0f}, &update);
  ASSERT_EQ(update.tensors(2).rice_bits(), 0u);
  ASSERT_EQ(update.tensors(2).indices(), std::string(1, '\x01'));
  update.mutable_tensors(2)->set_indices(std::string(1, '\x81'));
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "padding");
}

TEST_F(UpdateCodecTest, RiceParameterOf32OrMoreIsInvalidArgument) {
  for (uint32_t r : {32u, 33u, 0xffffffffu}) {
    Update update = ValidPrefix();
    AppendSparseTensor(2, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                       &update);
    update.mutable_tensors(2)->set_rice_bits(r);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument,
                   "Rice parameter");
  }
}

TEST_F(UpdateCodecTest, TrailingIndexBytesAreInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(0, std::vector<uint32_t>{1, 2},
                     std::vector<float>{1.0f, 2.0f}, &update);
  update.mutable_tensors(2)->mutable_indices()->push_back('\x00');
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument,
                 "after the last index");
}

TEST_F(UpdateCodecTest, TensorNumberOutOfRangeIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(static_cast<uint32_t>(spec_.tensors_size()),
                     std::vector<uint32_t>{0}, std::vector<float>{1.0f},
                     &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "tensor 3");
}

TEST_F(UpdateCodecTest, DenseCountNotTensorSizeIsInvalidArgument) {
  {
    Update update = ValidPrefix();
    AppendDenseTensor(1, std::vector<float>(4, 1.0f), &update);  // "b" has 5
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "dense");
  }
  {
    Update update = ValidPrefix();
    AppendDenseTensor(1, std::vector<float>(6, 1.0f), &update);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "dense");
  }
}

TEST_F(UpdateCodecTest, DenseTensorWithIndicesIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendDenseTensor(1, std::vector<float>(5, 1.0f), &update);
  update.mutable_tensors(2)->set_indices(std::string("\x00", 1));
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "indices");
}

TEST_F(UpdateCodecTest, UnknownEncodingIsInvalidArgument) {
  Update update = ValidPrefix();
  update.set_encoding(VALUE_ENCODING_UNSPECIFIED);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "encoding");
}

// `count` little-endian 16-bit words, each `bits`.
std::string Words(uint16_t bits, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out.append(reinterpret_cast<const char*>(&bits), 2);
  return out;
}

TEST_F(UpdateCodecTest, NonFiniteFp32ValuesAreInvalidArgument) {
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    // Sparse: the bad value sits after good ones, in the last tensor.
    Update sparse = ValidPrefix();
    AppendSparseTensor(2, std::vector<uint32_t>{4, 9}, std::vector<float>{1.0f, bad},
                       &sparse);
    SealUpdate(&sparse);
    ExpectRejected(sparse, absl::StatusCode::kInvalidArgument, "value 1 of 2");
    // Dense, as in a snapshot.
    Update dense = NewUpdate(spec_);
    std::vector<float> b = {1, 2, 3, 4, 5};
    b[3] = bad;
    AppendDenseTensor(1, b, &dense);
    SealUpdate(&dense);
    ExpectRejected(dense, absl::StatusCode::kInvalidArgument, "must be finite");
  }
}

TEST_F(UpdateCodecTest, NonFiniteHalfValuesAreInvalidArgument) {
  // fp16 infinity and NaN, bf16 infinity and NaN, crafted on the wire (the
  // encoder leaves them out).
  const struct {
    ValueEncoding encoding;
    uint16_t bits;
  } cases[] = {{FP16_DELTA, 0x7c00}, {FP16_DELTA, 0xfe00},
               {BF16_DELTA, 0x7f80}, {BF16_DELTA, 0x7fc0}};
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << ValueEncodingName(c.encoding) << " bits "
                                    << std::hex << c.bits);
    Update update = ValidPrefix(c.encoding);
    ASSERT_GT(AppendSparseTensor(2, std::vector<uint32_t>{4, 9},
                                 std::vector<float>{1.0f, 2.0f}, &update),
              0);
    update.mutable_tensors(2)->set_values(Words(0x3c00, 1) + Words(c.bits, 1));
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "must be finite");
  }
}

TEST_F(UpdateCodecTest, Fp16ScaleExponentOutsideItsRangeIsInvalidArgument) {
  Update base = ValidPrefix(FP16_DELTA);
  ASSERT_EQ(AppendSparseTensor(2, std::vector<uint32_t>{4}, std::vector<float>{1.0f},
                               &base),
            1);
  // fp16 1.0 at the extreme scales is 2^-163 (fp32 rounds it to zero, which
  // is finite) and 2^113: both apply.
  for (const int scale : {kMinFp16ScaleExponent, kMaxFp16ScaleExponent}) {
    Update update = base;
    update.mutable_tensors(2)->set_values(Words(0x3c00, 1));
    update.mutable_tensors(2)->set_scale_exponent(scale);
    SealUpdate(&update);
    EXPECT_TRUE(DecodeUpdate(update, spec_).ok()) << scale;
  }
  for (const int scale : {kMinFp16ScaleExponent - 1, kMaxFp16ScaleExponent + 1,
                          std::numeric_limits<int32_t>::min(),
                          std::numeric_limits<int32_t>::max()}) {
    SCOPED_TRACE(scale);
    Update update = base;
    update.mutable_tensors(2)->set_scale_exponent(scale);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "fp16 scale exponent");
  }
  // In range, but fp16's largest value at the largest scale overflows fp32.
  Update overflow = base;
  overflow.mutable_tensors(2)->set_values(Words(0x7bff, 1));
  overflow.mutable_tensors(2)->set_scale_exponent(kMaxFp16ScaleExponent);
  SealUpdate(&overflow);
  ExpectRejected(overflow, absl::StatusCode::kInvalidArgument, "must be finite");
}

TEST_F(UpdateCodecTest, ScaleExponentOutsideFp16IsInvalidArgument) {
  for (const ValueEncoding encoding : {FP32_ASSIGN, BF16_DELTA}) {
    SCOPED_TRACE(ValueEncodingName(encoding));
    Update update = ValidPrefix(encoding);
    update.mutable_tensors(0)->set_scale_exponent(2);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "only fp16 values");
  }
}

TEST_F(UpdateCodecTest, Fp16EncoderOutputStaysWithinTheDecodersChecks) {
  // The largest and smallest binades pick the extreme scales.
  for (const float extreme : {0x1.8p127f, std::numeric_limits<float>::denorm_min()}) {
    SCOPED_TRACE(extreme);
    Update update = NewUpdate(spec_, FP16_DELTA);
    ASSERT_EQ(AppendSparseTensor(0, std::vector<uint32_t>{1}, std::vector<float>{extreme},
                                 &update),
              1);
    SealUpdate(&update);
    absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(update, spec_);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ((*decoded)[0].values[0], extreme);
  }
  // fp32's largest value rounds up to 2^15 at scale 2^113, which is 2^128:
  // infinity. It is left out, as deltas that round to zero are.
  Update update = NewUpdate(spec_, FP16_DELTA);
  EXPECT_EQ(AppendSparseTensor(0, std::vector<uint32_t>{1, 2},
                               std::vector<float>{std::numeric_limits<float>::max(), 0x1p100f},
                               &update),
            1);
  SealUpdate(&update);
  EXPECT_TRUE(DecodeUpdate(update, spec_).ok());
}

TEST_F(UpdateCodecTest, ValueEncodingNamesAndSizes) {
  EXPECT_EQ(*ParseValueEncoding("fp32"), FP32_ASSIGN);
  EXPECT_EQ(*ParseValueEncoding("fp16"), FP16_DELTA);
  EXPECT_EQ(*ParseValueEncoding("bf16"), BF16_DELTA);
  EXPECT_EQ(ParseValueEncoding("fp8").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsDeltaEncoding(FP32_ASSIGN));
  EXPECT_TRUE(IsDeltaEncoding(FP16_DELTA));
  EXPECT_TRUE(IsDeltaEncoding(BF16_DELTA));
  EXPECT_EQ(ValueBytes(FP32_ASSIGN), 4);
  EXPECT_EQ(ValueBytes(FP16_DELTA), 2);
  EXPECT_EQ(ValueBytes(BF16_DELTA), 2);
}

TEST_F(UpdateCodecTest, Fp32AssignRoundTripsExactly) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<float> values;
  while (values.size() < 20) {
    const float v = BitsFloat32(bits(rng));
    if (!std::isnan(v)) values.push_back(v);  // NaN != NaN in the check below
  }
  std::vector<uint32_t> indices(20);
  for (uint32_t i = 0; i < 20; ++i) indices[i] = i;
  Update update = NewUpdate(spec_);
  ASSERT_EQ(AppendSparseTensor(0, indices, values, &update), 20);
  EXPECT_EQ(update.tensors(0).values().size(), 80u);
  SealUpdate(&update);
  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(SameBits(buffers_.tensor(0)[i], values[i])) << i;
  }
}

TEST_F(UpdateCodecTest, EmptyIndexListAppendsNothing) {
  for (ValueEncoding encoding : {FP32_ASSIGN, FP16_DELTA, BF16_DELTA}) {
    Update update = NewUpdate(spec_, encoding);
    EXPECT_EQ(AppendSparseTensor(0, {}, {}, &update), 0);
    EXPECT_EQ(update.tensors_size(), 0);
  }
}

// The delta encodings, each checked against the reference rounding.
class DeltaEncodingTest
    : public UpdateCodecTest,
      public ::testing::WithParamInterface<ValueEncoding> {};

TEST_P(DeltaEncodingTest, ReplicaAddsTheRoundedDelta) {
  const ValueEncoding encoding = GetParam();
  std::mt19937 rng(99);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> exponent(-40, 4);
  // Start "big" from non-zero values, so that adding differs from assigning.
  TensorViews views = buffers_.Views();
  const uint32_t size = static_cast<uint32_t>(views[2].size());
  for (uint32_t i = 0; i < size; i += 97) views[2][i] = normal(rng);
  const std::vector<float> before = buffers_.tensor(2);

  // Deltas over 45 binades: the smallest round to zero in fp16 and drop out.
  std::vector<uint32_t> indices;
  std::vector<float> deltas;
  for (uint32_t i = 5; i < size; i += 1 + i % 5000) {
    indices.push_back(i);
    deltas.push_back(std::ldexp(normal(rng), exponent(rng)));
  }
  Update update = NewUpdate(spec_, encoding);
  const int64_t appended = AppendSparseTensor(2, indices, deltas, &update);
  ASSERT_EQ(update.tensors_size(), 1);
  const TensorUpdate& t = update.tensors(0);
  EXPECT_EQ(static_cast<int64_t>(t.count()), appended);
  EXPECT_EQ(t.values().size(), 2u * t.count());

  int scale_exponent = 0;
  if (encoding == FP16_DELTA) {
    // The largest delta lands in [2^14, 2^15) after scaling.
    float largest = 0;
    for (float d : deltas) largest = std::max(largest, std::fabs(d));
    scale_exponent = t.scale_exponent();
    const float scaled = std::ldexp(largest, -scale_exponent);
    EXPECT_GE(scaled, 16384.0f);
    EXPECT_LT(scaled, 32768.0f);
  } else {
    EXPECT_EQ(t.scale_exponent(), 0);
  }

  std::vector<uint32_t> kept_indices;
  std::vector<float> kept_deltas;
  for (size_t i = 0; i < indices.size(); ++i) {
    const float expected = ExpectedDelta(encoding, scale_exponent, deltas[i]);
    if (expected == 0) continue;
    kept_indices.push_back(indices[i]);
    kept_deltas.push_back(expected);
  }
  EXPECT_EQ(appended, static_cast<int64_t>(kept_indices.size()));
  if (encoding == FP16_DELTA) {
    EXPECT_LT(kept_indices.size(), indices.size()) << "nothing was dropped";
  }

  SealUpdate(&update);
  absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 1u);
  EXPECT_TRUE((*decoded)[0].add);
  EXPECT_FALSE((*decoded)[0].dense);
  EXPECT_THAT((*decoded)[0].indices, ElementsAreArray(kept_indices));
  ASSERT_EQ((*decoded)[0].values.size(), kept_deltas.size());
  for (size_t i = 0; i < kept_deltas.size(); ++i) {
    ASSERT_TRUE(SameBits((*decoded)[0].values[i], kept_deltas[i]))
        << "delta " << i << ": decoded " << (*decoded)[0].values[i]
        << ", expected " << kept_deltas[i];
  }

  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  const std::vector<float>& after = buffers_.tensor(2);
  size_t next = 0;
  for (uint32_t i = 0; i < size; ++i) {
    float expected = before[i];
    if (next < kept_indices.size() && kept_indices[next] == i) {
      expected = before[i] + kept_deltas[next];
      ++next;
    }
    ASSERT_TRUE(SameBits(after[i], expected))
        << "entry " << i << ": " << after[i] << ", expected " << expected;
  }
}

TEST_P(DeltaEncodingTest, DeltasRoundingToZeroOrNotFiniteAreDropped) {
  const ValueEncoding encoding = GetParam();
  const float inf = std::numeric_limits<float>::infinity();
  // Rounds to zero: in fp16 at the scale set by 1.0, anything below 2^-39
  // (half the smallest subnormal, 2^-24, times 2^-14); in bf16, anything
  // below 2^-134, such as fp32's smallest subnormal 2^-149.
  const float tiny = encoding == FP16_DELTA
                         ? 1e-13f
                         : std::numeric_limits<float>::denorm_min();
  const std::vector<uint32_t> indices = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<float> values = {1.0f, tiny, 0.0f, -0.0f,
                                     std::nanf(""), inf, -inf, -0.5f};
  Update update = NewUpdate(spec_, encoding);
  EXPECT_EQ(AppendSparseTensor(0, indices, values, &update), 2);
  SealUpdate(&update);
  absl::StatusOr<std::vector<DecodedTensor>> decoded =
      DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT((*decoded)[0].indices, ElementsAre(0u, 7u));
  EXPECT_THAT((*decoded)[0].values, ElementsAre(1.0f, -0.5f));

  // Nothing left: nothing appended.
  Update empty = NewUpdate(spec_, encoding);
  EXPECT_EQ(AppendSparseTensor(0, std::vector<uint32_t>{2, 3, 4, 5},
                               std::vector<float>{0.0f, -0.0f, inf, std::nanf("")},
                               &empty),
            0);
  EXPECT_EQ(empty.tensors_size(), 0);
}

TEST_P(DeltaEncodingTest, DenseTensorIsInvalidArgument) {
  Update update = ValidPrefix(GetParam());
  AppendDenseTensor(1, std::vector<float>(5, 1.0f), &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "not fp32");
}

TEST_P(DeltaEncodingTest, SnapshotIsInvalidArgument) {
  Update update = NewUpdate(spec_, GetParam());
  update.set_snapshot(true);
  update.set_base_version(0);
  for (int i = 0; i < spec_.tensors_size(); ++i) {
    AppendDenseTensor(i, std::vector<float>(TensorSize(spec_.tensors(i)), 1.0f),
                      &update);
  }
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "snapshots are fp32");
}

TEST_P(DeltaEncodingTest, ValueBytesMustBeTwicePerEntry) {
  {
    Update update = ValidPrefix(GetParam());
    update.mutable_tensors(1)->mutable_values()->pop_back();
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "value bytes");
  }
  {
    // Four bytes an entry, as FP32_ASSIGN would carry.
    Update update = ValidPrefix(GetParam());
    update.mutable_tensors(1)->mutable_values()->append(10, '\0');
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "value bytes");
  }
}

TEST_P(DeltaEncodingTest, LossyMirrorConvergesToTheTrainerBitForBit) {
  // A trainer's buffer and a mirror that starts elsewhere. Each round sends
  // every entry where they differ, as trainer - mirror, and the mirror adds
  // what arrives: the rounding error of one round is the next round's delta,
  // until nothing is left.
  ModelSpec spec;
  spec.set_architecture("mirror");
  AddTensor("a", {300, 100}, &spec);  // mixed magnitudes
  AddTensor("c", {1000}, &spec);      // all small
  AddTensor("d", {7}, &spec);         // large
  spec.set_fingerprint(ComputeFingerprint(spec));
  Buffers trainer(spec);
  Buffers mirror(spec);
  std::mt19937 rng(4242);
  std::normal_distribution<float> normal;
  std::bernoulli_distribution small(0.2);
  TensorViews t = trainer.Views();
  TensorViews m = mirror.Views();
  for (size_t i = 0; i < t[0].size(); ++i) {
    t[0][i] = normal(rng) * (small(rng) ? 1e-3f : 0.1f);
    m[0][i] = normal(rng) * 0.1f;
  }
  for (size_t i = 0; i < t[1].size(); ++i) {
    t[1][i] = normal(rng) * 1e-3f;
    m[1][i] = normal(rng) * 1e-3f;
  }
  for (size_t i = 0; i < t[2].size(); ++i) {
    t[2][i] = normal(rng) * 100.0f;
    m[2][i] = normal(rng);
  }
  // A few entries equal from the start, and a few far apart.
  m[0][0] = t[0][0];
  m[0][1] = t[0][1] * 1000.0f;
  m[1][2] = -t[1][2];

  const ValueEncoding encoding = GetParam();
  int rounds = 0;
  for (; rounds < 12; ++rounds) {
    Update update = NewUpdate(spec, encoding);
    int64_t differing = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      std::vector<uint32_t> indices;
      std::vector<float> deltas;
      for (size_t i = 0; i < t[k].size(); ++i) {
        if (t[k][i] != m[k][i]) {
          indices.push_back(static_cast<uint32_t>(i));
          deltas.push_back(t[k][i] - m[k][i]);
        }
      }
      differing += static_cast<int64_t>(indices.size());
      AppendSparseTensor(static_cast<uint32_t>(k), indices, deltas, &update);
    }
    if (differing == 0) break;
    SealUpdate(&update);
    ASSERT_TRUE(ApplyUpdate(update, spec, m).ok());
  }
  EXPECT_LT(rounds, 12) << "the mirror did not converge";
  for (size_t k = 0; k < t.size(); ++k) {
    for (size_t i = 0; i < t[k].size(); ++i) {
      ASSERT_TRUE(SameBits(t[k][i], m[k][i]))
          << "tensor " << k << " entry " << i << ": trainer " << t[k][i]
          << ", mirror " << m[k][i];
    }
  }
  EXPECT_EQ(trainer.Checksum(), mirror.Checksum());
}

INSTANTIATE_TEST_SUITE_P(Fp16AndBf16, DeltaEncodingTest,
                         ::testing::Values(FP16_DELTA, BF16_DELTA),
                         [](const ::testing::TestParamInfo<ValueEncoding>& info) {
                           return std::string(ValueEncoding_Name(info.param));
                         });

// Every encoding: truncated bytes fail cleanly and never touch the model.
class EveryEncodingTest
    : public UpdateCodecTest,
      public ::testing::WithParamInterface<ValueEncoding> {};

TEST_P(EveryEncodingTest, EveryTruncationOfTheWireBytesFailsCleanly) {
  // No spec or model_checksum: checksum (field 7) is serialised last, so no
  // proper prefix carries a complete, matching payload.
  Update update = ValidPrefix(GetParam());
  AppendSparseTensor(2, std::vector<uint32_t>{5, (1u << 21) + 9},
                     std::vector<float>{7.0f, 8.0f}, &update);
  SealUpdate(&update);
  std::string wire;
  ASSERT_TRUE(update.SerializeToString(&wire));

  const uint64_t zero = buffers_.Checksum();
  int parsed_prefixes = 0;
  for (size_t length = 0; length <= wire.size(); ++length) {
    SCOPED_TRACE(testing::Message() << "prefix of " << length << " of "
                                    << wire.size() << " bytes");
    Update received;
    if (!received.ParseFromString(wire.substr(0, length))) continue;
    ++parsed_prefixes;
    const absl::Status status = ApplyUpdate(received, spec_, buffers_.Views());
    if (length < wire.size()) {
      EXPECT_FALSE(status.ok());
      EXPECT_TRUE(status.code() == absl::StatusCode::kFailedPrecondition ||
                  status.code() == absl::StatusCode::kDataLoss ||
                  status.code() == absl::StatusCode::kInvalidArgument)
          << status;
      ASSERT_EQ(buffers_.Checksum(), zero);
    } else {
      EXPECT_TRUE(status.ok()) << status;
    }
  }
  EXPECT_GT(parsed_prefixes, 1);
  EXPECT_NE(buffers_.Checksum(), zero);  // the full message applied
  EXPECT_EQ(buffers_.tensor(2)[(1u << 21) + 9], 8.0f);
  EXPECT_EQ(buffers_.tensor(1)[4], 5.0f);
}

TEST_P(EveryEncodingTest, EveryTruncationOfTensorFieldsFailsCleanly) {
  // Truncate each tensor's indices and values at every length and re-seal, so
  // that only the codec's own checks stand between the bytes and the model.
  Update base = ValidPrefix(GetParam());
  AppendSparseTensor(2, std::vector<uint32_t>{0, 300, (1u << 21) + 9},
                     std::vector<float>{1.0f, 2.0f, 3.0f}, &base);
  for (int t = 0; t < base.tensors_size(); ++t) {
    for (bool truncate_values : {false, true}) {
      const std::string& field = truncate_values ? base.tensors(t).values()
                                                 : base.tensors(t).indices();
      for (size_t length = 0; length < field.size(); ++length) {
        SCOPED_TRACE(testing::Message()
                     << "tensor " << t << (truncate_values ? " values" : " indices")
                     << " cut to " << length);
        Update update = base;
        TensorUpdate* tu = update.mutable_tensors(t);
        std::string* bytes =
            truncate_values ? tu->mutable_values() : tu->mutable_indices();
        bytes->resize(length);
        SealUpdate(&update);
        ExpectRejected(update, absl::StatusCode::kInvalidArgument,
                       truncate_values ? "value bytes" : "truncated");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllEncodings, EveryEncodingTest,
                         ::testing::Values(FP32_ASSIGN, FP16_DELTA, BF16_DELTA),
                         [](const ::testing::TestParamInfo<ValueEncoding>& info) {
                           return std::string(ValueEncoding_Name(info.param));
                         });

// ---------------------------------------------------- the model-wide form ----

// Entries in every tensor, as (tensor, indices, values): values exact in
// fp16 (under one scale per tensor) and bf16, "big" spanning the 2^21 gap.
struct Entries {
  uint32_t tensor;
  std::vector<uint32_t> indices;
  std::vector<float> values;
};

std::vector<Entries> EntriesInEveryTensor() {
  return {{0, {0, 3, 19}, {1.5f, -2.0f, 3.25f}},
          {1, {4}, {-0.5f}},
          {2, {0, 300, (1u << 21) + 9, (1u << 22) + 9}, {1.0f, 2.0f, 3.0f, -4.0f}}};
}

Update ModelWide(const ModelSpec& spec, ValueEncoding encoding,
                 const std::vector<Entries>& entries) {
  Update update = NewUpdate(spec, encoding);
  SparseUpdateWriter writer(spec, &update);
  for (const Entries& e : entries) writer.Append(e.tensor, e.indices, e.values);
  writer.Finish();
  SealUpdate(&update);
  return update;
}

Update PerTensor(const ModelSpec& spec, ValueEncoding encoding,
                 const std::vector<Entries>& entries) {
  Update update = NewUpdate(spec, encoding);
  for (const Entries& e : entries) {
    AppendSparseTensor(e.tensor, e.indices, e.values, &update);
  }
  SealUpdate(&update);
  return update;
}

TEST_P(EveryEncodingTest, ModelWideFormDecodesAsThePerTensorFormBitForBit) {
  const std::vector<Entries> entries = EntriesInEveryTensor();
  const Update compact = ModelWide(spec_, GetParam(), entries);
  const Update legacy = PerTensor(spec_, GetParam(), entries);
  EXPECT_EQ(compact.tensors_size(), 0);
  EXPECT_EQ(compact.sparse().count(), 8u);
  EXPECT_EQ(UpdateEntries(compact), 8);
  EXPECT_EQ(UpdateEntries(legacy), 8);
  EXPECT_LT(compact.ByteSizeLong(), legacy.ByteSizeLong());

  const absl::StatusOr<std::vector<DecodedTensor>> a = DecodeUpdate(compact, spec_);
  const absl::StatusOr<std::vector<DecodedTensor>> b = DecodeUpdate(legacy, spec_);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->size(), 3u);
  ASSERT_EQ(a->size(), b->size());
  for (size_t t = 0; t < a->size(); ++t) {
    EXPECT_EQ((*a)[t].tensor, (*b)[t].tensor);
    EXPECT_EQ((*a)[t].tensor, entries[t].tensor);
    EXPECT_FALSE((*a)[t].dense);
    EXPECT_EQ((*a)[t].add, IsDeltaEncoding(GetParam()));
    EXPECT_THAT((*a)[t].indices, ElementsAreArray(entries[t].indices));
    ASSERT_EQ((*a)[t].values.size(), (*b)[t].values.size());
    for (size_t i = 0; i < (*a)[t].values.size(); ++i) {
      EXPECT_TRUE(SameBits((*a)[t].values[i], (*b)[t].values[i]))
          << "tensor " << t << " entry " << i;
      EXPECT_EQ((*a)[t].values[i], entries[t].values[i]);
    }
  }
  Buffers other(spec_);
  ASSERT_TRUE(ApplyUpdate(compact, spec_, buffers_.Views()).ok());
  ASSERT_TRUE(ApplyUpdate(legacy, spec_, other.Views()).ok());
  EXPECT_EQ(buffers_.Checksum(), other.Checksum());
  EXPECT_EQ(buffers_.tensor(2)[(1u << 22) + 9], -4.0f);
}

TEST_F(UpdateCodecTest, ModelWideFp32KeepsEveryBitPattern) {
  const std::vector<Entries> entries = {
      {0, {1, 2, 3}, {-0.0f, BitsFloat32(0x00000001), std::numeric_limits<float>::max()}},
      {2, {7}, {BitsFloat32(0x3f800001)}}};
  const Update update = ModelWide(spec_, FP32_ASSIGN, entries);
  ASSERT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
  EXPECT_TRUE(SameBits(buffers_.tensor(0)[1], -0.0f));
  EXPECT_TRUE(SameBits(buffers_.tensor(0)[2], BitsFloat32(0x00000001)));
  EXPECT_TRUE(SameBits(buffers_.tensor(0)[3], std::numeric_limits<float>::max()));
  EXPECT_TRUE(SameBits(buffers_.tensor(2)[7], BitsFloat32(0x3f800001)));
}

TEST_F(UpdateCodecTest, ModelWideFp16ScalesEachTensorOnItsOwn) {
  // One tensor's differences are 2^20 times the other's: a shared scale
  // would flush the small ones to zero.
  const float small = 3e-6f;
  const float large = 3.0f;
  const std::vector<Entries> entries = {{0, {2}, {small}}, {2, {9}, {large}}};
  const Update update = ModelWide(spec_, FP16_DELTA, entries);
  ASSERT_EQ(update.sparse().scale_exponents_size(), 2);
  const absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[0].values[0],
            ExpectedDelta(FP16_DELTA, update.sparse().scale_exponents(0), small));
  EXPECT_NEAR((*decoded)[0].values[0], small, small * 1e-3);
  EXPECT_NEAR((*decoded)[1].values[0], large, large * 1e-3);
}

TEST_P(DeltaEncodingTest, ModelWideDropsDeltasThatRoundToZeroOrAreNotFinite) {
  // Rounds to zero at the scale set by 1.0 (see the per-tensor test above).
  const float tiny = GetParam() == FP16_DELTA ? 1e-13f
                                              : std::numeric_limits<float>::denorm_min();
  Update update = NewUpdate(spec_, GetParam());
  SparseUpdateWriter writer(spec_, &update);
  EXPECT_EQ(writer.Append(0, std::vector<uint32_t>{1, 2},
                          std::vector<float>{std::nanf(""), -INFINITY}),
            0);
  EXPECT_EQ(writer.Append(2, std::vector<uint32_t>{3, 4}, std::vector<float>{1.0f, tiny}),
            1);
  writer.Finish();
  SealUpdate(&update);
  EXPECT_EQ(update.sparse().count(), 1u);
  EXPECT_EQ(update.sparse().scale_exponents_size(), GetParam() == FP16_DELTA ? 1 : 0);
  const absl::StatusOr<std::vector<DecodedTensor>> decoded = DecodeUpdate(update, spec_);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), 1u);
  EXPECT_EQ((*decoded)[0].tensor, 2u);
  EXPECT_THAT((*decoded)[0].indices, ElementsAre(3u));
}

TEST_F(UpdateCodecTest, ModelWideWriterWithNoEntriesWritesNothing) {
  Update update = NewUpdate(spec_);
  SparseUpdateWriter writer(spec_, &update);
  EXPECT_EQ(writer.Append(1, {}, {}), 0);
  writer.Finish();
  EXPECT_FALSE(update.has_sparse());
  EXPECT_EQ(update.tensors_size(), 0);
}

TEST_F(UpdateCodecTest, ModelWideFormSavesThePerTensorFraming) {
  // One entry in each of many small tensors: the shape of a small model's
  // update at 0.1 % with at least one entry per tensor.
  ModelSpec spec;
  spec.set_architecture("many");
  spec.add_input_shape(1);
  spec.set_num_classes(1);
  std::vector<Entries> entries;
  for (uint32_t t = 0; t < 10; ++t) {
    AddTensor(absl::StrCat("t", t), {1000}, &spec);
    entries.push_back({t, {t * 37}, {static_cast<float>(t) + 0.5f}});
  }
  spec.set_fingerprint(ComputeFingerprint(spec));
  const Update compact = ModelWide(spec, FP32_ASSIGN, entries);
  const Update legacy = PerTensor(spec, FP32_ASSIGN, entries);
  // Per tensor: tag, length, tensor, count, rice_bits, two byte-field
  // headers and a padded index code of its own (about 12 bytes); model-wide:
  // one section of about 8 bytes plus 1.5 bytes of index per entry.
  EXPECT_LE(compact.ByteSizeLong() + 70, legacy.ByteSizeLong());
}

TEST_P(EveryEncodingTest, WriterSendsThePerTensorFormWhenItIsSmaller) {
  // All of "w" (neighbours: one bit each under its own Rice parameter) and
  // two entries 2^21 apart in "big": one model-wide parameter would spend
  // about 20 bits on each of w's entries.
  std::vector<Entries> entries = {{0, {}, {}}, {2, {7, (1u << 21) + 9}, {1.0f, -2.0f}}};
  for (uint32_t i = 0; i < 20; ++i) {
    entries[0].indices.push_back(i);
    entries[0].values.push_back(0.25f * static_cast<float>(i + 1));
  }
  const Update written = ModelWide(spec_, GetParam(), entries);
  const Update legacy = PerTensor(spec_, GetParam(), entries);
  EXPECT_FALSE(written.has_sparse());
  ASSERT_EQ(written.tensors_size(), 2);
  // Exactly what AppendSparseTensor writes.
  EXPECT_EQ(written.SerializeAsString(), legacy.SerializeAsString());
  ASSERT_TRUE(ApplyUpdate(written, spec_, buffers_.Views()).ok());
  EXPECT_EQ(buffers_.tensor(0)[19], 5.0f);
  EXPECT_EQ(buffers_.tensor(2)[(1u << 21) + 9], -2.0f);
}

TEST_F(UpdateCodecTest, ModelWideFlatPositionOutOfRangeIsInvalidArgument) {
  Update update = NewUpdate(spec_);
  SparseEntries* sparse = update.mutable_sparse();
  const uint32_t size = 20 + 5 + (1u << 22) + 10;
  const std::vector<uint32_t> flat = {3, size};
  sparse->set_count(2);
  sparse->set_rice_bits(ChooseRiceBits(flat));
  EncodeIndices(flat, sparse->rice_bits(), sparse->mutable_indices());
  sparse->set_values(std::string(8, '\0'));
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "out of range");

  // The last valid position applies.
  sparse->clear_indices();
  const std::vector<uint32_t> last = {3, size - 1};
  sparse->set_rice_bits(ChooseRiceBits(last));
  EncodeIndices(last, sparse->rice_bits(), sparse->mutable_indices());
  SealUpdate(&update);
  EXPECT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
}

TEST_P(EveryEncodingTest, ModelWideCountMismatchesAreInvalidArgument) {
  const Update base = ModelWide(spec_, GetParam(), EntriesInEveryTensor());
  {
    Update update = base;
    update.mutable_sparse()->set_count(9);  // one more than the values
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "value bytes");
  }
  {
    Update update = base;
    update.mutable_sparse()->set_count(7);
    update.mutable_sparse()->mutable_values()->resize(7 * ValueBytes(GetParam()));
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "after the last index");
  }
  {
    Update update = base;
    update.mutable_sparse()->set_count(std::numeric_limits<uint32_t>::max());
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "the model has only");
  }
}

TEST_P(EveryEncodingTest, EveryTruncationOfModelWideFieldsFailsCleanly) {
  const Update base = ModelWide(spec_, GetParam(), EntriesInEveryTensor());
  for (bool truncate_values : {false, true}) {
    const std::string& field =
        truncate_values ? base.sparse().values() : base.sparse().indices();
    for (size_t length = 0; length < field.size(); ++length) {
      SCOPED_TRACE(testing::Message() << (truncate_values ? "values" : "indices")
                                      << " cut to " << length);
      Update update = base;
      SparseEntries* sparse = update.mutable_sparse();
      (truncate_values ? sparse->mutable_values() : sparse->mutable_indices())
          ->resize(length);
      SealUpdate(&update);
      ExpectRejected(update, absl::StatusCode::kInvalidArgument,
                     truncate_values ? "value bytes" : "truncated");
    }
  }
}

TEST_P(EveryEncodingTest, EveryTruncationOfModelWideWireBytesFailsCleanly) {
  const Update update = ModelWide(spec_, GetParam(), EntriesInEveryTensor());
  std::string wire;
  ASSERT_TRUE(update.SerializeToString(&wire));
  const uint64_t zero = buffers_.Checksum();
  for (size_t length = 0; length < wire.size(); ++length) {
    Update received;
    if (!received.ParseFromString(wire.substr(0, length))) continue;
    const absl::Status status = ApplyUpdate(received, spec_, buffers_.Views());
    EXPECT_TRUE(status.code() == absl::StatusCode::kDataLoss ||
                status.code() == absl::StatusCode::kInvalidArgument ||
                status.code() == absl::StatusCode::kFailedPrecondition)
        << "prefix of " << length << ": " << status;
    ASSERT_EQ(buffers_.Checksum(), zero);
  }
  EXPECT_TRUE(ApplyUpdate(update, spec_, buffers_.Views()).ok());
}

TEST_P(EveryEncodingTest, EveryFlippedModelWideBitIsDataLoss) {
  const Update base = ModelWide(spec_, GetParam(), EntriesInEveryTensor());
  for (bool values : {false, true}) {
    const size_t size =
        values ? base.sparse().values().size() : base.sparse().indices().size();
    for (size_t byte = 0; byte < size; ++byte) {
      Update update = base;
      SparseEntries* sparse = update.mutable_sparse();
      (values ? sparse->mutable_values() : sparse->mutable_indices())->at(byte) ^= 0x10;
      ExpectRejected(update, absl::StatusCode::kDataLoss, "checksum");
    }
  }
  Update rice = base;
  rice.mutable_sparse()->set_rice_bits(base.sparse().rice_bits() + 1);
  ExpectRejected(rice, absl::StatusCode::kDataLoss, "checksum");
  Update count = base;
  count.mutable_sparse()->set_count(7);
  ExpectRejected(count, absl::StatusCode::kDataLoss, "checksum");
  Update scales = base;
  scales.mutable_sparse()->add_scale_exponents(0);
  ExpectRejected(scales, absl::StatusCode::kDataLoss, "checksum");
}

TEST_F(UpdateCodecTest, ModelWideBesidePerTensorEntriesIsInvalidArgument) {
  Update update = ModelWide(spec_, FP32_ASSIGN, EntriesInEveryTensor());
  AppendSparseTensor(1, std::vector<uint32_t>{1}, std::vector<float>{1.0f}, &update);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "beside per-tensor");

  Update snapshot = NewUpdate(spec_);
  snapshot.set_snapshot(true);
  snapshot.set_base_version(0);
  for (uint32_t t = 0; t < 3; ++t) {
    AppendDenseTensor(t, std::vector<float>(TensorSize(spec_.tensors(t)), 1.0f), &snapshot);
  }
  *snapshot.mutable_sparse() = ModelWide(spec_, FP32_ASSIGN, EntriesInEveryTensor()).sparse();
  SealUpdate(&snapshot);
  ExpectRejected(snapshot, absl::StatusCode::kInvalidArgument, "beside a snapshot");
}

TEST_F(UpdateCodecTest, ModelWideScaleExponentsMustMatchTheTensors) {
  const Update base = ModelWide(spec_, FP16_DELTA, EntriesInEveryTensor());
  ASSERT_EQ(base.sparse().scale_exponents_size(), 3);
  {
    Update update = base;
    update.mutable_sparse()->mutable_scale_exponents()->RemoveLast();
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "more tensors than");
  }
  {
    Update update = base;
    update.mutable_sparse()->add_scale_exponents(0);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "scale exponents for");
  }
  {
    Update update = base;
    update.mutable_sparse()->set_scale_exponents(1, kMaxFp16ScaleExponent + 1);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "outside");
  }
  for (ValueEncoding encoding : {FP32_ASSIGN, BF16_DELTA}) {
    Update update = ModelWide(spec_, encoding, EntriesInEveryTensor());
    update.mutable_sparse()->add_scale_exponents(0);
    SealUpdate(&update);
    ExpectRejected(update, absl::StatusCode::kInvalidArgument, "scale exponents for");
  }
}

TEST_F(UpdateCodecTest, ModelWideNonFiniteValueIsInvalidArgument) {
  Update update = ModelWide(spec_, FP32_ASSIGN, EntriesInEveryTensor());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&update.mutable_sparse()->mutable_values()->at(4 * 5), &nan, 4);
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "must be finite");
}

TEST_F(UpdateCodecTest, PerTensorUpdatesKeepTheirChecksum) {
  // Update logs written before the model-wide form hold per-tensor updates
  // sealed with the old checksum: an update without the section must hash
  // exactly as before, so that those logs still replay.
  Update update = ValidPrefix();
  SealUpdate(&update);
  const uint64_t sealed = update.checksum();
  update.mutable_sparse();  // present, even if empty, changes the payload
  EXPECT_NE(PayloadChecksum(update), sealed);
  update.clear_sparse();
  EXPECT_EQ(PayloadChecksum(update), sealed);
}

}  // namespace
}  // namespace contrail
