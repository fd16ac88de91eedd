#include "common/idx_reader.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/idx_writer.h"

namespace contrail {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kRealFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Each test writes its files into a fresh directory of its own.
class IdxReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info =
        ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = absl::StrCat(::testing::TempDir(), "/idx_reader_test/",
                        info->test_suite_name(), ".", info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }

  // Seeded random bytes: incompressible enough that the gzip stream is long
  // and has compressed data to cut or corrupt in its middle.
  std::vector<uint8_t> RandomBytes(size_t n, uint8_t max = 255) {
    std::uniform_int_distribution<int> byte(0, max);
    std::vector<uint8_t> bytes(n);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng_));
    return bytes;
  }

  // Writes a valid gzipped pair of `count` 28x28 images with
  // `<name>-images` / `<name>-labels` file names.
  void WriteValidPair(const std::string& name, uint32_t count) {
    ASSERT_TRUE(test::WriteGzipFile(
                    Path(name + "-images"),
                    test::EncodeIdxImages(count, 28, 28,
                                          RandomBytes(count * 28 * 28, 63)))
                    .ok());
    ASSERT_TRUE(
        test::WriteGzipFile(Path(name + "-labels"),
                            test::EncodeIdxLabels(RandomBytes(count, 9)))
            .ok());
  }

  absl::StatusOr<LabelledImages> ReadPair(const std::string& name) {
    return ReadIdxPair(Path(name + "-images"), Path(name + "-labels"));
  }

  std::string dir_;
  std::mt19937 rng_{20240611};
};

TEST_F(IdxReaderTest, ReadsWrittenPairExactly) {
  const std::vector<uint8_t> pixels = {0,  1,   2,  127, 128, 254, 255, 0,
                                       17, 200, 3,  99,  255, 255, 255, 0,
                                       0,  0,   42, 43,  44,  45,  46,  47};
  const std::vector<uint8_t> labels = {0, 9, 255, 7};
  ASSERT_TRUE(test::WriteIdxPair(dir_, "train", 2, 3, pixels, labels).ok());

  absl::StatusOr<LabelledImages> data = ReadFashionMnist(dir_, true);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->count, 4);
  EXPECT_EQ(data->rows, 2);
  EXPECT_EQ(data->cols, 3);
  EXPECT_EQ(data->example_size(), 6);
  ASSERT_EQ(data->pixels.size(), pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    EXPECT_EQ(data->pixels[i], static_cast<float>(pixels[i]) / 255.0f)
        << "pixel " << i;
  }
  EXPECT_EQ(data->labels, std::vector<int32_t>({0, 9, 255, 7}));
}

TEST_F(IdxReaderTest, ReadsUncompressedFiles) {
  ASSERT_TRUE(
      test::WriteRawFile(Path("plain-images"),
                         test::EncodeIdxImages(2, 1, 2, {0, 51, 102, 255}))
          .ok());
  ASSERT_TRUE(
      test::WriteRawFile(Path("plain-labels"), test::EncodeIdxLabels({3, 4}))
          .ok());

  absl::StatusOr<LabelledImages> data = ReadPair("plain");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->pixels, std::vector<float>({0.0f, 0.2f, 0.4f, 1.0f}));
  EXPECT_EQ(data->labels, std::vector<int32_t>({3, 4}));
}

TEST_F(IdxReaderTest, ReadsEmptySet) {
  ASSERT_TRUE(test::WriteIdxPair(dir_, "t10k", 28, 28, {}, {}).ok());

  absl::StatusOr<LabelledImages> data = ReadFashionMnist(dir_, false);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->count, 0);
  EXPECT_EQ(data->example_size(), 28 * 28);
  EXPECT_TRUE(data->pixels.empty());
  EXPECT_TRUE(data->labels.empty());
}

