#include "trainer/example_history.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>

namespace contrail {

ExampleHistory::ExampleHistory(std::vector<int64_t> input_shape, int64_t capacity)
    : input_shape_(std::move(input_shape)),
      example_size_(std::accumulate(input_shape_.begin(), input_shape_.end(),
                                    int64_t{1}, std::multiplies<int64_t>())),
      capacity_(capacity) {}

void ExampleHistory::Append(const Examples& examples) {
  inputs_.insert(inputs_.end(), examples.inputs.begin(), examples.inputs.end());
  labels_.insert(labels_.end(), examples.labels.begin(), examples.labels.end());
  if (capacity_ == 0) return;
  first_ = std::max(first_, end() - capacity_);
  // Compact once the forgotten examples reach a quarter of the capacity,
  // so that each example is moved at most about four times.
  const int64_t forgotten = first_ - offset_;
  if (forgotten > 0 && forgotten * 4 >= capacity_) {
    inputs_.erase(inputs_.begin(), inputs_.begin() + forgotten * example_size_);
    labels_.erase(labels_.begin(), labels_.begin() + forgotten);
    offset_ = first_;
  }
}

std::vector<int64_t> ExampleHistory::BatchShape(int64_t begin, int64_t end) const {
  std::vector<int64_t> shape = {end - begin};
  shape.insert(shape.end(), input_shape_.begin(), input_shape_.end());
  return shape;
}

absl::Span<const float> ExampleHistory::Inputs(int64_t begin, int64_t end) const {
  return absl::MakeConstSpan(inputs_).subspan((begin - offset_) * example_size_,
                                              (end - begin) * example_size_);
}

absl::Span<const int64_t> ExampleHistory::Labels(int64_t begin, int64_t end) const {
  return absl::MakeConstSpan(labels_).subspan(begin - offset_, end - begin);
}

std::pair<torch::Tensor, torch::Tensor> ExampleHistory::Gather(
    absl::Span<const int64_t> indices) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  torch::Tensor inputs = torch::empty(BatchShape(0, n), torch::kFloat);
  torch::Tensor labels = torch::empty({n}, torch::kLong);
  float* in = inputs.data_ptr<float>();
  int64_t* out_labels = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t stored = indices[i] - offset_;
    std::memcpy(in + i * example_size_, inputs_.data() + stored * example_size_,
                example_size_ * sizeof(float));
    out_labels[i] = labels_[stored];
  }
  return {inputs, labels};
}

}  // namespace contrail
