#include "trainer/example_history.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/float_bytes.h"

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

void ExampleHistory::SaveState(HistoryState* out) const {
  out->set_first(first_);
  out->set_inputs(FloatsToBytes(Inputs(first_, end())));
  const absl::Span<const int64_t> labels = Labels(first_, end());
  out->mutable_labels()->Add(labels.begin(), labels.end());
}

absl::Status ExampleHistory::RestoreState(const HistoryState& state) {
  const int64_t count = state.labels_size();
  if (state.first() < 0 || (capacity_ > 0 && count > capacity_)) {
    return absl::DataLossError(absl::StrCat("history of ", count, " examples from ",
                                            state.first(), " does not fit capacity ",
                                            capacity_));
  }
  std::vector<float> inputs(count * example_size_);
  if (absl::Status s = BytesToFloats(state.inputs(), absl::MakeSpan(inputs), "history");
      !s.ok()) {
    return s;
  }
  inputs_ = std::move(inputs);
  labels_.assign(state.labels().begin(), state.labels().end());
  offset_ = state.first();
  first_ = state.first();
  return absl::OkStatus();
}

}  // namespace contrail