TEST_F(IdxReaderTest, ReadsSyntheticFashionMnist) {
  ASSERT_TRUE(test::WriteSyntheticFashionMnist(dir_, 200, 50, 7).ok());

  absl::StatusOr<LabelledImages> train = ReadFashionMnist(dir_, true);
  ASSERT_TRUE(train.ok()) << train.status();
  absl::StatusOr<LabelledImages> test = ReadFashionMnist(dir_, false);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->count, 50);
  EXPECT_EQ(test->rows, 28);
  EXPECT_EQ(test->cols, 28);

  ASSERT_EQ(train->count, 200);
  ASSERT_EQ(train->rows, 28);
  ASSERT_EQ(train->cols, 28);
  ASSERT_EQ(train->pixels.size(), 200u * 28 * 28);
  ASSERT_EQ(train->labels.size(), 200u);
  std::vector<int> per_class(10, 0);
  for (int64_t i = 0; i < train->count; ++i) {
    const int32_t label = train->labels[i];
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 10);
    ++per_class[label];
    // The class is the brightest of the ten bands rows {4 + 2k, 5 + 2k}.
    const float* image = &train->pixels[i * train->example_size()];
    std::vector<float> band_sums(10, 0.0f);
    for (int band = 0; band < 10; ++band) {
      for (int row = 4 + 2 * band; row <= 5 + 2 * band; ++row) {
        for (int col = 0; col < 28; ++col)
          band_sums[band] += image[row * 28 + col];
      }
    }
    EXPECT_EQ(std::max_element(band_sums.begin(), band_sums.end()) -
                  band_sums.begin(),
              label)
        << "example " << i;
  }
  EXPECT_EQ(per_class, std::vector<int>(10, 20));
  for (float pixel : train->pixels) {
    ASSERT_GE(pixel, 0.0f);
    ASSERT_LE(pixel, 1.0f);
  }
}

TEST_F(IdxReaderTest, SyntheticSetDependsOnlyOnSeed) {
  const std::string again = Path("again");
  const std::string other = Path("other");
  ASSERT_TRUE(test::WriteSyntheticFashionMnist(dir_, 30, 10, 7).ok());
  ASSERT_TRUE(test::WriteSyntheticFashionMnist(again, 30, 10, 7).ok());
  ASSERT_TRUE(test::WriteSyntheticFashionMnist(other, 30, 10, 8).ok());

  absl::StatusOr<LabelledImages> first = ReadFashionMnist(dir_, true);
  absl::StatusOr<LabelledImages> second = ReadFashionMnist(again, true);
  absl::StatusOr<LabelledImages> third = ReadFashionMnist(other, true);
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ(first->pixels, second->pixels);
  EXPECT_EQ(first->labels, second->labels);
  EXPECT_NE(first->pixels, third->pixels);
}

TEST_F(IdxReaderTest, MissingFileIsNotFound) {
  WriteValidPair("valid", 3);

  absl::StatusOr<LabelledImages> no_images =
      ReadIdxPair(Path("absent-images.gz"), Path("valid-labels"));
  EXPECT_EQ(no_images.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_images.status().message(),
              HasSubstr(absl::StrCat("cannot open ", Path("absent-images.gz"),
                                     ": No such file or directory")));

  absl::StatusOr<LabelledImages> no_labels =
      ReadIdxPair(Path("valid-images"), Path("absent-labels.gz"));
  EXPECT_EQ(no_labels.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_labels.status().message(),
              HasSubstr(Path("absent-labels.gz")));

  absl::StatusOr<LabelledImages> no_dir =
      ReadFashionMnist(Path("no-such-dir"), false);
  EXPECT_EQ(no_dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_dir.status().message(),
              HasSubstr("t10k-images-idx3-ubyte.gz"));
}

TEST_F(IdxReaderTest, TruncatedGzipIsDataLoss) {
  WriteValidPair("valid", 40);
  absl::StatusOr<std::string> gz = test::ReadRawFile(Path("valid-images"));
  ASSERT_TRUE(gz.ok()) << gz.status();
  const size_t size = gz->size();
  ASSERT_GT(size, 1000u);

  // Inside the gzip header, the deflate data, and the CRC/length trailer.
  for (size_t cut : {size_t{0}, size_t{1}, size_t{5}, size_t{12}, size_t{100},
                     size / 2, size - 9, size - 8, size - 4, size - 1}) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", size));
    ASSERT_TRUE(
        test::WriteRawFile(Path("cut-images"), gz->substr(0, cut)).ok());
    absl::StatusOr<LabelledImages> data =
        ReadIdxPair(Path("cut-images"), Path("valid-labels"));
    EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss)
        << data.status();
    EXPECT_THAT(data.status().message(),
                AllOf(HasSubstr(Path("cut-images")), HasSubstr("truncated")));
  }
}

