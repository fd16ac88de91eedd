#include "trainer/trainer_daemon.h"

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/contrail.grpc.pb.h"
#include "tests/test_util/idx_writer.h"
#include "tests/test_util/runfiles.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/wait_until.h"

namespace contrail {
namespace {

using ::testing::HasSubstr;

bool TorchHasCuda() { return torch::cuda::is_available(); }

std::string TempDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

class TrainerDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = TempDir() + "/trainer_daemon_data";
    ASSERT_OK(test::WriteSyntheticFashionMnist(data_dir_, /*train_count=*/600,
                                               /*test_count=*/0, /*seed=*/3));
  }

  // A short sparse run of the MLP on free loopback port.
  TrainerDaemon::Options SmallOptions() const {
    TrainerDaemon::Options options;
    options.listen = "127.0.0.1:0";
    options.data_dir = data_dir_;
    TrainingConfig& training = options.training;
    training.set_model("mlp");
    training.set_initial_examples(200);
    training.set_initial_epochs(1);
    training.set_stream_examples(200);
    training.set_batch_size(32);
    training.set_ratio(0.01);
    return options;
  }

  std::string data_dir_;
};

TEST_F(TrainerDaemonTest, RunsAStreamAndServesItsStatusAndUpdates) {
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon =
      TrainerDaemon::Create(SmallOptions());
  ASSERT_OK(daemon);
  ASSERT_OK((*daemon)->Start());
  ASSERT_GT((*daemon)->port(), 0);
  ASSERT_OK((*daemon)->trainer().WaitUntilFinished(absl::Seconds(60)));

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*daemon)->port()),
                                     grpc::InsecureChannelCredentials());
  StatusResponse status;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(StatusService::NewStub(channel)
                    ->GetStatus(&context, StatusRequest(), &status)
                    .ok());
  }
  EXPECT_EQ(status.phase(), DONE);
  EXPECT_EQ(status.examples_seen(), 200u);
  EXPECT_EQ(status.spec().architecture(), "mlp");
  EXPECT_EQ(status.checksum(), status.trainer_checksum());

  // A new subscriber gets a snapshot of exactly the published model.
  grpc::ClientContext context;
  SubscribeRequest request;
  request.set_subscriber("test");
  auto reader = UpdateService::NewStub(channel)->SubscribeUpdates(&context, request);
  Update snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_TRUE(snapshot.snapshot());
  EXPECT_EQ(snapshot.version(), status.version());
  EXPECT_EQ(snapshot.model_checksum(), status.checksum());
  context.TryCancel();
  reader->Finish();

  (*daemon)->Shutdown();
  (*daemon)->Shutdown();  // idempotent
}

StatusResponse GetStatus(const TrainerDaemon& daemon) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", daemon.port()),
                                     grpc::InsecureChannelCredentials());
  StatusResponse status;
  grpc::ClientContext context;
  EXPECT_TRUE(
      StatusService::NewStub(channel)->GetStatus(&context, StatusRequest(), &status).ok());
  return status;
}

// A trainer stopped mid-stream with a --state_dir continues the same run
// where it stopped: same run id, versions on from the last, the stream and
// the prequential counters on from where they were; a server that held the
// last version gets deltas, not a snapshot.
TEST_F(TrainerDaemonTest, ARestartedTrainerContinuesItsRun) {
  TrainerDaemon::Options options = SmallOptions();
  options.state_dir = TempDir() + "/restart_state";
  options.training.set_stream_examples(300);
  options.training.set_replay_rate(400);  // slow enough to stop mid-stream
  uint64_t run = 0, version = 0;
  int64_t seen = 0, correct = 0;
  {
    absl::StatusOr<std::unique_ptr<TrainerDaemon>> first = TrainerDaemon::Create(options);
    ASSERT_OK(first);
    ASSERT_OK((*first)->Start());
    ASSERT_TRUE(test::WaitUntil(
        [&] { return (*first)->trainer().stats().examples_seen >= 80; }, absl::Seconds(60)));
    (*first)->Shutdown();
    const StreamTrainer::Stats stats = (*first)->trainer().stats();
    EXPECT_EQ(stats.phase, STOPPED);
    EXPECT_LT(stats.examples_seen, 300);
    EXPECT_GE(stats.checkpoints, 2);  // after initial training, at shutdown
    run = (*first)->publisher().run();
    version = (*first)->publisher().version();
    seen = stats.examples_seen;
    correct = stats.correct;
    EXPECT_EQ(stats.checkpoint_version, version);
  }
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> second = TrainerDaemon::Create(options);
  ASSERT_OK(second);
  EXPECT_EQ((*second)->publisher().run(), run);
  EXPECT_EQ((*second)->publisher().version(), version);
  StreamTrainer::Stats resumed = (*second)->trainer().stats();
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.examples_seen, seen);
  EXPECT_EQ(resumed.correct, correct);
  ASSERT_OK((*second)->Start());
  ASSERT_OK((*second)->trainer().WaitUntilFinished(absl::Seconds(60)));
  const StreamTrainer::Stats done = (*second)->trainer().stats();
  EXPECT_EQ(done.examples_seen, 300);
  EXPECT_GE(done.correct, correct);
  EXPECT_GT((*second)->publisher().version(), version);
  const StatusResponse status = GetStatus(**second);
  EXPECT_EQ(status.examples_trained(), 200u + 300u);
  EXPECT_EQ(status.checksum(), status.trainer_checksum());

  // A server holding the old version of this run continues with deltas.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*second)->port()),
                                     grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  SubscribeRequest request;
  request.set_have_run(run);
  request.set_have_version(version);
  request.set_have_fingerprint((*second)->spec().fingerprint());
  auto reader = UpdateService::NewStub(channel)->SubscribeUpdates(&context, request);
  Update next;
  ASSERT_TRUE(reader->Read(&next));
  EXPECT_FALSE(next.snapshot());
  EXPECT_EQ(next.base_version(), version);
  EXPECT_EQ(next.version(), version + 1);
  context.TryCancel();
  reader->Finish();
}

