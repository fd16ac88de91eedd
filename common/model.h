// The models contrail trains and serves, behind one small class that hides
// LibTorch from the rest of the system: a Model exposes its parameters and
// buffers as float spans in a fixed flattening order (parameters in
// registration order, then buffers), described by a ModelSpec whose
// fingerprint names the architecture, tensor names, shapes and dtypes.
//
// Architectures: see common/architectures.h.
//
// Lifecycle: Create() builds a freshly initialised model on the CPU. The
// views stay valid for the Model's lifetime: training updates the tensors in
// place. Not thread-safe for writes; concurrent Forward() calls in inference
// mode on an unchanging model are safe.
#ifndef CONTRAIL_COMMON_MODEL_H_
#define CONTRAIL_COMMON_MODEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/architectures.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

namespace contrail {

class Model {
 public:
  // The architectures Create() knows, for --help texts.
  static std::vector<std::string> Architectures();

  // Builds `architecture` with weights initialised from `seed`.
  // INVALID_ARGUMENT for an unknown architecture.
  static absl::StatusOr<std::unique_ptr<Model>> Create(
      const std::string& architecture, uint64_t seed);

  // Loads a TorchScript module (the bytes of a torch.jit.save file) named
  // `name`; its architecture is "torchscript:<name>". See LoadTorchScript
  // in common/architectures.h for what it must compute.
  static absl::StatusOr<std::unique_ptr<Model>> CreateFromTorchScript(
      const std::string& module_bytes, const std::string& name);

  // A built-in architecture by name (Create), or the TorchScript file at
  // `name_or_path` when it ends in ".pt" (CreateFromTorchScript, named by
  // its file name). NOT_FOUND when the file cannot be read.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& name_or_path,
                                                     uint64_t seed);

  // A new model of the same architecture: freshly initialised from `seed`
  // for built-in architectures, the saved weights for TorchScript ones.
  static absl::StatusOr<std::unique_ptr<Model>> CreateLike(const Model& other,
                                                           uint64_t seed);

  // The TorchScript file's bytes; empty for built-in architectures.
  const std::string& torchscript_module() const { return torchscript_module_; }

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }

  // Every parameter and buffer, in spec order.
  TensorViews Views();
  ConstTensorViews Views() const;
  // Gradients of the parameters (the first num_parameter_tensors() views),
  // after a backward pass; empty spans where no gradient exists yet.
  TensorViews GradientViews();
  int num_parameter_tensors() const { return num_parameter_tensors_; }

  // ChecksumTensors over Views().
  uint64_t Checksum() const;

  // Logits [N, num_classes] for inputs [N] + input_shape. The caller picks
  // grad or inference mode. Throws c10::Error on a malformed input: callers
  // validate shapes first (see CheckInputShape).
  torch::Tensor Forward(const torch::Tensor& inputs);

  // INVALID_ARGUMENT unless `shape` is [N] + input_shape with N >= 1.
  absl::Status CheckInputShape(absl::Span<const int64_t> shape) const;

  // Training mode (dropout, batch-norm statistics) on or off.
  void SetTraining(bool training);

  // Zeroes every gradient.
  void ZeroGradients();

  // Overwrites this model's tensors with `other`'s (same fingerprint).
  absl::Status CopyFrom(const Model& other);

 private:
  Model(Network network, ModelSpec spec, std::vector<torch::Tensor> tensors,
        int num_parameter_tensors);
  static absl::StatusOr<std::unique_ptr<Model>> FromNetwork(
      absl::StatusOr<Network> network, const std::string& architecture);

  Network network_;
  ModelSpec spec_;
  // Parameters then buffers; they share storage with network_.
  std::vector<torch::Tensor> tensors_;
  int num_parameter_tensors_;
  std::string torchscript_module_;
};

}  // namespace contrail

#endif  // CONTRAIL_COMMON_MODEL_H_
