#include "trainer/trainer_status_service_impl.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/idx_reader.h"
#include "common/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"
#include "trainer/replay_source.h"
#include "trainer/stream_trainer.h"
#include "trainer/update_publisher.h"
#include "trainer/update_service_impl.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

// A short run of the TorchScript test model; the trainer, its publisher and
// the trainer's status service.
class TrainerStatusServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/status_data";
    ASSERT_OK(test::WriteSyntheticFashionMnist(dir, /*train_count=*/400,
                                               /*test_count=*/0, /*seed=*/5));
    absl::StatusOr<LabelledImages> data = ReadFashionMnist(dir, /*train=*/true);
    ASSERT_OK(data);
    data_ = *std::move(data);
  }

  // 200 initial examples for one epoch in batches of 32 (7 training steps),
  // then 200 streamed with t = 8.
  absl::Status Start(const std::string& model_file) {
    absl::StatusOr<std::unique_ptr<Model>> model =
        Model::Load(test::Runfile(model_file), /*seed=*/1);
    if (!model.ok()) return model.status();
    absl::StatusOr<std::unique_ptr<Model>> mirror = Model::CreateLike(**model, 1);
    if (!mirror.ok()) return mirror.status();
    publisher_ = UpdatePublisher::Create((*model)->spec(), (*mirror)->Views(),
                                                   UpdatePublisher::Options()).value();
    StreamTrainer::Options options;
    options.initial_examples = 200;
    options.initial_epochs = 1;
    options.stream_examples = 200;
    options.batch_size = 32;
    options.sparsity.sparsity = Sparsity::kTopK;
    options.sparsity.ratio = 0.01;
    ReplaySource::Options replay;
    replay.count = 400;
    absl::StatusOr<std::unique_ptr<ReplaySource>> source =
        ReplaySource::Create(replay, data_, (*model)->spec().num_classes());
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<StreamTrainer>> trainer =
        StreamTrainer::Create(options, *std::move(source), *std::move(model),
                              *std::move(mirror), publisher_.get());
    if (!trainer.ok()) return trainer.status();
    trainer_ = *std::move(trainer);
    updates_ = std::make_unique<UpdateServiceImpl>(publisher_.get());
    service_ = std::make_unique<TrainerStatusServiceImpl>(trainer_.get(), publisher_.get(),
                                                          updates_.get());
    trainer_->Start();
    return absl::OkStatus();
  }

  StatusResponse GetStatus() {
    StatusRequest request;
    StatusResponse response;
    const grpc::Status rpc = service_->GetStatus(nullptr, &request, &response);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    return response;
  }

  LabelledImages data_;
  std::unique_ptr<UpdatePublisher> publisher_;
  std::unique_ptr<StreamTrainer> trainer_;
  std::unique_ptr<UpdateServiceImpl> updates_;
  std::unique_ptr<TrainerStatusServiceImpl> service_;
};

TEST_F(TrainerStatusServiceTest, FinishedRunReportsDoneWithItsCounters) {
  ASSERT_OK(Start("tests/tiny_cnn.pt"));
  ASSERT_OK(trainer_->WaitUntilFinished(absl::Seconds(60)));
  const StatusResponse status = GetStatus();
  EXPECT_EQ(status.role(), "trainer");
  EXPECT_EQ(status.phase(), DONE);
  EXPECT_EQ(status.error_code(), 0);
  EXPECT_EQ(status.examples_seen(), 200u);
  EXPECT_EQ(status.version(), publisher_->version());
  EXPECT_EQ(status.checksum(), status.trainer_checksum());
  EXPECT_EQ(status.spec().architecture(), "torchscript:tiny_cnn.pt");
}

// The module raises in its 11th training forward pass: the fourth step of
// the stream. The run ends FAILED, never DONE, and GetStatus says why.
TEST_F(TrainerStatusServiceTest, FailedStepReportsFailedWithTheError) {
  ASSERT_OK(Start("tests/failing_cnn.pt"));
  EXPECT_THAT(trainer_->WaitUntilFinished(absl::Seconds(60)),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("injected fault: training step failed")));
  const StatusResponse status = GetStatus();
  EXPECT_EQ(status.phase(), FAILED);
  EXPECT_EQ(status.error_code(), static_cast<int>(absl::StatusCode::kInternal));
  EXPECT_THAT(status.error_message(), HasSubstr("injected fault: training step failed"));
  // Three stream steps of 8 examples finished before the fourth failed.
  EXPECT_EQ(status.examples_seen(), 24u);
}

}  // namespace
}  // namespace contrail
