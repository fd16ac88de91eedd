// The network architectures contrail knows, built with LibTorch and handed to
// Model (common/model.h) as a Network: named parameters and buffers, a
// forward function and a training switch. Inputs are [N, 1, 28, 28] images,
// outputs logits over 10 classes.
//
//  - "lenet5": LeNet-5 as in Prapas et al. (2021): conv 1->6 5x5 pad 2,
//    ReLU, max-pool 2; conv 6->16 5x5, ReLU, max-pool 2; fc 400->120, ReLU;
//    fc 120->84, ReLU; fc 84->10. 61,706 parameters.
//  - "mlp": 784->256->128->10 with ReLU. 235,146 parameters.
//  - "resnet18": torchvision's ResNet-18 (7x7/2 stem, max-pool, four stages
//    of two basic blocks, 64-512 channels, batch norm) with one input
//    channel and 10 classes. 11,175,370 parameters.
//  - "mobilenet_v2": torchvision's MobileNetV2 (width 1.0, inverted
//    residuals, ReLU6, batch norm; dropout left out so that a replica's
//    forward pass is deterministic) with one input channel and 10 classes.
//    2,236,106 parameters.
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

namespace contrail {

// What every architecture here takes and gives: one 28x28 channel in,
// logits over 10 classes out.
constexpr int64_t kImageChannels = 1;
constexpr int64_t kImageSize = 28;
constexpr int64_t kClasses = 10;

struct Network {
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  std::vector<std::pair<std::string, torch::Tensor>> buffers;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::function<void(bool)> set_training;
  // Moves every parameter and buffer to a device, in place (the tensors
  // above follow: LibTorch swaps their storage).
  std::function<void(const torch::Device&)> to;
  std::shared_ptr<void> owner;  // keeps the module alive
};

// Names BuildNetwork() accepts.
std::vector<std::string> ArchitectureNames();

// A freshly initialised network (from torch's global generator: seed it
// first). INVALID_ARGUMENT for an unknown name.
absl::StatusOr<Network> BuildNetwork(const std::string& architecture);

// A TorchScript module (the bytes of a file saved by torch.jit.save), with
// the weights it was saved with. INVALID_ARGUMENT when the bytes are not a
// loadable module, or when it does not map [N, 1, 28, 28] inputs to
// [N, 10] logits.
absl::StatusOr<Network> LoadTorchScript(const std::string& module_bytes);

}  // namespace contrail

#endif  // CONTRAIL_COMMON_ARCHITECTURES_H_
