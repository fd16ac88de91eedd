#include "trainer/drift.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace contrail {

std::vector<int32_t> LabelPermutation(int32_t classes, uint64_t seed) {
  std::vector<int32_t> permutation(classes);
  std::iota(permutation.begin(), permutation.end(), 0);
  if (classes < 2) return permutation;
  // A random cyclic shift of a random order: every class moves.
  std::mt19937_64 rng(seed);
  std::vector<int32_t> order = permutation;
  std::shuffle(order.begin(), order.end(), rng);
  const int32_t shift =
      std::uniform_int_distribution<int32_t>(1, classes - 1)(rng);
  for (int32_t i = 0; i < classes; ++i) {
    permutation[order[i]] = order[(i + shift) % classes];
  }
  return permutation;
}

absl::Status ApplyDrift(Drift drift, int64_t begin, uint64_t seed,
                        int32_t classes, LabelledImages* data) {
  return ApplyDrift(drift, begin, data->count, seed, classes, data);
}

absl::Status ApplyDrift(Drift drift, int64_t begin, int64_t end, uint64_t seed,
                        int32_t classes, LabelledImages* data) {
  end = std::clamp<int64_t>(end, 0, data->count);
  begin = std::clamp<int64_t>(begin, 0, end);
  if (drift == Drift::kNone) return absl::OkStatus();
  if (drift == Drift::kRandomLabels) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> label(0, classes - 1);
    for (int64_t i = begin; i < end; ++i) data->labels[i] = label(rng);
    return absl::OkStatus();
  }
  if (drift == Drift::kPermuteLabels) {
    const std::vector<int32_t> permutation = LabelPermutation(classes, seed);
    for (int64_t i = begin; i < end; ++i) {
      int32_t& label = data->labels[i];
      if (label < 0 || label >= classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "label ", label, " of example ", i, " is outside ", classes, " classes"));
      }
      label = permutation[label];
    }
    return absl::OkStatus();
  }
  if (data->rows != data->cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rotate drift needs square images, got ", data->rows, "x", data->cols));
  }
  const int64_t n = data->rows;
  std::vector<float> rotated(n * n);
  for (int64_t e = begin; e < end; ++e) {
    float* image = data->pixels.data() + e * n * n;
    // Clockwise: output (r, c) takes input (n - 1 - c, r).
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < n; ++c) rotated[r * n + c] = image[(n - 1 - c) * n + r];
    }
    std::copy(rotated.begin(), rotated.end(), image);
  }
  return absl::OkStatus();
}

}  // namespace contrail
