// One training step of a model on a batch: forward, cross-entropy loss,
// backward, then a dense optimizer step or a sparse one that changes only
// the entries selected from gradient + residual (so that the step's
// changes are exactly what an update will carry).
//
// Two ways to run the selection and the optimizer, with the same semantics
// (lazy Adam or SGD on the selected entries, the rest kept in a residual):
//  - on the CPU, SparseSelector's linear-time top-k and SparseOptimizer
//    over the model's float spans;
//  - with LibTorch tensor ops on the model's device (torch::topk, index
//    ops), for a model on a GPU. `tensor_ops` forces it on the CPU too,
//    which is how the tests check it where no GPU is.
// Random-k draws its indices from LibTorch's generator on the tensor-ops
// path, from the selector's seed on the CPU path.
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
  // `model` must outlive the step. The tensor-ops path runs when
  // `tensor_ops` is set or the model is not on the CPU.
  SgdStep(Model* model, const SparseOptimizer::Options& optimizer,
          const SparseSelector::Options& sparsity, bool tensor_ops = false);

  // Trains on `inputs` [N] + input shape with class `labels` [N] (int64),
  // on any device (they are moved to the model's). Sparse per the
  // selector's options when `sparse`, dense otherwise. Returns the loss
  // before the step, or NaN when the loss was not finite and the step was
  // skipped. INTERNAL when LibTorch fails (malformed tensors, an error
  // raised inside a TorchScript module): the model may then be partly
  // updated.
  absl::StatusOr<double> Run(const torch::Tensor& inputs, const torch::Tensor& labels,
                             bool sparse);

  int64_t skipped_steps() const { return skipped_steps_; }

  // The optimizer's and selector's state, for a checkpoint, and back. The
  // spans path only: UNIMPLEMENTED on the tensor-ops path (a GPU).
  absl::Status SaveState(OptimizerState* optimizer, SelectorState* selector) const;
  absl::Status RestoreState(const OptimizerState& optimizer, const SelectorState& selector);

 private:
  // The tensor-ops path's state of one parameter tensor, flattened, on the
  // model's device.
  struct DeviceState {
    torch::Tensor residual;
    torch::Tensor first_moment;
    torch::Tensor second_moment;
  };

  double RunOrThrow(const torch::Tensor& inputs, const torch::Tensor& labels,
                    bool sparse);
  // The optimizer step over the model's spans (CPU).
  void StepOnSpans(bool sparse);
  // The optimizer step with tensor ops on the model's device.
  void StepWithTensorOps(bool sparse);

  Model* const model_;
  const SparseOptimizer::Options optimizer_options_;
  const SparseSelector::Options sparsity_;
  const bool sparsity_enabled_;
  const bool tensor_ops_;
  SparseOptimizer optimizer_;
  SparseSelector selector_;
  std::vector<uint32_t> selected_;
  std::vector<DeviceState> device_state_;
  int64_t device_steps_ = 0;
  int64_t skipped_steps_ = 0;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_SGD_STEP_H_
