// Benchmarks of the sparse-update path, printed as Markdown tables (aligned
// plain text that pastes into a README), every number measured in one run:
//
//  1. Selection: torch::topk(abs(x), k), as the paper's code selects, against
//     our linear-time SelectTopK and the nth_element reference, on N(0, 1)
//     tensors of the sizes of LeNet-5, MobileNetV2, ResNet-18 and ResNet-50,
//     and a check that the selected sets agree.
//  2. Codec: bytes per entry and encode / decode / apply time per entry of a
//     one-tensor update, for each value encoding.
//  3. Proactive iteration (b = 128, t = 8, Adam 1e-3): dense training step
//     alone, dense step + dense update, and top-k 0.1 % step + 0.1 % update
//     published in line and overlapped with the next step (the trainer's
//     Deployer and PublishingThread), for LeNet-5 and ResNet-18, with the
//     sparse iteration broken down.
//  4. Update framing: a whole model's 0.1 % update (at least one entry per
//     tensor, buffers whole, as the publisher sends it) for LeNet-5 and
//     ResNet-18, in the per-tensor form and the model-wide form, split into
//     index bytes, value bytes and the rest (header and framing).
//
// Section 1 also times one read pass over each tensor (the largest
// magnitude, one thread), the floor that any exact top-k must pay, and
// reports top-k's time as a multiple of it.
// Timings are medians over repetitions (section 3: means over iterations),
// after one untimed warm-up call. --quick runs a reduced version (sizes up to
// 2.2M, fewer repetitions, LeNet-5 only) to check that everything works.
//
//   bazel run //tests:sparse_bench
//   bazel run //tests:sparse_bench -- --quick
//   bazel run //tests:sparse_bench -- --sections=selection,framing
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "common/model.h"
#include "common/model_spec.h"
#include "common/sparse_selector.h"
#include "common/tensor_views.h"
#include "common/top_k.h"
#include "common/update_codec.h"
#include "proto/contrail.pb.h"
#include "tests/markdown_table.h"
#include "trainer/deployer.h"
#include "trainer/proactive_sampler.h"
#include "trainer/sgd_step.h"
#include "trainer/sparse_optimizer.h"
#include "trainer/update_publisher.h"

ABSL_FLAG(bool, quick, false,
          "reduced run for smoke testing: sizes up to 2.2M, fewer "
          "repetitions, LeNet-5 only in the iteration section");
ABSL_FLAG(std::vector<std::string>, sections,
          std::vector<std::string>({"selection", "codec", "iteration", "framing"}),
          "which sections to run: selection, codec, iteration, framing");
ABSL_FLAG(int32_t, threads, 0,
          "LibTorch intra-op threads, as the trainer's --threads; 0 keeps "
          "LibTorch's default");

