// The models contrail trains and serves, and the boundary behind which
// LibTorch lives: a Model exposes its parameters and buffers as float spans
// in a fixed flattening order (parameters in registration order, then
// buffers), described by a ModelSpec whose fingerprint names the
// architecture, tensor names, shapes and dtypes.
//
// A model takes examples of one input shape (without the batch dimension,
// e.g. [1, 28, 28] or [16]) and scores num_classes classes; both are in its
// spec (and so in its fingerprint). Built-in architectures normalise their
// inputs with buffers that FitInputNormalization() fits to training data,
// so that the model, and every replica of it, takes raw inputs.
//
// Inference goes through Predict(), which validates its input, runs the
// network in inference mode and turns every exception LibTorch or the
// TorchScript interpreter throws into a Status. This header includes no
// LibTorch header: code that only serves, versions or encodes models
// compiles without them. Training code (trainer/sgd_step.cc) includes
// <torch/torch.h> itself and uses Forward() and the gradient accessors.
//
// Architectures: see common/architectures.h.
//
// Lifecycle: a factory builds a model on the CPU. The views stay valid for
// the Model's lifetime: training updates the tensors in place. Not
// thread-safe for writes; concurrent Predict() calls on an unchanging model
// in inference mode (SetTraining(false)) are safe.
#ifndef CONTRAIL_COMMON_MODEL_H_
#define CONTRAIL_COMMON_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor_views.h"
#include "proto/contrail.pb.h"

// LibTorch's tensor, named without its headers for the training-side
// methods below.
namespace at {
class Tensor;
}  // namespace at

namespace contrail {

// LibTorch's intra-op threads for this process (a daemon's --threads).
void SetLibTorchThreads(int threads);

// What a model takes and gives when neither it nor its caller says: one
// Fashion-MNIST image, ten classes.
inline constexpr int64_t kDefaultInputShape[] = {1, 28, 28};
inline constexpr int64_t kDefaultNumClasses = 10;

// What a model takes and gives. A field left unset (empty, 0) is what a
// TorchScript module declares, else the default above.
struct ModelSignature {
  // One example, without the batch dimension: [1, 28, 28], [16].
  std::vector<int64_t> input_shape;
  // The classes its logits score.
  int64_t num_classes = 0;
};

class Model {
 public:
  using Signature = ModelSignature;

  // What Predict() answers for a batch of N examples.
  struct Predictions {
    int64_t num_classes = 0;
    std::vector<float> probabilities;  // [N, num_classes], row-major softmax
    std::vector<int32_t> labels;       // [N] arg-max of the logits
  };

  // The architectures Create() knows, for --help texts.
  static std::vector<std::string> Architectures();

  // Builds `architecture` for `signature` (unset fields: the defaults)
  // with weights initialised from `seed` and an identity input
  // normalisation. INVALID_ARGUMENT for an unknown architecture or a shape
  // it cannot take.
  static absl::StatusOr<std::unique_ptr<Model>> Create(
      const std::string& architecture, uint64_t seed, const Signature& signature = {});

  // Loads a TorchScript module (the bytes of a torch.jit.save file) named
  // `name`; its architecture is "torchscript:<name>". The module may
  // declare its signature in attributes (or constants) `input_shape`
  // (List[int], one example) and `num_classes` (int); `signature` fills in
  // what it does not declare, and the defaults what neither says.
  // INVALID_ARGUMENT when `signature` contradicts a declaration (naming
  // both), or when the module does not map a batch of that input shape to
  // [N, num_classes] logits.
  static absl::StatusOr<std::unique_ptr<Model>> CreateFromTorchScript(
      const std::string& module_bytes, const std::string& name,
      const Signature& signature = {});

  // A built-in architecture by name (Create), or the TorchScript file at
  // `name_or_path` when it ends in ".pt" (CreateFromTorchScript, named by
  // its file name). NOT_FOUND when the file cannot be read.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& name_or_path,
                                                     uint64_t seed,
                                                     const Signature& signature = {});

  // A new model of the same architecture and signature: freshly
  // initialised from `seed` (input normalisation included) for built-in
  // architectures, the saved weights for TorchScript ones.
  static absl::StatusOr<std::unique_ptr<Model>> CreateLike(const Model& other,
                                                           uint64_t seed);

