// The model replica the update decoder's fuzz target decodes into, and its
// seed corpus generator writes updates for: a small spec (three tensors of
// 20, 5 and 1000 floats, so that random indices and whole dense tensors are
// within a fuzzer's reach) and zeroed buffers behind views. Torch-free.
#ifndef CONTRAIL_TESTS_FUZZ_FUZZ_MODEL_H_
#define CONTRAIL_TESTS_FUZZ_FUZZ_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "common/model_spec.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

namespace contrail {
namespace fuzz {

// The first byte of every fuzz input says what to do with the Update that
// the rest of the bytes parse to, so that the fuzzer reaches past the
// checks it cannot forge.
enum InputFlags : uint8_t {
  // Set the update's fingerprint to the replica's.
  kMatchFingerprint = 1,
  // Re-seal the update: set its payload checksum to the one it computes.
  kReseal = 2,
};

inline ModelSpec FuzzSpec() {
  ModelSpec spec;
  spec.set_architecture("fuzz");
  spec.add_input_shape(4);
  spec.set_num_classes(3);
  const struct {
    const char* name;
    std::vector<int64_t> shape;
  } tensors[] = {{"w", {4, 5}}, {"b", {5}}, {"big", {1000}}};
  for (const auto& t : tensors) {
    TensorSpec* ts = spec.add_tensors();
    ts->set_name(t.name);
    for (int64_t d : t.shape) ts->add_shape(d);
    ts->set_dtype("float32");
  }
  spec.set_fingerprint(ComputeFingerprint(spec));
  return spec;
}

// Zeroed float buffers for a spec, with views onto them.
class Replica {
 public:
  explicit Replica(const ModelSpec& spec) {
    for (const TensorSpec& t : spec.tensors()) storage_.emplace_back(TensorSize(t), 0.0f);
  }
  TensorViews Views() {
    TensorViews views;
    for (std::vector<float>& s : storage_) views.push_back(absl::MakeSpan(s));
    return views;
  }
  uint64_t Checksum() {
    TensorViews views = Views();
    return ChecksumTensors(AsConst(views));
  }

 private:
  std::vector<std::vector<float>> storage_;
};

}  // namespace fuzz
}  // namespace contrail

#endif  // CONTRAIL_TESTS_FUZZ_FUZZ_MODEL_H_
