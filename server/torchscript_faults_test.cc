// A server given a TorchScript module that misbehaves keeps running: a
// module whose forward pass raises (a RuntimeError from the TorchScript
// interpreter, not a c10::Error) or answers logits of the wrong width gets
// INTERNAL for that prediction and serves the next; module bytes that do
// not load make the snapshot that carries them refused, as any bad update.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/model.h"
#include "common/update_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.pb.h"
#include "server/live_model.h"
#include "server/served_model_store.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

std::vector<int64_t> Shape(int64_t n) { return {n, 1, 28, 28}; }
std::vector<float> Inputs(int64_t n) { return std::vector<float>(n * 28 * 28, 0.5f); }

// The snapshot a trainer sends of the module in `file` at version 1.
Update SnapshotOfModule(const std::string& file) {
  LiveModel::Version version;
  version.model = Model::Load(test::Runfile(file), /*seed=*/0).value();
  version.version = 1;
  version.run = 77;
  version.checksum = version.model->Checksum();
  return SnapshotOf(version);
}

TEST(TorchScriptFaultsTest, AModuleThatRaisesFailsThatPredictionOnlyAndServingGoesOn) {
  std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options()).value();
  ASSERT_OK(live->Apply(SnapshotOfModule("server/raising_linear.pt")));

  ASSERT_OK(live->Predict(Shape(2), Inputs(2)));
  EXPECT_THAT(live->Predict(Shape(3), Inputs(3)),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("injected fault: this module refuses batches of 3")));
  // The output width is checked on every prediction.
  EXPECT_THAT(live->Predict(Shape(5), Inputs(5)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("expected [5, 10]")));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<LiveModel::Predictions> served = live->Predict(Shape(4), Inputs(4));
    ASSERT_OK(served);
    EXPECT_EQ(served->labels.size(), 4u);
    EXPECT_EQ(served->version, 1u);
    EXPECT_THAT(live->Predict(Shape(3), Inputs(3)),
                StatusIs(absl::StatusCode::kInternal, HasSubstr("injected fault")));
  }
}

TEST(TorchScriptFaultsTest, ASnapshotWhoseModuleDoesNotLoadIsRefused) {
  const Update good = SnapshotOfModule("tests/tiny_cnn.pt");
  const std::string& module = good.torchscript_module();
  ASSERT_GT(module.size(), 100u);
  const std::vector<std::pair<const char*, std::string>> spoiled_modules = {
      {"garbage", "not a zip archive at all"},
      {"cut in half", module.substr(0, module.size() / 2)},
      {"empty", ""},
  };
  std::unique_ptr<LiveModel> live = LiveModel::Create(LiveModel::Options()).value();
  for (const auto& [what, bytes] : spoiled_modules) {
    SCOPED_TRACE(what);
    Update spoiled = good;
    spoiled.set_torchscript_module(bytes);  // outside the payload checksum
    EXPECT_THAT(live->Apply(spoiled),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TorchScript")));
    EXPECT_EQ(live->Current(), nullptr);
  }
  ASSERT_OK(live->Apply(good));
  ASSERT_OK(live->Predict(Shape(2), Inputs(2)));
}

}  // namespace
}  // namespace contrail
