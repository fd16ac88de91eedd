#include "trainer/example_history.h"

#include <cstring>
#include <functional>
#include <numeric>

namespace contrail {

ExampleHistory::ExampleHistory(std::vector<int64_t> input_shape)
    : input_shape_(std::move(input_shape)),
      example_size_(std::accumulate(input_shape_.begin(), input_shape_.end(),
                                    int64_t{1}, std::multiplies<int64_t>())) {}

void ExampleHistory::Append(const Examples& examples) {
  inputs_.insert(inputs_.end(), examples.inputs.begin(), examples.inputs.end());
  labels_.insert(labels_.end(), examples.labels.begin(), examples.labels.end());
}

std::vector<int64_t> ExampleHistory::BatchShape(int64_t begin, int64_t end) const {
  std::vector<int64_t> shape = {end - begin};
  shape.insert(shape.end(), input_shape_.begin(), input_shape_.end());
  return shape;
}

absl::Span<const float> ExampleHistory::Inputs(int64_t begin, int64_t end) const {
  return absl::MakeConstSpan(inputs_).subspan(begin * example_size_,
                                              (end - begin) * example_size_);
}

absl::Span<const int64_t> ExampleHistory::Labels(int64_t begin, int64_t end) const {
  return absl::MakeConstSpan(labels_).subspan(begin, end - begin);
}

std::pair<torch::Tensor, torch::Tensor> ExampleHistory::Gather(
    absl::Span<const int64_t> indices) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  torch::Tensor inputs = torch::empty(BatchShape(0, n), torch::kFloat);
  torch::Tensor labels = torch::empty({n}, torch::kLong);
  float* in = inputs.data_ptr<float>();
  int64_t* out_labels = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(in + i * example_size_, inputs_.data() + indices[i] * example_size_,
                example_size_ * sizeof(float));
    out_labels[i] = labels_[indices[i]];
  }
  return {inputs, labels};
}

}  // namespace contrail
