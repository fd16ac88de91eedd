// Exact per-tensor top-k by magnitude in linear time.
//
// torch::topk sorts its way to the answer; selection only needs the k-th
// largest magnitude. SelectTopK estimates it from a fixed stratified sample,
// gathers the candidates at or above the estimate in one pass over the
// tensor (in parallel for large tensors; an SSE2 screen of 16 entries at a
// time), finds the exact k-th magnitude among the candidates (one radix
// step on their high 16 bits, then an exact selection within one bucket),
// and keeps, in index order, everything above it plus the lowest-index
// ties. At 1 % of 11 M floats that costs about 1.1-1.3x one read pass over
// the tensor (tests/sparse_bench.cc). When the estimate is too high it lowers it and
// passes again (rare); when it is useless (heavy ties) it falls back to a
// full selection. The result is the same set as torch::topk up to ties.
//
// Torch-free. Thread-compatible; SelectTopK may run worker threads itself.
#ifndef CONTRAIL_COMMON_TOP_K_H_
#define CONTRAIL_COMMON_TOP_K_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace contrail {

// Indices of the k largest |values[i]|, in increasing order. Among equal
// magnitudes the lower index wins, so the result is deterministic. NaN
// entries are never selected. k is clamped to [0, values.size()].
void SelectTopK(absl::Span<const float> values, int64_t k,
                std::vector<uint32_t>* indices);

// The reference: one full selection (std::nth_element) over a copy of the
// magnitudes. Same contract as SelectTopK; kept for tests and benchmarks.
void SelectTopKByFullSelection(absl::Span<const float> values, int64_t k,
                               std::vector<uint32_t>* indices);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_TOP_K_H_
