// The examples the trainer has taken in, in arrival order: the initial
// data, then the stream. The proactive sampler draws the b - t older
// examples of each batch from it by index, full retraining trains on all of
// it, and prequential evaluation reads the newest.
//
// Examples are indexed by arrival, from 0. The history is bounded: it keeps
// the newest `capacity` examples, [first(), end()), and forgets older ones
// (a sliding window: the oldest go first). Memory stays within 1.25 times
// the capacity: forgotten examples are compacted away in chunks.
//
// Not thread-safe; owned by the training thread.
#ifndef CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_
#define CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "proto/checkpoint.pb.h"
#include "trainer/example_source.h"

namespace contrail {

class ExampleHistory {
 public:
  // Examples of `input_shape` (e.g. [1, 28, 28]) each; at most `capacity`
  // kept (0 = every example).
  explicit ExampleHistory(std::vector<int64_t> input_shape, int64_t capacity = 0);

  // Appends `examples` (whose inputs hold example_size() floats each),
  // forgetting the oldest beyond the capacity.
  void Append(const Examples& examples);

  // The oldest example kept, and one past the newest: examples taken in.
  int64_t first() const { return first_; }
  int64_t end() const { return offset_ + static_cast<int64_t>(labels_.size()); }
  int64_t example_size() const { return example_size_; }

  // The shape of examples [begin, end): [end - begin] + input shape.
  std::vector<int64_t> BatchShape(int64_t begin, int64_t end) const;
  // Their inputs and labels, as spans into the history (valid until the
  // next Append), for first() <= begin <= end <= end().
  absl::Span<const float> Inputs(int64_t begin, int64_t end) const;
  absl::Span<const int64_t> Labels(int64_t begin, int64_t end) const;

  // Copies of the inputs [N] + input shape and the labels [N] (int64) of
  // the examples at `indices`, each in [first(), end()).
  std::pair<torch::Tensor, torch::Tensor> Gather(absl::Span<const int64_t> indices) const;

  // The kept examples, for a checkpoint; RestoreState() replaces the
  // history with them (DATA_LOSS when they do not fit the input shape or
  // exceed the capacity).
  void SaveState(HistoryState* out) const;
  absl::Status RestoreState(const HistoryState& state);

 private:
  const std::vector<int64_t> input_shape_;
  const int64_t example_size_;
  const int64_t capacity_;
  // Examples [offset_, end()) are stored; those before first_ are forgotten
  // and wait for compaction.
  int64_t offset_ = 0;
  int64_t first_ = 0;
  std::vector<float> inputs_;
  std::vector<int64_t> labels_;
};

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_EXAMPLE_HISTORY_H_
