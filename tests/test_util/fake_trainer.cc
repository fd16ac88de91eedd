#include "tests/test_util/fake_trainer.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "common/tensor_views.h"
#include "common/update_codec.h"

namespace contrail {
namespace test {

FakeTrainer::FakeTrainer(uint64_t seed, const std::string& architecture, uint64_t run)
    : model_(Model::Create(architecture, seed).value()), run_(run), rng_(seed) {}

FakeTrainer::FakeTrainer(std::unique_ptr<Model> model, uint64_t seed, uint64_t run)
    : model_(std::move(model)), run_(run), rng_(seed) {}

Update FakeTrainer::Snapshot() const {
  Update snapshot;
  snapshot.set_version(version_);
  snapshot.set_base_version(0);
  snapshot.set_snapshot(true);
  snapshot.set_fingerprint(model_->spec().fingerprint());
  snapshot.set_run(run_);
  snapshot.set_encoding(FP32_ASSIGN);
  *snapshot.mutable_spec() = model_->spec();
  snapshot.set_torchscript_module(model_->torchscript_module());
  const ConstTensorViews views = static_cast<const Model&>(*model_).Views();
  for (size_t t = 0; t < views.size(); ++t) {
    AppendDenseTensor(static_cast<uint32_t>(t), views[t], &snapshot);
  }
  SealUpdate(&snapshot);
  snapshot.set_model_checksum(model_->Checksum());
  return snapshot;
}

Update FakeTrainer::Step(int per_tensor) {
  Update update;
  update.set_version(version_ + 1);
  update.set_base_version(version_);
  update.set_fingerprint(model_->spec().fingerprint());
  update.set_run(run_);
  update.set_encoding(FP32_ASSIGN);
  const TensorViews views = model_->Views();
  std::uniform_real_distribution<float> delta(0.02f, 0.2f);
  std::bernoulli_distribution negative(0.5);
  for (size_t t = 0; t < views.size(); ++t) {
    const absl::Span<float> tensor = views[t];
    std::uniform_int_distribution<uint32_t> pick(
        0, static_cast<uint32_t>(tensor.size() - 1));
    std::set<uint32_t> chosen;
    const size_t count = std::min<size_t>(per_tensor, tensor.size());
    while (chosen.size() < count) chosen.insert(pick(rng_));
    const std::vector<uint32_t> indices(chosen.begin(), chosen.end());
    std::vector<float> values;
    for (uint32_t i : indices) {
      tensor[i] += negative(rng_) ? -delta(rng_) : delta(rng_);
      values.push_back(tensor[i]);
    }
    AppendSparseTensor(static_cast<uint32_t>(t), indices, values, &update);
  }
  SealUpdate(&update);
  update.set_model_checksum(model_->Checksum());
  ++version_;
  return update;
}

}  // namespace test
}  // namespace contrail
