// One training step of a model on a batch: forward, cross-entropy loss,
// backward, then a dense optimizer step or a sparse one that changes only
// the entries the SparseSelector picks from gradient + residual (so that
// the step's changes are exactly what an update will carry).
//
// Not thread-safe; owned by the training thread, which also owns the model.
#ifndef CONTRAIL_TRAINER_SGD_STEP_H_
#define CONTRAIL_TRAINER_SGD_STEP_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.h"
#include "common/sparse_selector.h"
#include "trainer/sparse_optimizer.h"

namespace contrail {

class SgdStep {
 public:
  // `model` must outlive the step.
  SgdStep(Model* model, const SparseOptimizer::Options& optimizer,
          const SparseSelector::Options& sparsity);

  // Trains on `inputs` [N] + input shape with class `labels` [N] (int64).
  // Sparse per the selector's options when `sparse`, dense otherwise.
  // Returns the loss before the step, or NaN when the loss was not finite
  // and the step was skipped. INTERNAL when LibTorch fails (malformed
  // tensors, an error raised inside a TorchScript module): the model may
  // then be partly updated.
  absl::StatusOr<double> Run(const torch::Tensor& inputs, const torch::Tensor& labels,
             bool sparse);

  int64_t skipped_steps() const { return skipped_steps_; }

 private:
  double RunOrThrow(const torch::Tensor& inputs, const torch::Tensor& labels,
                    bool sparse);

  Model* const model_;
  const bool sparsity_enabled_;
  SparseOptimizer optimizer_;
  SparseSelector selector_;
  std::vector<uint32_t> selected_;
  int64_t skipped_steps_ = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_SGD_STEP_H_