TEST_F(IdxReaderTest, ShortPayloadIsDataLoss) {
  ASSERT_TRUE(
      test::WriteGzipFile(Path("short-images"),
                          test::EncodeIdxImages(10, 28, 28, RandomBytes(1000)))
          .ok());
  ASSERT_TRUE(test::WriteGzipFile(Path("short-labels"),
                                  test::EncodeIdxLabels(RandomBytes(10, 9)))
                  .ok());
  absl::StatusOr<LabelledImages> data = ReadPair("short");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(
      data.status().message(),
      AllOf(
          HasSubstr(Path("short-images")),
          HasSubstr("truncated: expected 7840 bytes of pixel data, got 1000")));

  // A labels file whose payload stops after 6 of the 10 labels it declares.
  std::string labels = test::EncodeIdxLabels(RandomBytes(10, 9));
  labels.resize(labels.size() - 4);
  ASSERT_TRUE(test::WriteGzipFile(Path("short-labels"), labels).ok());
  WriteValidPair("valid", 10);
  data = ReadIdxPair(Path("valid-images"), Path("short-labels"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(),
              HasSubstr("truncated: expected 10 bytes of labels, got 6"));
}

TEST_F(IdxReaderTest, TruncatedHeaderIsDataLoss) {
  std::string header = test::EncodeIdxImages(1, 1, 1, {7});
  header.resize(9);  // The magic and the count, a byte of the rows.
  ASSERT_TRUE(test::WriteGzipFile(Path("stub-images"), header).ok());
  ASSERT_TRUE(
      test::WriteGzipFile(Path("stub-labels"), test::EncodeIdxLabels({1}))
          .ok());

  absl::StatusOr<LabelledImages> data = ReadPair("stub");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(
      data.status().message(),
      HasSubstr("truncated: expected 12 bytes of dimension sizes, got 5"));
}

TEST_F(IdxReaderTest, CorruptGzipIsDataLoss) {
  WriteValidPair("valid", 40);
  absl::StatusOr<std::string> gz = test::ReadRawFile(Path("valid-images"));
  ASSERT_TRUE(gz.ok()) << gz.status();
  const size_t size = gz->size();

  for (size_t at : {size / 4, size / 2, 3 * size / 4}) {
    SCOPED_TRACE(absl::StrCat("flipped at ", at, " of ", size));
    std::string corrupt = *gz;
    for (size_t i = at; i < at + 16; ++i) corrupt[i] ^= 0x5a;
    ASSERT_TRUE(test::WriteRawFile(Path("corrupt-images"), corrupt).ok());
    absl::StatusOr<LabelledImages> data =
        ReadIdxPair(Path("corrupt-images"), Path("valid-labels"));
    EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss)
        << data.status();
    EXPECT_THAT(data.status().message(), HasSubstr(Path("corrupt-images")));
  }

  // A flipped byte of the CRC-32 in the trailer.
  std::string bad_crc = *gz;
  bad_crc[size - 8] ^= 0x01;
  ASSERT_TRUE(test::WriteRawFile(Path("crc-images"), bad_crc).ok());
  absl::StatusOr<LabelledImages> data =
      ReadIdxPair(Path("crc-images"), Path("valid-labels"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(),
              AllOf(HasSubstr("corrupt gzip stream"),
                    HasSubstr("incorrect data check")));
}

TEST_F(IdxReaderTest, WrongMagicIsInvalidArgument) {
  WriteValidPair("valid", 2);

  absl::StatusOr<LabelledImages> swapped =
      ReadIdxPair(Path("valid-labels"), Path("valid-images"));
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(swapped.status().message(),
              AllOf(HasSubstr(Path("valid-labels")),
                    HasSubstr("bad magic 0x00000801, expected 0x00000803 "
                              "(ubyte images, 3 dimensions)")));

  absl::StatusOr<LabelledImages> images_as_labels =
      ReadIdxPair(Path("valid-images"), Path("valid-images"));
  EXPECT_EQ(images_as_labels.status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images_as_labels.status().message(),
              HasSubstr("bad magic 0x00000803, expected 0x00000801 "
                        "(ubyte labels, 1 dimension)"));

  // Float (0x0D) images.
  std::string floats = test::EncodeIdxImages(1, 1, 1, {0, 0, 0, 0});
  floats[2] = 0x0d;
  ASSERT_TRUE(test::WriteGzipFile(Path("float-images"), floats).ok());
  absl::StatusOr<LabelledImages> float_images =
      ReadIdxPair(Path("float-images"), Path("valid-labels"));
  EXPECT_EQ(float_images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(float_images.status().message(),
              HasSubstr("bad magic 0x00000d03, expected 0x00000803"));
}

TEST_F(IdxReaderTest, CountMismatchIsInvalidArgument) {
  ASSERT_TRUE(
      test::WriteGzipFile(Path("many-images"),
                          test::EncodeIdxImages(100, 1, 1, RandomBytes(100)))
          .ok());
  ASSERT_TRUE(test::WriteGzipFile(Path("many-labels"),
                                  test::EncodeIdxLabels(RandomBytes(99, 9)))
                  .ok());

  absl::StatusOr<LabelledImages> data = ReadPair("many");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(),
              AllOf(HasSubstr(absl::StrCat("images file ", Path("many-images"),
                                           " has 100 examples")),
                    HasSubstr(absl::StrCat("labels file ", Path("many-labels"),
                                           " has 99"))));
}

TEST_F(IdxReaderTest, TrailingBytesAreInvalidArgument) {
  WriteValidPair("valid", 3);
  ASSERT_TRUE(test::WriteGzipFile(Path("long-images"),
                                  test::EncodeIdxImages(
                                      3, 28, 28, RandomBytes(3 * 28 * 28 + 5)))
                  .ok());
  absl::StatusOr<LabelledImages> data =
      ReadIdxPair(Path("long-images"), Path("valid-labels"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(),
              AllOf(HasSubstr(Path("long-images")),
                    HasSubstr("5 trailing bytes after the 2352 bytes of "
                              "pixel data")));

  std::string labels = test::EncodeIdxLabels({1, 2, 3});
  labels.push_back('\n');
  ASSERT_TRUE(test::WriteGzipFile(Path("long-labels"), labels).ok());
  data = ReadIdxPair(Path("valid-images"), Path("long-labels"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(),
              HasSubstr("1 trailing bytes after the 3 bytes of labels"));
}

TEST_F(IdxReaderTest, AbsurdDimensionsAreInvalidArgument) {
  ASSERT_TRUE(
      test::WriteGzipFile(Path("huge-labels"), test::EncodeIdxLabels({1}))
          .ok());

  // 2^32 - 1 images of 28x28 would be 3.4 TB; nothing is allocated for it.
  ASSERT_TRUE(test::WriteGzipFile(Path("huge-images"),
                                  test::EncodeIdxImages(0xffffffff, 28, 28, {}))
                  .ok());
  absl::StatusOr<LabelledImages> data = ReadPair("huge");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(),
              HasSubstr("declares 4294967295 images of 28x28 pixels, over the "
                        "limit of 2147483648 bytes"));

  ASSERT_TRUE(
      test::WriteGzipFile(Path("huge-images"),
                          test::EncodeIdxImages(1, 0xffffffff, 0xffffffff, {}))
          .ok());
  data = ReadPair("huge");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("over the limit"));

  ASSERT_TRUE(test::WriteGzipFile(Path("huge-images"),
                                  test::EncodeIdxImages(1, 0, 28, {}))
                  .ok());
  data = ReadPair("huge");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("images of 0x28 pixels"));
}

TEST_F(IdxReaderTest, ReadsRealFashionMnistTestSet) {
  if (!std::filesystem::exists(
          absl::StrCat(kRealFashionMnistDir, "/t10k-images-idx3-ubyte.gz"))) {
    GTEST_SKIP() << "Fashion-MNIST is not installed under "
                 << kRealFashionMnistDir;
  }
  absl::StatusOr<LabelledImages> data =
      ReadFashionMnist(kRealFashionMnistDir, false);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->count, 10000);
  EXPECT_EQ(data->rows, 28);
  EXPECT_EQ(data->cols, 28);
  EXPECT_EQ(data->pixels.size(), 10000u * 28 * 28);
  ASSERT_EQ(data->labels.size(), 10000u);
  std::vector<int> per_class(10, 0);
  for (int32_t label : data->labels) {
    ASSERT_GE(label, 0);
    ASSERT_LE(label, 9);
    ++per_class[label];
  }
  EXPECT_EQ(per_class, std::vector<int>(10, 1000));
  EXPECT_EQ(*std::max_element(data->pixels.begin(), data->pixels.end()), 1.0f);
}

}  // namespace
}  // namespace contrail
