// Synthetic concept drift for streams, so that users can watch how each
// training mode recovers (the paper's future work): from a given example on,
// either the labels are permuted (the same inputs now mean other classes),
// the images are rotated by 90 degrees (the same classes now look
// different), or the labels are replaced by random ones (label noise, which
// no model can learn; the deploy guard's test case).
//
// Torch-free, stateless free functions; thread-compatible.
#ifndef CONTRAIL_TRAINER_DRIFT_H_
#define CONTRAIL_TRAINER_DRIFT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/idx_reader.h"

namespace contrail {

enum class Drift {
  kNone,
  kPermuteLabels,  // label c becomes LabelPermutation(seed)[c]
  kRotate,         // each image is rotated 90 degrees clockwise
  kRandomLabels,   // label noise: each label is a seeded uniformly random class
};

// The label permutation used by kPermuteLabels for `classes` classes: a
// seeded derangement (no class keeps its label).
std::vector<int32_t> LabelPermutation(int32_t classes, uint64_t seed);

// Applies `drift` to examples [begin, data->count) of `data` in place.
// Rotation needs square images (INVALID_ARGUMENT otherwise).
absl::Status ApplyDrift(Drift drift, int64_t begin, uint64_t seed,
                        int32_t classes, LabelledImages* data);
// The same for examples [begin, end) only: a burst of drift (label noise
// for a window of the stream) that ends at `end`.
absl::Status ApplyDrift(Drift drift, int64_t begin, int64_t end, uint64_t seed,
                        int32_t classes, LabelledImages* data);

}  // namespace contrail

#endif  // CONTRAIL_TRAINER_DRIFT_H_
