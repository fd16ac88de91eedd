// The network architectures contrail knows, built with LibTorch and handed to
// Model (common/model.h) as a Network: named parameters and buffers, a
// forward function and a training switch. Each is built for an input shape
// (one example, without the batch dimension) and a number of classes;
// Fashion-MNIST's [1, 28, 28] and 10 give the sizes below.
//
//  - "lenet5": LeNet-5 as in Prapas et al. (2021): conv C->6 5x5 pad 2,
//    ReLU, max-pool 2; conv 6->16 5x5, ReLU, max-pool 2; fc 16*h*w->120,
//    ReLU; fc 120->84, ReLU; fc 84->classes. Inputs [C, H, W] with H, W >=
//    12. 61,706 parameters at [1, 28, 28].
//  - "mlp": flatten->256->128->classes with ReLU; inputs of any shape.
//    235,146 parameters at [1, 28, 28].
//  - "resnet18": torchvision's ResNet-18 (7x7/2 stem, max-pool, four stages
//    of two basic blocks, 64-512 channels, batch norm) with C input
//    channels. Inputs [C, H, W]. 11,175,370 parameters at [1, 28, 28].
//  - "mobilenet_v2": torchvision's MobileNetV2 (width 1.0, inverted
//    residuals, ReLU6, batch norm; dropout left out so that a replica's
//    forward pass is deterministic) with C input channels. Inputs [C, H, W].
//    2,236,106 parameters at [1, 28, 28].
//
// Input normalisation: every built-in architecture first computes
// (x - input_mean) * input_scale, per channel, where a channel is an index
// of the input's first dimension (the channels of an image, the features of
// a flat vector). input_mean and input_scale are float buffers of shape
// [C], 0 and 1 until Model::FitInputNormalization sets them to the mean and
// 1 / standard deviation of the training inputs; as buffers they are part
// of the model's tensors and travel to the servers with the weights, so
// clients send raw inputs. A scale rather than a divisor: no value a buffer
// can take makes the stage divide by zero.
//
// Batch-norm running statistics are float buffers and travel like
// parameters; the integer num_batches_tracked counters are left out (they
// only matter with momentum = None, which these models do not use).
//
// Stateless factory; thread-compatible.
#ifndef CONTRAIL_COMMON_ARCHITECTURES_H_
#define CONTRAIL_COMMON_ARCHITECTURES_H_

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace contrail {

struct Network {
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  std::vector<std::pair<std::string, torch::Tensor>> buffers;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::function<void(bool)> set_training;
  // Moves every parameter and buffer to a device, in place (the tensors
  // above follow: LibTorch swaps their storage).
  std::function<void(const torch::Device&)> to;
  std::shared_ptr<void> owner;  // keeps the module alive
  // The input normalisation buffers of a built-in architecture, [C] each
  // (also among `buffers`); undefined for a TorchScript module.
  torch::Tensor input_mean;
  torch::Tensor input_scale;
  // What a TorchScript module declares in its `input_shape` (List[int])
  // and `num_classes` (int) attributes or constants; empty and 0 where it
  // declares nothing, and for built-in architectures.
  std::vector<int64_t> declared_input_shape;
  int64_t declared_num_classes = 0;
};

// Names BuildNetwork() accepts.
std::vector<std::string> ArchitectureNames();

// A freshly initialised network (from torch's global generator: seed it
// first) for examples of `input_shape` and `num_classes` classes.
// INVALID_ARGUMENT for an unknown name, or a shape or class count the
// architecture cannot take (saying what it takes).
absl::StatusOr<Network> BuildNetwork(const std::string& architecture,
                                     absl::Span<const int64_t> input_shape,
                                     int64_t num_classes);

// A TorchScript module (the bytes of a file saved by torch.jit.save), with
// the weights it was saved with and what it declares about its shape.
// INVALID_ARGUMENT when the bytes are not a loadable module or a declared
// attribute has the wrong type.
absl::StatusOr<Network> LoadTorchScript(const std::string& module_bytes);

// OK when `network` maps a batch of two zero examples of `input_shape` to
// [2, num_classes] logits; INVALID_ARGUMENT saying what it did otherwise.
absl::Status CheckNetworkShape(Network& network, absl::Span<const int64_t> input_shape,
                               int64_t num_classes);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_ARCHITECTURES_H_