namespace contrail {
namespace {

constexpr uint64_t kSeed = 20210501;

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

// Median of `reps` timed calls of `fn`, in ms, after one untimed warm-up.
double MedianMs(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const Clock::time_point start = Clock::now();
    fn();
    ms.push_back(MsSince(start));
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  return n % 2 == 1 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

// 1234567 -> "1,234,567".
std::string Thousands(int64_t v) {
  std::string digits = absl::StrCat(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// Fixed-point with `precision` decimals, but 3 significant digits for
// small values so that they stay readable.
std::string Num(double v, int precision = 2) {
  if (v != 0 && std::fabs(v) < 0.1 && precision < 3) precision = 3;
  return absl::StrFormat("%.*f", precision, v);
}

std::string Percent(double ratio) {
  return absl::StrFormat("%g %%", ratio * 100);
}

struct Sized {
  const char* model;
  int64_t n;
};

// ------------------------------------------------------------ selection ----

// The largest |x| in one pass: the least any exact top-k must do. Integer
// maxima over the magnitude bits in 16 lanes, so that the loop vectorises
// at -O2 and the baseline is as fast as a plain read.
uint32_t MaxMagnitudeBits(absl::Span<const float> values) {
  uint32_t lanes[16] = {};
  const float* data = values.data();
  size_t i = 0;
  for (; i + 16 <= values.size(); i += 16) {
    uint32_t bits[16];
    std::memcpy(bits, data + i, sizeof(bits));
    for (int j = 0; j < 16; ++j) lanes[j] = std::max(lanes[j], bits[j] & 0x7fffffffu);
  }
  uint32_t largest = 0;
  for (uint32_t lane : lanes) largest = std::max(largest, lane);
  for (; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, data + i, sizeof(bits));
    largest = std::max(largest, bits & 0x7fffffffu);
  }
  return largest;
}

// "ok" when `ours` (increasing) equals torch's set; "ok (ties)" when the two
// differ only among entries of the k-th magnitude; "MISMATCH" otherwise.
std::string CompareSets(absl::Span<const float> values,
                        std::vector<uint32_t> theirs,
                        const std::vector<uint32_t>& ours) {
  std::sort(theirs.begin(), theirs.end());
  if (theirs == ours) return "ok";
  if (theirs.size() != ours.size() || ours.empty()) return "MISMATCH";
  float kth = INFINITY;
  for (uint32_t i : ours) kth = std::min(kth, std::fabs(values[i]));
  std::vector<uint32_t> only_ours, only_theirs;
  std::set_difference(ours.begin(), ours.end(), theirs.begin(), theirs.end(),
                      std::back_inserter(only_ours));
  std::set_difference(theirs.begin(), theirs.end(), ours.begin(), ours.end(),
                      std::back_inserter(only_theirs));
  for (uint32_t i : only_ours) {
    if (std::fabs(values[i]) != kth) return "MISMATCH";
  }
  for (uint32_t i : only_theirs) {
    if (std::fabs(values[i]) != kth) return "MISMATCH";
  }
  return "ok (ties)";
}

void RunSelection(const std::vector<Sized>& sizes,
                  const std::vector<double>& ratios, bool quick) {
  std::printf(
      "## 1. Top-k selection (x ~ N(0,1); median ms; torch = "
      "torch::topk(x.abs(), k), sorted, as the paper's code)\n\n");
  Table table({"<model size", "n", "keep", "k", "torch ms", "ours ms",
               "nth_element ms", "read pass ms", "torch/ours", "ours/read",
               "<same set"});
  for (const Sized& s : sizes) {
    torch::manual_seed(kSeed);
    const torch::Tensor x = torch::randn({s.n});
    const absl::Span<const float> values(x.data_ptr<float>(),
                                         static_cast<size_t>(s.n));
    // torch::topk at 25.6M takes a good fraction of a second per call.
    const int torch_reps = quick ? 2 : (s.n > 20000000 ? 3 : 5);
    const int our_reps = quick ? 3 : 7;
    uint32_t sink = 0;
    for (double ratio : ratios) {
      const double read_ms =
          MedianMs(our_reps, [&] { sink ^= MaxMagnitudeBits(values); });
      const int64_t k = KeepCount(s.n, ratio);
      torch::Tensor torch_indices;
      const double torch_ms = MedianMs(torch_reps, [&] {
        torch_indices = std::get<1>(torch::topk(x.abs(), k));
      });
      std::vector<uint32_t> ours;
      const double ours_ms =
          MedianMs(our_reps, [&] { SelectTopK(values, k, &ours); });
      std::vector<uint32_t> reference;
      const double reference_ms = MedianMs(torch_reps, [&] {
        SelectTopKByFullSelection(values, k, &reference);
      });

      const torch::Tensor ti = torch_indices.to(torch::kInt64).contiguous();
      std::vector<uint32_t> theirs(ti.numel());
      for (int64_t j = 0; j < ti.numel(); ++j) {
        theirs[j] = static_cast<uint32_t>(ti.data_ptr<int64_t>()[j]);
      }
      std::string check = CompareSets(values, theirs, ours);
      if (reference != ours) check += ", nth_element MISMATCH";
      table.AddRow({absl::StrCat(s.model), Thousands(s.n), Percent(ratio),
                    Thousands(k), Num(torch_ms), Num(ours_ms),
                    Num(reference_ms), Num(read_ms), Num(torch_ms / ours_ms, 1),
                    Num(ours_ms / read_ms, 2) + "x", check});
    }
    if (sink == 1) std::printf(" ");  // keeps the read passes alive
  }
  table.Print();
  std::printf(
      "read pass = the largest |x| over the tensor, one thread; ours uses up to "
      "std::thread::hardware_concurrency() threads from 2M entries on.\n\n");
}

// ---------------------------------------------------------------- codec ----

ModelSpec OneTensorSpec(int64_t n) {
  ModelSpec spec;
  spec.set_architecture("bench");
  spec.add_input_shape(1);
  spec.set_num_classes(1);
  TensorSpec* t = spec.add_tensors();
  t->set_name("t");
  t->add_shape(n);
  t->set_dtype("float32");
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

void RunCodec(const std::vector<Sized>& sizes,
              const std::vector<double>& ratios, bool quick) {
  std::printf(
      "## 2. Update codec (one tensor; k uniformly placed entries; fp32 "
      "values ~ N(0,1), fp16/bf16 deltas ~ N(0,1e-3); median ns per "
      "entry)\n\n");
  Table table({"<model size", "n", "keep", "entries", "<values", "bytes/entry",
               "update KB", "encode ns", "decode ns", "apply ns"});
  const int reps = quick ? 3 : 5;
  const std::vector<std::pair<const char*, ValueEncoding>> encodings = {
      {"fp32", FP32_ASSIGN}, {"fp16", FP16_DELTA}, {"bf16", BF16_DELTA}};
  for (const Sized& s : sizes) {
    const ModelSpec spec = OneTensorSpec(s.n);
    std::vector<float> replica(s.n, 0.0f);
    const TensorViews views = {absl::MakeSpan(replica)};
    std::mt19937_64 rng(kSeed);
    for (double ratio : ratios) {
      const int64_t k = KeepCount(s.n, ratio);
      std::vector<uint32_t> indices;
      SelectRandomK(s.n, k, &rng, &indices);
      for (const auto& [name, encoding] : encodings) {
        std::normal_distribution<float> value_dist(
            0.0f, IsDeltaEncoding(encoding) ? 1e-3f : 1.0f);
        std::vector<float> values(k);
        for (float& v : values) v = value_dist(rng);

        Update header;
        header.set_version(2);
        header.set_base_version(1);
        header.set_fingerprint(spec.fingerprint());
        header.set_run(1);
        header.set_encoding(encoding);
        // Enough updates per timed sample that tiny ones are measurable.
        const int64_t inner =
            std::max<int64_t>(1, 200000 / std::max<int64_t>(k, 1));

        Update update;
        int64_t entries = 0;
        const double encode_ms = MedianMs(reps, [&] {
          for (int64_t i = 0; i < inner; ++i) {
            update = header;
            entries = AppendSparseTensor(0, indices, values, &update);
            SealUpdate(&update);
          }
        });
        absl::StatusOr<std::vector<DecodedTensor>> decoded;
        const double decode_ms = MedianMs(reps, [&] {
          for (int64_t i = 0; i < inner; ++i) decoded = DecodeUpdate(update, spec);
        });
        if (!decoded.ok()) {
          std::fprintf(stderr, "decode failed: %s\n",
                       std::string(decoded.status().message()).c_str());
          std::exit(1);
        }
        const double apply_ms = MedianMs(reps, [&] {
          for (int64_t i = 0; i < inner; ++i) ApplyDecoded(*decoded, views);
        });
        const double per_entry_ns = 1e6 / static_cast<double>(inner * entries);
        const auto bytes = static_cast<double>(update.ByteSizeLong());
        table.AddRow({s.model, Thousands(s.n), Percent(ratio),
                      Thousands(entries), name, Num(bytes / entries),
                      Num(bytes / 1024.0, 1), Num(encode_ms * per_entry_ns, 1),
                      Num(decode_ms * per_entry_ns, 1),
                      Num(apply_ms * per_entry_ns, 1)});
      }
    }
  }
  table.Print();
}

// ------------------------------------------------------------ iteration ----

constexpr int64_t kBatch = 128;
constexpr int64_t kTrigger = 8;
constexpr int64_t kHistory = 1024;  // examples seen before the first step
constexpr int kWarmup = 2;

// Iterations each configuration runs back to back before the next one
// takes over (the first of each block is not timed: nothing of the
// overlapped configuration is in flight then).
constexpr int kBlock = 6;

enum class Mode { kDenseStepOnly, kDense, kTopK, kTopKOverlapped };

struct IterationStats {
  double iteration_ms = 0;  // batch formation + step + publish
  double step_ms = 0;       // SgdStep::Run
  // Deployer::AfterStep on the training thread: the whole update in line;
  // overlapped, the staging copy and the wait for the update before.
  double publish_ms = 0;
  // Overlapped: UpdatePublisher::Publish on the publishing thread.
  double background_publish_ms = 0;
  double selection_ms = 0;  // SparseSelector over the step's gradients
  double entries = 0;       // per update
  double bytes = 0;         // per update
};

// Random 28x28x1 images in [0, 1) with labels in [0, 10), shared by every
// configuration so that they train on the same stream.
struct Stream {
  torch::Tensor images;  // [kHistory + steps * kTrigger, 1, 28, 28]
  torch::Tensor labels;  // int64
};

Stream MakeStream(int steps) {
  torch::manual_seed(kSeed);
  const int64_t m = kHistory + steps * kTrigger;
  return {torch::rand({m, 1, 28, 28}), torch::randint(0, 10, {m}, torch::kInt64)};
}

// One configuration's training loop: its own model, step, mirror and
// publisher, advanced one iteration at a time so that the configurations
// can run interleaved (any drift in machine load then hits all alike).
class IterationRunner {
 public:
  IterationRunner(const std::string& architecture, Mode mode,
                  const Stream* stream)
      : mode_(mode), stream_(stream), sampler_(kSeed) {
    absl::StatusOr<std::unique_ptr<Model>> created =
        Model::Create(architecture, kSeed);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n",
                   std::string(created.status().message()).c_str());
      std::exit(1);
    }
    model_ = std::move(*created);
    const bool sparse = mode == Mode::kTopK || mode == Mode::kTopKOverlapped;

    SparseOptimizer::Options optimizer;
    optimizer.kind = OptimizerKind::kAdam;
    optimizer.lr = 1e-3;
    SparseSelector::Options sparsity;
    sparsity.sparsity = sparse ? Sparsity::kTopK : Sparsity::kNone;
    sparsity.ratio = kRatio;
    step_ = std::make_unique<SgdStep>(model_.get(), optimizer, sparsity);

    TensorViews mirror;
    for (absl::Span<float> v : model_->Views()) {
      mirror_storage_.emplace_back(v.size());
    }
    for (std::vector<float>& m : mirror_storage_) {
      mirror.push_back(absl::MakeSpan(m));
    }
    UpdatePublisher::Options publish;
    publish.encoding = FP32_ASSIGN;
    publish.deploy_ratio = sparse ? kRatio : 1.0;
    publisher_ =
        UpdatePublisher::Create(model_->spec(), mirror, publish).value();
    // The trainer's deploy path: Deployer::AfterStep, in line or on the
    // publishing thread.
    Deployer::Options deploy;
    deploy.overlap = mode == Mode::kTopKOverlapped;
    deployer_ = std::make_unique<Deployer>(deploy, publisher_.get());
    deployer_->Start(AsConst(model_->Views()));

    // Selection happens inside SgdStep::Run; to split it out, a second
    // selector with the same options is timed on copies of each step's
    // gradients.
    std::vector<int64_t> sizes;
    for (int t = 0; t < model_->num_parameter_tensors(); ++t) {
      sizes.push_back(TensorSize(model_->spec().tensors(t)));
    }
    gradient_copies_.resize(sizes.size());
    selector_ = std::make_unique<SparseSelector>(sparsity, std::move(sizes));
  }

  // Iteration i of the stream: batch = the t examples that arrived + b - t
  // from the history before them, one step, then (unless kDenseStepOnly)
  // one update.
  void Iterate(int i, bool timed) {
    const bool sparse = mode_ == Mode::kTopK || mode_ == Mode::kTopKOverlapped;
    // Updates from here on are counted (overlapped: from the one in flight).
    if (timed && timed_ == 0) counted_ = deployer_->counters();
    const Clock::time_point start = Clock::now();
    const int64_t first_new = kHistory + i * kTrigger;
    std::vector<int64_t> new_examples(kTrigger);
    for (int64_t j = 0; j < kTrigger; ++j) new_examples[j] = first_new + j;
    const std::vector<int64_t> batch =
        sampler_.FormBatch(new_examples, first_new, kBatch);
    const torch::Tensor index = torch::tensor(batch, torch::kInt64);
    const torch::Tensor inputs = stream_->images.index_select(0, index);
    const torch::Tensor labels = stream_->labels.index_select(0, index);

    const Clock::time_point step_start = Clock::now();
    const absl::StatusOr<double> loss = step_->Run(inputs, labels, sparse);
    if (!loss.ok()) {
      std::fprintf(stderr, "sparse_bench: %s\n", loss.status().ToString().c_str());
      std::exit(1);
    }
    const double step_ms = MsSince(step_start);

    double publish_ms = 0;
    if (mode_ != Mode::kDenseStepOnly) {
      const Clock::time_point publish_start = Clock::now();
      Check(deployer_->AfterStep(AsConst(model_->Views())));
      publish_ms = MsSince(publish_start);
    }
    const double iteration_ms = MsSince(start);
    if (!timed) return;
    ++timed_;
    sums_.iteration_ms += iteration_ms;
    sums_.step_ms += step_ms;
    sums_.publish_ms += publish_ms;
    // The update AfterStep() waited for (the one before this step's).
    if (mode_ == Mode::kTopKOverlapped) {
      sums_.background_publish_ms += absl::ToDoubleMilliseconds(deployer_->last_publish_time());
    }

    if (mode_ == Mode::kTopK) {
      TensorViews gradients = model_->GradientViews();
      for (size_t t = 0; t < gradient_copies_.size(); ++t) {
        gradient_copies_[t].assign(gradients[t].begin(), gradients[t].end());
      }
      const Clock::time_point select_start = Clock::now();
      for (size_t t = 0; t < gradient_copies_.size(); ++t) {
        if (gradient_copies_[t].empty()) continue;
        selector_->Select(t, absl::MakeSpan(gradient_copies_[t]), &selected_);
      }
      sums_.selection_ms += MsSince(select_start);
    }
  }

  // Waits for the update in flight: between blocks, untimed, so that none
  // overlaps with another configuration's iterations.
  void Drain() { Check(deployer_->Drain()); }

  // Means over the timed iterations (after Drain()).
  IterationStats Mean() const {
    IterationStats mean = sums_;
    const Deployer::Counters& counters = deployer_->counters();
    const double updates = static_cast<double>(counters.version - counted_.version);
    mean.entries = static_cast<double>(counters.entries - counted_.entries) / std::max(updates, 1.0);
    mean.bytes = static_cast<double>(counters.payload_bytes - counted_.payload_bytes) /
                 std::max(updates, 1.0);
    for (double* v : {&mean.iteration_ms, &mean.step_ms, &mean.publish_ms,
                      &mean.selection_ms}) {
      *v /= std::max(timed_, 1);
    }
    mean.background_publish_ms /= std::max(timed_, 1);
    return mean;
  }

 private:
  static void Check(const absl::Status& status) {
    if (status.ok()) return;
    std::fprintf(stderr, "sparse_bench: %s\n", status.ToString().c_str());
    std::exit(1);
  }

  static constexpr double kRatio = 0.001;

  const Mode mode_;
  const Stream* const stream_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<SgdStep> step_;
  std::vector<std::vector<float>> mirror_storage_;  // the servers' model
  std::unique_ptr<UpdatePublisher> publisher_;
  std::unique_ptr<Deployer> deployer_;  // after publisher_: joins first
  Deployer::Counters counted_;  // at the first timed iteration
  ProactiveSampler sampler_;
  std::unique_ptr<SparseSelector> selector_;
  std::vector<std::vector<float>> gradient_copies_;
  std::vector<uint32_t> selected_;
  IterationStats sums_;
  int timed_ = 0;
};

void RunIterationSection(bool quick) {
  struct Case {
    const char* architecture;
    const char* label;
    int iterations;
  };
  // Iterations: whole blocks.
  std::vector<Case> cases = {{"lenet5", "LeNet-5", quick ? kBlock : 8 * kBlock}};
  if (!quick) cases.push_back({"resnet18", "ResNet-18", 3 * kBlock});
  int max_iterations = 0;
  for (const Case& c : cases) {
    max_iterations = std::max(max_iterations, c.iterations);
  }
  const Stream stream = MakeStream(kWarmup + max_iterations);

  std::printf(
      "## 3. Proactive training iteration (b = %lld, t = %lld, 28x28x1 "
      "random inputs, Adam lr 1e-3, fp32 updates; the four configurations "
      "take turns in blocks of %d iterations, mean ms over the timed "
      "iterations: all but the first of each block and the first %d)"
      "\n\n",
      static_cast<long long>(kBatch), static_cast<long long>(kTrigger), kBlock,
      kWarmup);
  Table table({"<model", "<configuration", "iters", "step ms", "publish ms",
               "iteration ms", "vs dense step", "entries/update",
               "KB/update"});
  Table breakdown({"<model", "<update", "fwd/bwd + optimizer ms", "selection ms",
                   "publish ms (training thread)", "publishing thread ms",
                   "sparse iteration ms", "dense step ms", "sparse/dense step"});
  for (const Case& c : cases) {
    IterationRunner dense_step(c.architecture, Mode::kDenseStepOnly, &stream);
    IterationRunner dense(c.architecture, Mode::kDense, &stream);
    IterationRunner topk(c.architecture, Mode::kTopK, &stream);
    IterationRunner overlapped(c.architecture, Mode::kTopKOverlapped, &stream);
    // Back to back within a block, so that an overlapped update overlaps
    // with its own configuration's next step and nothing else; blocks take
    // turns, so that drift in machine load hits every configuration alike.
    for (int block = 0; block * kBlock < c.iterations; ++block) {
      for (IterationRunner* runner : {&dense_step, &dense, &topk, &overlapped}) {
        for (int j = 0; j < kBlock; ++j) {
          const int i = block * kBlock + j;
          runner->Iterate(i, /*timed=*/j > 0 && i >= kWarmup);
        }
        runner->Drain();
      }
    }
    const IterationStats base = dense_step.Mean();
    auto add = [&](const char* configuration, const IterationStats& s,
                   bool published) {
      table.AddRow({c.label, configuration, absl::StrCat(c.iterations),
                    Num(s.step_ms), published ? Num(s.publish_ms) : "-",
                    Num(s.iteration_ms),
                    Num(s.iteration_ms / base.iteration_ms) + "x",
                    published ? Thousands(std::llround(s.entries)) : "-",
                    published ? Num(s.bytes / 1024.0, 1) : "-"});
    };
    const IterationStats sparse = topk.Mean();
    const IterationStats sparse_overlapped = overlapped.Mean();
    add("dense step, no publishing", base, false);
    add("dense step + dense update", dense.Mean(), true);
    add("top-k 0.1 % step + update", sparse, true);
    add("top-k 0.1 % step + overlapped update", sparse_overlapped, true);
    for (const auto& [update, s] : {std::make_pair("in line", sparse),
                                   std::make_pair("overlapped", sparse_overlapped)}) {
      breakdown.AddRow({c.label, update, Num(s.step_ms - sparse.selection_ms),
                        Num(sparse.selection_ms), Num(s.publish_ms),
                        s.background_publish_ms > 0 ? Num(s.background_publish_ms) : "-",
                        Num(s.iteration_ms), Num(base.iteration_ms),
                        Num(s.iteration_ms / base.iteration_ms) + "x"});
    }
  }
  table.Print();
  std::printf(
      "Sparse iteration broken down (selection = SparseSelector::Select over "
      "every parameter tensor, timed separately on copies of the in-line "
      "configuration's gradients; fwd/bwd + optimizer = step - selection; "
      "overlapped, the publishing thread's Publish() runs during the next "
      "step and the training thread pays the staging copy and any wait):\n\n");
  breakdown.Print();
}

// ------------------------------------------------------------- framing ----

struct Framing {
  int64_t entries = 0;
  int64_t index_bytes = 0;
  int64_t value_bytes = 0;
  int64_t total_bytes = 0;
};

Framing MeasureFraming(const Update& update) {
  Framing f;
  f.entries = UpdateEntries(update);
  f.index_bytes = static_cast<int64_t>(update.sparse().indices().size());
  f.value_bytes = static_cast<int64_t>(update.sparse().values().size());
  for (const TensorUpdate& t : update.tensors()) {
    f.index_bytes += static_cast<int64_t>(t.indices().size());
    f.value_bytes += static_cast<int64_t>(t.values().size());
  }
  f.total_bytes = static_cast<int64_t>(update.ByteSizeLong());
  return f;
}

void RunFraming(bool quick) {
  std::printf(
      "## 4. Update framing (one update of the whole model: 0.1 %% of each "
      "parameter tensor, at least one entry, uniformly placed, batch-norm "
      "statistics whole, "
      "as UpdatePublisher sends it; every header field set as the publisher "
      "sets it; header = serialized bytes - index bytes - value bytes; "
      "before = AppendSparseTensor per tensor, writer = SparseUpdateWriter, "
      "which sends the smaller of the model-wide and per-tensor forms)\n\n");
  Table table({"<model", "<values", "<form", "entries", "tensors", "index B",
               "value B", "header B", "total B", "header share"});
  std::vector<std::pair<const char*, const char*>> models = {{"lenet5", "LeNet-5"}};
  if (!quick) models.push_back({"resnet18", "ResNet-18"});
  for (const auto& [architecture, label] : models) {
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(architecture, kSeed);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      std::exit(1);
    }
    const ModelSpec& spec = (*model)->spec();
    std::mt19937_64 rng(kSeed);
    std::normal_distribution<float> value_dist(0.0f, 1e-3f);
    std::vector<std::vector<uint32_t>> indices(spec.tensors_size());
    std::vector<std::vector<float>> values(spec.tensors_size());
    for (int t = 0; t < spec.tensors_size(); ++t) {
      const int64_t n = TensorSize(spec.tensors(t));
      if (spec.tensors(t).is_buffer()) {
        // Batch-norm statistics change at every training step and go out
        // whole; the input normalisation changes only when refitted.
        if (spec.tensors(t).name().find("running_") == std::string::npos) continue;
        for (int64_t i = 0; i < n; ++i) indices[t].push_back(static_cast<uint32_t>(i));
      } else {
        SelectRandomK(n, KeepCount(n, 0.001), &rng, &indices[t]);
      }
      for (size_t i = 0; i < indices[t].size(); ++i) values[t].push_back(value_dist(rng));
    }
    for (const ValueEncoding encoding : {FP32_ASSIGN, FP16_DELTA}) {
      for (const bool model_wide : {false, true}) {
        Update update;
        update.set_version(123456);
        update.set_base_version(123455);
        update.set_fingerprint(spec.fingerprint());
        update.set_run(rng());
        update.set_encoding(encoding);
        SparseUpdateWriter writer(spec, &update);
        int tensors = 0;
        for (int t = 0; t < spec.tensors_size(); ++t) {
          const int64_t sent =
              model_wide ? writer.Append(static_cast<uint32_t>(t), indices[t], values[t])
                         : AppendSparseTensor(static_cast<uint32_t>(t), indices[t],
                                              values[t], &update);
          tensors += sent > 0;
        }
        writer.Finish();
        update.set_publish_time_us(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count()));
        SealUpdate(&update);
        update.set_model_checksum(rng());
        if (!DecodeUpdate(update, spec).ok()) {
          std::fprintf(stderr, "framing: the update does not decode\n");
          std::exit(1);
        }
        const Framing f = MeasureFraming(update);
        const int64_t header = f.total_bytes - f.index_bytes - f.value_bytes;
        const std::string form =
            !model_wide ? "before: per tensor"
                        : update.has_sparse() ? "writer: model-wide" : "writer: per tensor";
        table.AddRow({label, ValueEncodingName(encoding), form, Thousands(f.entries),
                      absl::StrCat(tensors), Thousands(f.index_bytes),
                      Thousands(f.value_bytes), Thousands(header),
                      Thousands(f.total_bytes),
                      Num(100.0 * static_cast<double>(header) /
                              static_cast<double>(f.total_bytes), 1) + " %"});
      }
    }
  }
  table.Print();
}

}  // namespace
}  // namespace contrail

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const bool quick = absl::GetFlag(FLAGS_quick);
  if (absl::GetFlag(FLAGS_threads) > 0) {
    torch::set_num_threads(absl::GetFlag(FLAGS_threads));
  }
  const contrail::Clock::time_point start = contrail::Clock::now();

  std::printf("# contrail sparse_bench%s\n\n", quick ? " (--quick)" : "");
  std::printf(
      "machine: std::thread::hardware_concurrency() = %u, "
      "torch::get_num_threads() = %d (LibTorch CPU)\n\n",
      std::thread::hardware_concurrency(), torch::get_num_threads());

  std::vector<contrail::Sized> sizes = {{"LeNet-5", 61706},
                                        {"MobileNetV2", 2236106},
                                        {"ResNet-18", 11175370},
                                        {"ResNet-50", 25557032}};
  if (quick) sizes.resize(2);
  const std::vector<double> ratios = {0.01, 0.001, 0.0001};

  const std::vector<std::string> sections = absl::GetFlag(FLAGS_sections);
  auto wanted = [&](const char* name) {
    return std::find(sections.begin(), sections.end(), name) != sections.end();
  };
  if (wanted("selection")) contrail::RunSelection(sizes, ratios, quick);
  if (wanted("codec")) contrail::RunCodec(sizes, ratios, quick);
  if (wanted("iteration")) contrail::RunIterationSection(quick);
  if (wanted("framing")) contrail::RunFraming(quick);
  std::printf("total benchmark time: %.1f s\n", contrail::MsSince(start) / 1000);
  return 0;
}
