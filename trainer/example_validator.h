// Checks the labelled examples a producer sends (over IngestService or on a
// JetStream subject) against the model they are for, and keeps count of
// what it rejected and why.
//
// Torch-free. ExampleValidator is immutable; RejectionCounter is
// thread-safe.
#ifndef CONTRAIL_TRAINER_EXAMPLE_VALIDATOR_H_
#define CONTRAIL_TRAINER_EXAMPLE_VALIDATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/contrail.pb.h"
#include "trainer/example_source.h"

namespace contrail {

enum class RejectReason {
  kWrongShape,        // inputs not of the model's per-example shape
  kNonFinite,         // an input is NaN or infinite
  kLabelOutOfRange,   // label outside [0, num_classes)
  kMalformed,         // bytes that do not parse as an Example
};

// "wrong_shape", "non_finite", "label_out_of_range", "malformed": the keys
// of IngestSummary.rejected_by_reason and StatusResponse.rejected_by_reason.
const char* RejectReasonName(RejectReason reason);

struct Rejection {
  RejectReason reason;
  std::string message;  // what is wrong, e.g. "shape [784] is not [1, 28, 28]"
};

class ExampleValidator {
 public:
  ExampleValidator(std::vector<int64_t> input_shape, int64_t num_classes);

  // nullopt when `example` fits the model.
  std::optional<Rejection> Check(const Example& example) const;

  // Appends a valid example's inputs and label to `out`.
  static void AppendTo(const Example& example, Examples* out);

  const std::vector<int64_t>& input_shape() const { return input_shape_; }
  int64_t num_classes() const { return num_classes_; }

 private:
  const std::vector<int64_t> input_shape_;
  const int64_t num_classes_;
  const int64_t example_size_;
};

// Rejections counted by reason, with the first few described.
class RejectionCounter {
 public:
  // At most this many descriptions are kept.
  static constexpr int kKeptDescriptions = 5;

  // Counts one rejection of the example at `position` (counted from 0 in
  // whatever stream the caller reads) with optional `id`.
  void Record(const Rejection& rejection, int64_t position, const std::string& id)
      ABSL_LOCKS_EXCLUDED(mu_);

  int64_t total() const ABSL_LOCKS_EXCLUDED(mu_);
  std::map<std::string, int64_t> by_reason() const ABSL_LOCKS_EXCLUDED(mu_);
  // "example N (id X): why" for the first kKeptDescriptions rejections.
  std::vector<std::string> first() const ABSL_LOCKS_EXCLUDED(mu_);
  // One line for a log: "3 rejected (wrong_shape: 2, non_finite: 1); first:
  // example 4: ...; example 9: ...". Empty when nothing was rejected.
  std::string Summary() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> by_reason_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> first_ ABSL_GUARDED_BY(mu_);
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_EXAMPLE_VALIDATOR_H_
