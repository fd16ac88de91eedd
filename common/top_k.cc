#include "common/top_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Entries at or above a threshold, in index order, with their magnitudes
// (kept so that the exact step never goes back to the tensor).
struct Candidates {
  std::vector<uint32_t> index;
  std::vector<uint32_t> magnitude;
  size_t size() const { return index.size(); }
  void clear() {
    index.clear();
    magnitude.clear();
  }
  void Add(int64_t i, uint32_t m) {
    index.push_back(static_cast<uint32_t>(i));
    magnitude.push_back(m);
  }
  void Append(const Candidates& other) {
    index.insert(index.end(), other.index.begin(), other.index.end());
    magnitude.insert(magnitude.end(), other.magnitude.begin(), other.magnitude.end());
  }
};

// Adds the entries in [begin, end) whose magnitude is at least `threshold`
// (NaNs excluded) to `out`. Blocks of 16 are screened with one branch-free
// (vectorised) test; most blocks hold no candidate. With SSE2 the screen
// yields a 16-bit mask and a block that passes costs one step per
// candidate, not one per entry, so that even at 1 % (one block in five
// holding a candidate) the pass costs little more than reading the tensor.
void GatherCandidates(const float* values, int64_t begin, int64_t end,
                      uint32_t threshold, Candidates* out) {
  // m in [threshold, infinity] <=> m - threshold <= infinity - threshold,
  // as unsigned arithmetic (m below the threshold wraps around).
  const uint32_t span = kInfinityBits - threshold;
  int64_t i = begin;
#if defined(__SSE2__)
  // Screen for m >= threshold only (magnitudes and the threshold are below
  // 2^31, so a signed comparison orders them); the few entries that pass
  // are then tested exactly, which drops NaNs.
  const __m128i abs_mask = _mm_set1_epi32(0x7fffffff);
  const __m128i above = _mm_set1_epi32(static_cast<int32_t>(threshold) - 1);
  auto lanes = [&](const float* p) {
    return _mm_cmpgt_epi32(
        _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), abs_mask),
        above);
  };
  for (; i + 16 <= end; i += 16) {
    const float* p = values + i;
    // Four lanes of all-ones or zeros per comparison, packed (with signed
    // saturation, which keeps -1 and 0) into one byte per entry.
    const __m128i low = _mm_packs_epi32(lanes(p), lanes(p + 4));
    const __m128i high = _mm_packs_epi32(lanes(p + 8), lanes(p + 12));
    uint32_t mask = static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(low, high)));
    while (mask != 0) {
      const int j = __builtin_ctz(mask);
      mask &= mask - 1;
      const uint32_t m = MagnitudeBits(p[j]);
      if (m - threshold <= span) out->Add(i + j, m);
    }
  }
#else
  uint32_t bits[16];
  for (; i + 16 <= end; i += 16) {
    std::memcpy(bits, values + i, sizeof(bits));
    uint32_t any = 0;
    for (int j = 0; j < 16; ++j) {
      any |= static_cast<uint32_t>(((bits[j] & 0x7fffffffu) - threshold) <= span);
    }
    if (any == 0) continue;
    for (int j = 0; j < 16; ++j) {
      const uint32_t m = bits[j] & 0x7fffffffu;
      if (m - threshold <= span) out->Add(i + j, m);
    }
  }
#endif
  for (; i < end; ++i) {
    const uint32_t m = MagnitudeBits(values[i]);
    if (m - threshold <= span) out->Add(i, m);
  }
}

void GatherCandidatesParallel(absl::Span<const float> values, uint32_t threshold,
                              Candidates* out) {
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
  // The first chunk goes straight into `out`; the others are appended.
  std::vector<Candidates> parts(workers);
  const size_t expected = out->index.capacity() / workers + 1024;
  std::vector<std::thread> threads;
  const int64_t chunk = (n + workers - 1) / workers;
  for (int w = 1; w < workers; ++w) {
    threads.emplace_back([&, w] {
      parts[w].index.reserve(expected);
      parts[w].magnitude.reserve(expected);
      GatherCandidates(values.data(), std::min(n, w * chunk),
                       std::min(n, (w + 1) * chunk), threshold, &parts[w]);
    });
  }
  GatherCandidates(values.data(), 0, std::min(n, chunk), threshold, out);
  for (std::thread& t : threads) t.join();
  for (int w = 1; w < workers; ++w) out->Append(parts[w]);
}

// Keeps, in index order, the candidates above the exact k-th magnitude and
// the lowest-index ties at it. `candidates` must hold every entry whose
// magnitude is at least that k-th magnitude, and at least k entries.
void KeepTopOfCandidates(const Candidates& candidates, int64_t k,
                         std::vector<uint32_t>* indices) {
  // The k-th magnitude by one radix step: count the candidates per value of
  // their high 16 bits (sign, exponent and 7 mantissa bits), find the bucket
  // that holds the k-th, and select exactly among that bucket's few
  // entries; two passes over the candidates instead of a full selection.
  std::vector<uint32_t> counts(1 << 16, 0);
  for (uint32_t m : candidates.magnitude) ++counts[m >> 16];
  int64_t above = 0;
  uint32_t bucket = (1 << 16) - 1;
  while (above + counts[bucket] < k) above += counts[bucket--];
  std::vector<uint32_t> in_bucket;
  in_bucket.reserve(counts[bucket]);
  for (uint32_t m : candidates.magnitude) {
    if ((m >> 16) == bucket) in_bucket.push_back(m);
  }
  const int64_t rank = k - above - 1;  // within the bucket, from the top
  std::nth_element(in_bucket.begin(), in_bucket.begin() + rank, in_bucket.end(),
                   std::greater<uint32_t>());
  const uint32_t kth = in_bucket[rank];
  for (int64_t i = 0; i < rank; ++i) above += in_bucket[i] > kth;
  int64_t ties_wanted = k - above;
  indices->clear();
  indices->reserve(k);
  for (size_t c = 0; c < candidates.size(); ++c) {
    const uint32_t m = candidates.magnitude[c];
    if (m > kth) {
      indices->push_back(candidates.index[c]);
    } else if (m == kth && ties_wanted > 0) {
      indices->push_back(candidates.index[c]);
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
  Candidates all;
  all.index.reserve(n);
  all.magnitude.reserve(n);
  GatherCandidates(values.data(), 0, n, /*threshold=*/0, &all);
  if (static_cast<int64_t>(all.size()) <= k) {
    *indices = std::move(all.index);  // every non-NaN entry
    return;
  }
  KeepTopOfCandidates(all, k, indices);
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
  Candidates candidates;
  candidates.index.reserve(k * 2 + 128);
  candidates.magnitude.reserve(k * 2 + 128);
  while (true) {
    std::nth_element(sample.begin(), sample.begin() + rank, sample.end(),
                     std::greater<uint32_t>());
    const uint32_t threshold = sample[rank];
    GatherCandidatesParallel(values, threshold, &candidates);
    const int64_t found = static_cast<int64_t>(candidates.size());
    if (found >= k && found <= 64 * k + 4096) {
      KeepTopOfCandidates(candidates, k, indices);
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
