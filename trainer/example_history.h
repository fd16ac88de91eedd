// Every example the trainer has taken in, in arrival order: the initial
// data, then the stream. The proactive sampler draws the b - t older
// examples of each batch from it by index, full retraining trains on all of
// it, and prequential evaluation reads the newest.
//
// Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_
#define CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "trainer/example_source.h"

namespace contrail {

class ExampleHistory {
 public:
  // Examples of `input_shape` (e.g. [1, 28, 28]) each.
  explicit ExampleHistory(std::vector<int64_t> input_shape);

  // Appends `examples` (whose inputs hold example_size() floats each).
  void Append(const Examples& examples);

  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int64_t example_size() const { return example_size_; }

  // The shape of examples [begin, end): [end - begin] + input shape.
  std::vector<int64_t> BatchShape(int64_t begin, int64_t end) const;
  // Their inputs and labels, as spans into the history (valid until the
  // next Append).
  absl::Span<const float> Inputs(int64_t begin, int64_t end) const;
  absl::Span<const int64_t> Labels(int64_t begin, int64_t end) const;

  // Copies of the inputs [N] + input shape and the labels [N] (int64) of
  // the examples at `indices`, each in [0, size()).
  std::pair<torch::Tensor, torch::Tensor> Gather(absl::Span<const int64_t> indices) const;

 private:
  const std::vector<int64_t> input_shape_;
  const int64_t example_size_;
  std::vector<float> inputs_;
  std::vector<int64_t> labels_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_
