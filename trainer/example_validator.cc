#include "trainer/example_validator.h"

#include <cmath>
#include <functional>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace contrail {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kWrongShape:
      return "wrong_shape";
    case RejectReason::kNonFinite:
      return "non_finite";
    case RejectReason::kLabelOutOfRange:
      return "label_out_of_range";
    case RejectReason::kMalformed:
      return "malformed";
  }
  return "unknown";
}

ExampleValidator::ExampleValidator(std::vector<int64_t> input_shape, int64_t num_classes)
    : input_shape_(std::move(input_shape)),
      num_classes_(num_classes),
      example_size_(std::accumulate(input_shape_.begin(), input_shape_.end(),
                                    int64_t{1}, std::multiplies<int64_t>())) {}

std::optional<Rejection> ExampleValidator::Check(const Example& example) const {
  const Tensor& inputs = example.inputs();
  const std::vector<int64_t> shape(inputs.shape().begin(), inputs.shape().end());
  if (shape != input_shape_) {
    return Rejection{RejectReason::kWrongShape,
                     absl::StrCat("shape ", ShapeString(shape), " is not the model's ",
                                  ShapeString(input_shape_))};
  }
  if (inputs.values_size() != example_size_) {
    return Rejection{RejectReason::kWrongShape,
                     absl::StrCat(inputs.values_size(), " values for shape ",
                                  ShapeString(shape), " of ", example_size_)};
  }
  for (int i = 0; i < inputs.values_size(); ++i) {
    if (!std::isfinite(inputs.values(i))) {
      return Rejection{RejectReason::kNonFinite,
                       absl::StrCat("input ", i, " is ", inputs.values(i))};
    }
  }
  if (example.label() < 0 || example.label() >= num_classes_) {
    return Rejection{RejectReason::kLabelOutOfRange,
                     absl::StrCat("label ", example.label(), " is outside [0, ",
                                  num_classes_, ")")};
  }
  return std::nullopt;
}

void ExampleValidator::AppendTo(const Example& example, Examples* out) {
  out->inputs.insert(out->inputs.end(), example.inputs().values().begin(),
                     example.inputs().values().end());
  out->labels.push_back(example.label());
}

void RejectionCounter::Record(const Rejection& rejection, int64_t position,
                              const std::string& id) {
  absl::MutexLock lock(&mu_);
  ++total_;
  ++by_reason_[RejectReasonName(rejection.reason)];
  if (static_cast<int>(first_.size()) < kKeptDescriptions) {
    first_.push_back(absl::StrCat("example ", position,
                                  id.empty() ? "" : absl::StrCat(" (id ", id, ")"), ": ",
                                  rejection.message));
  }
}

int64_t RejectionCounter::total() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

std::map<std::string, int64_t> RejectionCounter::by_reason() const {
  absl::MutexLock lock(&mu_);
  return by_reason_;
}

std::vector<std::string> RejectionCounter::first() const {
  absl::MutexLock lock(&mu_);
  return first_;
}

std::string RejectionCounter::Summary() const {
  absl::MutexLock lock(&mu_);
  if (total_ == 0) return "";
  return absl::StrCat(
      total_, " rejected (",
      absl::StrJoin(by_reason_, ", ", absl::PairFormatter(": ")), "); first: ",
      absl::StrJoin(first_, "; "));
}

}  // namespace contrail
