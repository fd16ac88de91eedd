// Stands in for the trainer and its publisher in server tests: a model that
// moves a few entries of every tensor per step, and the snapshot and
// updates that carry it, built as trainer/update_publisher.cc builds them
// (FP32_ASSIGN values, sealed, with the model checksum after applying).
// The same seed gives the same model and the same updates.
//
// Not thread-safe; owned by the test's thread.
#ifndef CONTRAIL_TESTS_TEST_UTIL_FAKE_TRAINER_H_
#define CONTRAIL_TESTS_TEST_UTIL_FAKE_TRAINER_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "common/model.h"
#include "proto/contrail.pb.h"

namespace contrail {
namespace test {

class FakeTrainer {
 public:
  // Update.run of every update a FakeTrainer builds unless told otherwise.
  static constexpr uint64_t kRun = 0x5eed00c0ffee0001;

  // A freshly initialised `architecture` (Model::Create) at version 1.
  explicit FakeTrainer(uint64_t seed, const std::string& architecture = "lenet5",
                       uint64_t run = kRun);
  // `model` (a TorchScript one, or one of another signature) at version 1;
  // its snapshots carry its TorchScript module.
  FakeTrainer(std::unique_ptr<Model> model, uint64_t seed, uint64_t run = kRun);

  Model& model() { return *model_; }
  uint64_t version() const { return version_; }
  uint64_t run() const { return run_; }

  // Every tensor dense, at the current version.
  Update Snapshot() const;

  // Changes `per_tensor` random entries of every tensor (by 0.02 to 0.2,
  // enough to move every output), moves one version forward and returns the
  // update that carries the change.
  Update Step(int per_tensor = 3);

 private:
  std::unique_ptr<Model> model_;
  const uint64_t run_;
  std::mt19937_64 rng_;
  uint64_t version_ = 1;
};

}  // namespace test
}  // namespace contrail

#endif  // CONTRAIL_TESTS_TEST_UTIL_FAKE_TRAINER_H_
