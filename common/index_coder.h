// Compact coding of a strictly increasing list of indices into a tensor.
//
// The gaps (index - previous index - 1, the first previous index being -1)
// are Golomb-Rice coded with a parameter r chosen from their mean: each gap
// g costs (g >> r) one-bits, a zero-bit, and the r low bits of g, packed
// LSB-first. For k indices spread over N entries that is about
// log2(N/k) + 1.5 bits per index (1.5 bytes at 0.1 %), against 2 bytes for a
// varint and 4 for a plain 32-bit index; a run of neighbours costs one bit
// each.
//
// Torch-free, stateless free functions; thread-compatible.
#ifndef CONTRAIL_COMMON_INDEX_CODER_H_
#define CONTRAIL_COMMON_INDEX_CODER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace contrail {

// The Rice parameter for `indices` (strictly increasing, all < 2^32).
uint32_t ChooseRiceBits(absl::Span<const uint32_t> indices);

// Appends the Rice code of `indices` with parameter `rice_bits` (< 32) to
// `out`, padded with zero bits to a whole byte.
void EncodeIndices(absl::Span<const uint32_t> indices, uint32_t rice_bits,
                   std::string* out);

// Decodes `count` indices from `bytes`, each below `limit`. INVALID_ARGUMENT
// when the code is truncated, an index is out of range, or bytes beyond the
// padding remain.
absl::Status DecodeIndices(const std::string& bytes, uint32_t rice_bits,
                           uint32_t count, int64_t limit,
                           std::vector<uint32_t>* indices);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_INDEX_CODER_H_
