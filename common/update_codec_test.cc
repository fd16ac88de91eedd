#include "common/update_codec.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
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

Update NewUpdate(const ModelSpec& spec) {
  Update update;
  update.set_version(7);
  update.set_base_version(6);
  update.set_fingerprint(spec.fingerprint());
  update.set_encoding(FP32_ASSIGN);
  return update;
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
  Update ValidPrefix() {
    Update update = NewUpdate(spec_);
    const std::vector<uint32_t> indices = {0, 3, 19};
    const std::vector<float> values = {1.5f, -2.0f, 3.25f};
    AppendSparseTensor(0, indices, values, &update);
    AppendDenseTensor(1, std::vector<float>{1, 2, 3, 4, 5}, &update);
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

TEST_F(UpdateCodecTest, NeighbouringIndicesCostOneByteEach) {
  Update update = NewUpdate(spec_);
  AppendSparseTensor(0, std::vector<uint32_t>{3, 4, 5, 6},
                     std::vector<float>{1, 2, 3, 4}, &update);
  // Gaps 3, 0, 0, 0.
  EXPECT_EQ(update.tensors(0).indices(), std::string("\x03\x00\x00\x00", 4));
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

TEST_F(UpdateCodecTest, HugeGapOverflowingTheTensorIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(1, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                     &update);
  // Gap 0xFFFFFFFF after index 1: far beyond the tensor, and beyond uint32.
  TensorUpdate* t = update.mutable_tensors(2);
  t->set_indices(std::string("\x01\xff\xff\xff\xff\x0f", 6));
  t->set_count(2);
  t->set_values(std::string(8, '\0'));
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "out of range");
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

TEST_F(UpdateCodecTest, TruncatedVarintIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(2, std::vector<uint32_t>{1u << 21},
                     std::vector<float>{1.0f}, &update);
  std::string* indices = update.mutable_tensors(2)->mutable_indices();
  ASSERT_EQ(indices->size(), 4u);
  indices->pop_back();  // the last byte still has its continuation bit set
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "varint");
}

TEST_F(UpdateCodecTest, FewerIndicesThanCountIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(0, std::vector<uint32_t>{1, 2, 3},
                     std::vector<float>{1.0f, 2.0f, 3.0f}, &update);
  update.mutable_tensors(2)->mutable_indices()->pop_back();
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "varint");
}

TEST_F(UpdateCodecTest, OverlongVarintIsInvalidArgument) {
  Update update = ValidPrefix();
  AppendSparseTensor(2, std::vector<uint32_t>{1}, std::vector<float>{1.0f},
                     &update);
  // Six bytes, continuation on all but the last: over 32 bits.
  update.mutable_tensors(2)->set_indices(
      std::string("\x80\x80\x80\x80\x80\x00", 6));
  SealUpdate(&update);
  ExpectRejected(update, absl::StatusCode::kInvalidArgument, "varint");
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

TEST_F(UpdateCodecTest, EveryTruncationOfTheWireBytesFailsCleanly) {
  // No spec or model_checksum: checksum (field 7) is serialised last, so no
  // proper prefix carries a complete, matching payload.
  Update update = ValidPrefix();
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
}

TEST_F(UpdateCodecTest, EveryTruncationOfTensorFieldsFailsCleanly) {
  // Truncate each tensor's indices and values at every length and re-seal, so
  // that only the codec's own checks stand between the bytes and the model.
  Update base = ValidPrefix();
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
        ExpectRejected(update, absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

}  // namespace
}  // namespace contrail