TEST_F(TrainerDaemonTest, SubscribersBeyondTheLimitAreRefused) {
  TrainerDaemon::Options options = SmallOptions();
  options.max_subscribers = 1;
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(options);
  ASSERT_OK(daemon);
  ASSERT_OK((*daemon)->Start());
  ASSERT_OK((*daemon)->trainer().WaitUntilFinished(absl::Seconds(60)));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*daemon)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = UpdateService::NewStub(channel);
  grpc::ClientContext first_context;
  auto first = stub->SubscribeUpdates(&first_context, SubscribeRequest());
  Update snapshot;
  ASSERT_TRUE(first->Read(&snapshot));
  grpc::ClientContext second_context;
  auto second = stub->SubscribeUpdates(&second_context, SubscribeRequest());
  Update none;
  EXPECT_FALSE(second->Read(&none));
  const grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_subscribers"));
  first_context.TryCancel();
  first->Finish();
}

TEST_F(TrainerDaemonTest, AStateDirOfAnotherModelIsRefused) {
  TrainerDaemon::Options options = SmallOptions();
  options.state_dir = TempDir() + "/other_model_state";
  options.training.set_stream_examples(16);
  {
    absl::StatusOr<std::unique_ptr<TrainerDaemon>> first = TrainerDaemon::Create(options);
    ASSERT_OK(first);
    ASSERT_OK((*first)->Start());
    ASSERT_OK((*first)->trainer().WaitUntilFinished(absl::Seconds(60)));
  }
  options.training.set_model("lenet5");
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is of model mlp")));
}

TEST_F(TrainerDaemonTest, CreateRejectsABadConfigNamingTheField) {
  TrainerDaemon::Options options = SmallOptions();
  options.training.set_trigger_size(0);
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trigger_size: must be >= 1")));
}

TEST_F(TrainerDaemonTest, CreateReportsAMissingModelOrDataAsNotFound) {
  TrainerDaemon::Options model = SmallOptions();
  model.training.set_model(TempDir() + "/nothing_here.pt");
  EXPECT_THAT(TrainerDaemon::Create(model),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("model: cannot open")));
  TrainerDaemon::Options data = SmallOptions();
  data.data_dir = TempDir() + "/no_data";
  EXPECT_THAT(TrainerDaemon::Create(data), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no_data")));
}

TEST_F(TrainerDaemonTest, CreateRejectsAStreamLongerThanTheData) {
  TrainerDaemon::Options options = SmallOptions();
  options.training.set_stream_examples(500);
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot replay 700 examples: the data has 600")));
}

TEST_F(TrainerDaemonTest, CreateRefusesAShapeThatContradictsTheTorchScriptModule) {
  TrainerDaemon::Options options = SmallOptions();
  options.training.set_model(test::Runfile("tests/mlp16x3.pt"));
  options.training.add_input_shape(4);
  options.training.add_input_shape(8);
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model: input_shape [4, 8] contradicts the input_shape [16] "
                                 "that the TorchScript module mlp16x3.pt declares")));
  options.training.clear_input_shape();
  options.training.set_num_classes(5);
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("model: num_classes 5 contradicts the num_classes 3")));
}