  // The model `spec` describes (a trainer's snapshot: its architecture,
  // input shape and class count), for a replica to copy the trainer's
  // tensors into; `torchscript_module` holds the module's bytes for a
  // "torchscript:" architecture. FAILED_PRECONDITION when the model built
  // here has another fingerprint than `spec` (another LibTorch, another
  // version of the architecture).
  static absl::StatusOr<std::unique_ptr<Model>> CreateFromSpec(
      const ModelSpec& spec, const std::string& torchscript_module);

  // The TorchScript file's bytes; empty for built-in architectures.
  const std::string& torchscript_module() const { return torchscript_module_; }

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }
  // The input shape and class count of spec().
  Signature signature() const;

  // Sets the input normalisation of a built-in architecture to the
  // per-channel mean and 1 / standard deviation (population; 1 where a
  // channel is constant) of `inputs`, `count` examples of the input shape;
  // a channel is an index of the input shape's first dimension. Nothing
  // changes when `count` is 0, or for a TorchScript module, which
  // normalises its inputs itself if it wants to. INVALID_ARGUMENT when
  // `inputs` does not hold `count` examples or holds a non-finite value.
  absl::Status FitInputNormalization(absl::Span<const float> inputs, int64_t count);
  // Whether FitInputNormalization() has a stage to fit (built-ins).
  bool has_input_normalization() const;

  // Moves the model to `device`: "cpu", "cuda" or "cuda:N".
  // INVALID_ARGUMENT for another name, FAILED_PRECONDITION when this
  // LibTorch was built without CUDA or sees no GPU, OUT_OF_RANGE for a GPU
  // index it does not have.
  absl::Status MoveTo(const std::string& device);
  // "cpu", "cuda:0", ...
  std::string device() const;
  bool on_cpu() const;

  // Every parameter and buffer, in spec order. CPU models only (empty on
  // another device, whose tensors a CopyFrom() into a CPU copy reads).
  TensorViews Views();
  ConstTensorViews Views() const;
  // Gradients of the parameters (the first num_parameter_tensors() views),
  // after a backward pass; empty spans where no gradient exists yet.
  TensorViews GradientViews();
  int num_parameter_tensors() const { return num_parameter_tensors_; }

  // ChecksumTensors over Views().
  uint64_t Checksum() const;

  // Class probabilities and arg-max labels for `values`, N examples of
  // shape `shape` ([N] + input_shape), in inference mode.
  // INVALID_ARGUMENT for a wrong shape, an empty batch, a value count that
  // does not match the shape or a non-finite value; FAILED_PRECONDITION in
  // training mode; INTERNAL when the network fails or answers with another
  // shape than [N, num_classes].
  absl::StatusOr<Predictions> Predict(absl::Span<const int64_t> shape,
                                      absl::Span<const float> values) const;

  // INVALID_ARGUMENT unless `shape` is [N] + input_shape with N >= 1.
  absl::Status CheckInputShape(absl::Span<const int64_t> shape) const;

  // Training side, for code inside the LibTorch boundary (which includes
  // <torch/torch.h> and catches what LibTorch throws): logits
  // [N, num_classes] for inputs [N] + input_shape, with autograd as the
  // caller's mode says. Throws on a malformed input.
  at::Tensor Forward(const at::Tensor& inputs);
  // Parameter tensor `index` (< num_parameter_tensors()), sharing the
  // model's storage, on the model's device.
  at::Tensor Parameter(int index);

  // Training mode (dropout, batch-norm statistics) on or off.
  void SetTraining(bool training);

  // Zeroes every gradient.
  void ZeroGradients();

  // Overwrites this model's tensors with `other`'s (same fingerprint),
  // across devices if they differ.
  absl::Status CopyFrom(const Model& other);

 private:
  // The network and its tensors (LibTorch types), defined in model.cc.
  struct Impl;

  Model(std::unique_ptr<Impl> impl, ModelSpec spec, int num_parameter_tensors);
  static absl::StatusOr<std::unique_ptr<Model>> FromImpl(
      absl::StatusOr<std::unique_ptr<Impl>> impl, const std::string& architecture,
      const Signature& signature);

  std::unique_ptr<Impl> impl_;
  ModelSpec spec_;
  int num_parameter_tensors_;
  bool training_ = true;
  std::string torchscript_module_;
};

// How many of `predictions`' labels equal `labels` (same length).
int64_t CountCorrect(const Model::Predictions& predictions,
                     absl::Span<const int64_t> labels);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_MODEL_H_
