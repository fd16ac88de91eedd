// SGD and Adam that can update only chosen entries of each tensor.
//
// A sparse step touches exactly the selected entries: SGD plainly, Adam
// lazily (its moments move only where an entry is selected; bias correction
// uses the global step count, as in TensorFlow's LazyAdam). So an update
// that carries the selected entries carries every change the step made,
// and a deployed replica can follow the trainer exactly. (The paper's code
// fed a masked gradient to a dense Adam step, whose moments kept changing
// ~40 % of the weights that were never sent.) A dense step is the same
// arithmetic on every entry and matches torch.optim's SGD and Adam.
//
// Torch-free. Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_SPARSE_OPTIMIZER_H_
#define CONTRAIL_TRAINER_SPARSE_OPTIMIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "proto/checkpoint.pb.h"

namespace contrail {

enum class OptimizerKind { kSgd, kAdam };

class SparseOptimizer {
 public:
  struct Options {
    OptimizerKind kind = OptimizerKind::kAdam;
    // Learning rate; 1e-3 is the paper's (and PyTorch's) Adam default.
    double lr = 1e-3;
    double beta1 = 0.9;    // Adam's first-moment decay
    double beta2 = 0.999;  // Adam's second-moment decay
    double epsilon = 1e-8; // Adam's denominator guard
  };

  SparseOptimizer(const Options& options, std::vector<int64_t> tensor_sizes);

  // Starts a step: every Update() until the next BeginStep() belongs to it.
  void BeginStep();

  // Applies the step to `weights` of tensor `tensor` at `indices` only, using
  // `gradient` at those indices.
  void Update(size_t tensor, absl::Span<float> weights,
              absl::Span<const float> gradient,
              absl::Span<const uint32_t> indices);

  // Applies the step to every entry.
  void UpdateDense(size_t tensor, absl::Span<float> weights,
                   absl::Span<const float> gradient);

  int64_t step() const { return step_; }

  // The moments and step count, for a checkpoint; RestoreState() takes
  // them back (DATA_LOSS when they do not fit the tensors).
  void SaveState(OptimizerState* out) const;
  absl::Status RestoreState(const OptimizerState& state);
  const Options& options() const { return options_; }

 private:
  // Adam's arithmetic for entry i, shared by the sparse and dense paths.
  void AdamEntry(size_t tensor, size_t i, float g, float* w);

  const Options options_;
  std::vector<std::vector<float>> first_moment_;   // Adam only
  std::vector<std::vector<float>> second_moment_;  // Adam only
  int64_t step_ = 0;
  // Adam's bias corrections for step_, set by BeginStep().
  float step_size_ = 0;
  float bias_correction2_sqrt_ = 1;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_SPARSE_OPTIMIZER_H_