TEST_F(TrainerDaemonTest, TheConfiguredShapeBuildsTheModelThatTheDataMustFit) {
  // The Fashion-MNIST replay gives [1, 28, 28] images labelled 0-9.
  TrainerDaemon::Options vectors = SmallOptions();
  vectors.training.add_input_shape(16);
  EXPECT_THAT(TrainerDaemon::Create(vectors),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("examples of shape [1, 28, 28] do not fit model mlp, "
                                 "which takes [16]")));
  TrainerDaemon::Options classes = SmallOptions();
  classes.training.set_num_classes(3);
  EXPECT_THAT(TrainerDaemon::Create(classes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("outside the model's 3 classes")));
  TrainerDaemon::Options images = SmallOptions();
  images.training.add_input_shape(1);
  images.training.add_input_shape(28);
  images.training.add_input_shape(28);
  images.training.set_num_classes(12);
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(images);
  ASSERT_OK(daemon);
  EXPECT_EQ((*daemon)->spec().num_classes(), 12);
}

// A TorchScript MLP on vectors of 16 features, fed over the Ingest RPC:
// examples of the shape it declares are trained on, others refused saying
// what it takes.
TEST_F(TrainerDaemonTest, IngestTrainsATorchScriptModelOfTheShapeItDeclares) {
  TrainerDaemon::Options options;
  options.listen = "127.0.0.1:0";
  options.source = "ingest";
  TrainingConfig& training = options.training;
  training.set_model(test::Runfile("tests/mlp16x3.pt"));
  training.set_initial_examples(32);
  training.set_initial_epochs(1);
  training.set_stream_examples(64);
  training.set_batch_size(16);
  training.set_ratio(0.01);
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(options);
  ASSERT_OK(daemon);
  EXPECT_THAT((*daemon)->spec().input_shape(), ::testing::ElementsAre(16));
  EXPECT_EQ((*daemon)->spec().num_classes(), 3);
  ASSERT_OK((*daemon)->Start());

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*daemon)->port()),
                                     grpc::InsecureChannelCredentials());
  IngestSummary summary;
  grpc::ClientContext context;
  auto writer = IngestService::NewStub(channel)->Ingest(&context, &summary);
  Example image;
  for (int64_t d : {1, 28, 28}) image.mutable_inputs()->add_shape(d);
  image.mutable_inputs()->mutable_values()->Resize(28 * 28, 0.5f);
  ASSERT_TRUE(writer->Write(image));
  for (int i = 0; i < 96; ++i) {
    Example example;
    example.set_label(i % 3);
    example.mutable_inputs()->add_shape(16);
    for (int f = 0; f < 16; ++f) {
      example.mutable_inputs()->add_values(static_cast<float>(i % 3) + 0.01f * f);
    }
    ASSERT_TRUE(writer->Write(example));
  }
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(summary.accepted(), 96u);
  EXPECT_EQ(summary.rejected(), 1u);
  ASSERT_EQ(summary.first_rejections_size(), 1);
  EXPECT_THAT(summary.first_rejections(0),
              HasSubstr("shape [1, 28, 28] is not the model's [16]"));

  ASSERT_OK((*daemon)->trainer().WaitUntilFinished(absl::Seconds(60)));
  EXPECT_EQ((*daemon)->trainer().stats().examples_seen, 64);
  EXPECT_EQ((*daemon)->publisher().mirror_checksum(),
            (*daemon)->trainer().stats().trainer_checksum);
}

TEST_F(TrainerDaemonTest, CudaWithoutCudaIsOneClearError) {
  if (TorchHasCuda()) GTEST_SKIP() << "this LibTorch has a GPU";
  TrainerDaemon::Options options = SmallOptions();
  options.training.set_device("cuda");
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("this LibTorch has no CUDA")));
  options.training.set_device("tpu");
  EXPECT_THAT(TrainerDaemon::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown device")));
}

// A whole run on the GPU: the served mirror ends equal to the trained
// model, through the CPU copy the deployer reads.
TEST_F(TrainerDaemonTest, TrainsOnTheGpu_CUDA) {
  if (!TorchHasCuda()) GTEST_SKIP() << "no GPU";
  TrainerDaemon::Options options = SmallOptions();
  options.training.set_device("cuda");
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> daemon = TrainerDaemon::Create(options);
  ASSERT_OK(daemon);
  ASSERT_OK((*daemon)->Start());
  ASSERT_OK((*daemon)->trainer().WaitUntilFinished(absl::Seconds(120)));
  const StreamTrainer::Stats stats = (*daemon)->trainer().stats();
  EXPECT_EQ(stats.examples_seen, 200);
  EXPECT_EQ((*daemon)->publisher().mirror_checksum(), stats.trainer_checksum);
}

TEST_F(TrainerDaemonTest, StartOnAPortInUseIsUnavailable) {
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> first =
      TrainerDaemon::Create(SmallOptions());
  ASSERT_OK(first);
  ASSERT_OK((*first)->Start());
  TrainerDaemon::Options options = SmallOptions();
  options.listen = absl::StrCat("127.0.0.1:", (*first)->port());
  absl::StatusOr<std::unique_ptr<TrainerDaemon>> second = TrainerDaemon::Create(options);
  ASSERT_OK(second);
  EXPECT_THAT((*second)->Start(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("in use")));
}

}  // namespace
}  // namespace contrail
