#include "trainer/deployer.h"

#include <cstring>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/update_publisher.h"

namespace contrail {
namespace {

// One tensor of 10 floats.
ModelSpec OneTensorSpec() {
  ModelSpec spec;
  spec.set_architecture("test");
  spec.add_input_shape(1);
  spec.set_num_classes(2);
  TensorSpec* w = spec.add_tensors();
  w->set_name("w");
  w->add_shape(10);
  w->set_dtype("float32");
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

class DeployerTest : public ::testing::Test {
 protected:
  // A publisher whose budget is `deploy_ratio` of the tensor per update.
  void Make(double deploy_ratio, int64_t warmup_steps) {
    UpdatePublisher::Options options;
    options.deploy_ratio = deploy_ratio;
    publisher_ = UpdatePublisher::Create(spec_, {absl::MakeSpan(mirror_)}, options).value();
    deployer_ = std::make_unique<Deployer>(Deployer::Options{warmup_steps}, publisher_.get());
    deployer_->Start(Trainer());
  }

  ConstTensorViews Trainer() const { return {absl::MakeConstSpan(trainer_)}; }

  bool MirrorEqualsTrainer() const {
    return std::memcmp(mirror_.data(), trainer_.data(), sizeof(float) * 10) == 0;
  }

  const ModelSpec spec_ = OneTensorSpec();
  std::vector<float> trainer_ = std::vector<float>(10, 1.0f);
  std::vector<float> mirror_ = std::vector<float>(10, 0.0f);
  std::unique_ptr<UpdatePublisher> publisher_;
  std::unique_ptr<Deployer> deployer_;
};

TEST_F(DeployerTest, StartDeploysTheInitialModelAsVersionOne) {
  Make(/*deploy_ratio=*/1, /*warmup_steps=*/0);
  EXPECT_EQ(deployer_->counters().version, 1u);
  EXPECT_TRUE(MirrorEqualsTrainer());
}

TEST_F(DeployerTest, WarmupHoldsTheFirstStepsBack) {
  Make(/*deploy_ratio=*/1, /*warmup_steps=*/2);
  trainer_[0] = 2;
  ASSERT_OK(deployer_->AfterStep(Trainer()));
  trainer_[1] = 2;
  ASSERT_OK(deployer_->AfterStep(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 1u);
  EXPECT_FALSE(MirrorEqualsTrainer());
  // The third step deploys both held-back changes at once.
  ASSERT_OK(deployer_->AfterStep(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 2u);
  EXPECT_EQ(deployer_->counters().entries, 2);
  EXPECT_TRUE(MirrorEqualsTrainer());
}

TEST_F(DeployerTest, BudgetHoldsEntriesBackUntilSentWhileWaiting) {
  Make(/*deploy_ratio=*/0.1, /*warmup_steps=*/0);  // one entry per update
  trainer_[2] = 5;
  trainer_[5] = 4;
  trainer_[7] = 3;
  ASSERT_OK(deployer_->AfterStep(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 2u);
  EXPECT_EQ(deployer_->held_back_entries(), 2);
  EXPECT_TRUE(deployer_->has_held_back());
  ASSERT_OK(deployer_->SendHeldBack(Trainer()));
  ASSERT_OK(deployer_->SendHeldBack(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 4u);
  EXPECT_FALSE(deployer_->has_held_back());
  EXPECT_TRUE(MirrorEqualsTrainer());
  // Nothing held back: no new version.
  ASSERT_OK(deployer_->SendHeldBack(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 4u);
}

TEST_F(DeployerTest, FlushSendsEverythingLeft) {
  Make(/*deploy_ratio=*/0.1, /*warmup_steps=*/0);
  for (int i = 0; i < 10; ++i) trainer_[i] = static_cast<float>(i + 10);
  ASSERT_OK(deployer_->Flush(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 11u);
  EXPECT_EQ(deployer_->counters().entries, 10);
  EXPECT_EQ(deployer_->held_back_entries(), 0);
  EXPECT_TRUE(MirrorEqualsTrainer());
}

}  // namespace
}  // namespace contrail

namespace contrail {
namespace {

// The guard with windows of one arrival of 10 examples.
class GuardedDeployerTest : public DeployerTest {
 protected:
  void SetUp() override {
    UpdatePublisher::Options options;
    publisher_ = UpdatePublisher::Create(spec_, {absl::MakeSpan(mirror_)}, options).value();
    Deployer::Options deployer;
    deployer.guard.drop = 0.1;
    deployer.guard.window = 10;
    deployer.guard.memory_windows = 5;
    ASSERT_OK(Deployer::CheckOptions(deployer));
    deployer_ = std::make_unique<Deployer>(deployer, publisher_.get());
    deployer_->Start(Trainer());
  }

  // One arrival: its test (of 10 examples), then a step that changes the
  // trainer's first entry, then deployment.
  void Arrival(int64_t trainer_correct, int64_t served_correct) {
    ASSERT_OK(deployer_->Observe(10, trainer_correct, served_correct));
    trainer_[0] += 1;
    ASSERT_OK(deployer_->AfterStep(Trainer()));
  }
};

TEST_F(GuardedDeployerTest, HoldsRollsBackToTheLastGoodWeightsAndResumes) {
  for (int i = 0; i < 4; ++i) Arrival(9, 9);
  EXPECT_EQ(deployer_->counters().version, 5u);
  // The last good version is confirmed a window after it was kept.
  EXPECT_EQ(deployer_->good_version(), 3u);

  // The trainer's accuracy falls: nothing more goes out.
  Arrival(2, 9);
  EXPECT_TRUE(deployer_->holding());
  EXPECT_EQ(deployer_->counters().version, 5u);
  EXPECT_FALSE(deployer_->has_held_back());
  ASSERT_OK(deployer_->Flush(Trainer()));
  EXPECT_EQ(deployer_->counters().version, 5u);

  // The served model has fallen too: version 6 takes the mirror back to
  // version 3's weights (trainer_[0] was 3 then).
  ASSERT_OK(deployer_->Observe(10, 2, 2));
  EXPECT_EQ(deployer_->counters().version, 6u);
  EXPECT_EQ(publisher_->version(), 6u);
  EXPECT_EQ(mirror_[0], 3.0f);
  EXPECT_EQ(deployer_->guard().rollbacks(), 1);

  // Recovered: trainer - mirror goes out as usual.
  Arrival(9, 9);
  EXPECT_FALSE(deployer_->holding());
  EXPECT_EQ(deployer_->counters().version, 7u);
  EXPECT_TRUE(MirrorEqualsTrainer());
}

TEST_F(GuardedDeployerTest, NoRollbackBeforeAGoodVersionIsKnown) {
  Arrival(9, 9);
  ASSERT_OK(deployer_->Observe(10, 1, 1));
  EXPECT_TRUE(deployer_->holding());
  EXPECT_EQ(deployer_->guard().rollbacks(), 1);
  EXPECT_EQ(deployer_->good_version(), 0u);
  EXPECT_EQ(deployer_->counters().version, 2u);
}

TEST(DeployerOptionsTest, OutOfRangeGuardNamesTheFlag) {
  Deployer::Options options;
  options.guard.drop = -0.5;
  EXPECT_THAT(Deployer::CheckOptions(options),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("guard_drop")));
}

}  // namespace
}  // namespace contrail
