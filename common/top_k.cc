#include "common/top_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

namespace contrail {
namespace {

// Below this size the sampling machinery costs more than it saves.
constexpr int64_t kSmallTensor = 1 << 14;
// Sample size for the threshold estimate.
constexpr int64_t kSampleSize = 1 << 14;
// Tensors at least this large are scanned by several threads.
constexpr int64_t kParallelTensor = 1 << 21;

// |x| as comparable bits: for non-negative floats the IEEE order is the
// integer order, so magnitudes compare as uint32 (NaNs, above infinity, are
// filtered separately).
inline uint32_t MagnitudeBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits & 0x7fffffffu;
}

constexpr uint32_t kInfinityBits = 0x7f800000u;

inline bool IsNanBits(uint32_t magnitude) { return magnitude > kInfinityBits; }

// Appends to `out` the indices in [begin, end) whose magnitude is at least
// `threshold` (NaNs excluded).
void GatherCandidates(const float* values, int64_t begin, int64_t end,
                      uint32_t threshold, std::vector<uint32_t>* out) {
  for (int64_t i = begin; i < end; ++i) {
    const uint32_t m = MagnitudeBits(values[i]);
    if (m >= threshold && !IsNanBits(m)) out->push_back(static_cast<uint32_t>(i));
  }
}

void GatherCandidatesParallel(absl::Span<const float> values, uint32_t threshold,
                              std::vector<uint32_t>* out) {
  const int64_t n = static_cast<int64_t>(values.size());
  const int workers =
      n >= kParallelTensor
          ? static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u))
          : 1;
  out->clear();
  if (workers == 1) {
    GatherCandidates(values.data(), 0, n, threshold, out);
    return;
  }
  std::vector<std::vector<uint32_t>> parts(workers);
  std::vector<std::thread> threads;
  const int64_t chunk = (n + workers - 1) / workers;
  for (int w = 1; w < workers; ++w) {
    threads.emplace_back([&, w] {
      GatherCandidates(values.data(), std::min(n, w * chunk),
                       std::min(n, (w + 1) * chunk), threshold, &parts[w]);
    });
  }
  GatherCandidates(values.data(), 0, std::min(n, chunk), threshold, &parts[0]);
  for (std::thread& t : threads) t.join();
  for (const auto& part : parts) out->insert(out->end(), part.begin(), part.end());
}

// Keeps, in index order, the candidates above the exact k-th magnitude and
// the lowest-index ties at it. `candidates` (increasing indices) must hold
// every entry whose magnitude is at least that k-th magnitude.
void KeepTopOfCandidates(absl::Span<const float> values,
                         const std::vector<uint32_t>& candidates, int64_t k,
                         std::vector<uint32_t>* indices) {
  std::vector<uint32_t> magnitudes(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    magnitudes[i] = MagnitudeBits(values[candidates[i]]);
  }
  std::nth_element(magnitudes.begin(), magnitudes.begin() + (k - 1),
                   magnitudes.end(), std::greater<uint32_t>());
  const uint32_t kth = magnitudes[k - 1];
  int64_t above = 0;
  for (int64_t i = 0; i < k; ++i) above += magnitudes[i] > kth;
  int64_t ties_wanted = k - above;
  indices->clear();
  indices->reserve(k);
  for (uint32_t i : candidates) {
    const uint32_t m = MagnitudeBits(values[i]);
    if (m > kth) {
      indices->push_back(i);
    } else if (m == kth && ties_wanted > 0) {
      indices->push_back(i);
      --ties_wanted;
    }
  }
}

}  // namespace

void SelectTopKByFullSelection(absl::Span<const float> values, int64_t k,
                               std::vector<uint32_t>* indices) {
  indices->clear();
  const int64_t n = static_cast<int64_t>(values.size());
  k = std::clamp<int64_t>(k, 0, n);
  if (k == 0) return;
  std::vector<uint32_t> all;
  all.reserve(n);
  GatherCandidates(values.data(), 0, n, /*threshold=*/0, &all);
  if (static_cast<int64_t>(all.size()) <= k) {
    *indices = std::move(all);  // every non-NaN entry
    return;
  }
  KeepTopOfCandidates(values, all, k, indices);
}

void SelectTopK(absl::Span<const float> values, int64_t k,
                std::vector<uint32_t>* indices) {
  const int64_t n = static_cast<int64_t>(values.size());
  k = std::clamp<int64_t>(k, 0, n);
  if (n <= kSmallTensor || k == 0 || k * 16 > n) {
    SelectTopKByFullSelection(values, k, indices);
    return;
  }
  // A stratified sample: one entry from each of kSampleSize equal strata,
  // at a fixed pseudo-random offset, so the result is deterministic.
  std::vector<uint32_t> sample(kSampleSize);
  const int64_t stratum = n / kSampleSize;
  uint64_t state = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(n);
  for (int64_t j = 0; j < kSampleSize; ++j) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t i = j * stratum + static_cast<int64_t>((state >> 33) % stratum);
    const uint32_t m = MagnitudeBits(values[i]);
    sample[j] = IsNanBits(m) ? 0 : m;
  }
  // Aim for about 1.5 k + 64 candidates: enough margin that one pass almost
  // always suffices, few enough that the exact step is cheap.
  int64_t rank = std::min<int64_t>(
      kSampleSize - 1, (k * 3 / 2 + 64) * kSampleSize / n);
  std::vector<uint32_t> candidates;
  candidates.reserve(k * 2 + 128);
  while (true) {
    std::nth_element(sample.begin(), sample.begin() + rank, sample.end(),
                     std::greater<uint32_t>());
    const uint32_t threshold = sample[rank];
    GatherCandidatesParallel(values, threshold, &candidates);
    const int64_t found = static_cast<int64_t>(candidates.size());
    if (found >= k && found <= 64 * k + 4096) {
      KeepTopOfCandidates(values, candidates, k, indices);
      return;
    }
    if (found > k || threshold == 0 || rank == kSampleSize - 1) {
      // Ties or a degenerate sample: the estimate cannot help.
      SelectTopKByFullSelection(values, k, indices);
      return;
    }
    rank = std::min<int64_t>(kSampleSize - 1, rank * 4 + 16);
  }
}

}  // namespace contrail
