#include "common/architectures.h"

#include <torch/script.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace contrail {
namespace {

namespace nn = torch::nn;

struct LeNet5Impl : nn::Module {
  LeNet5Impl()
      : conv1(register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(1, 6, 5).padding(2)))),
        conv2(register_module("conv2", nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", nn::Linear(16 * 5 * 5, 120))),
        fc2(register_module("fc2", nn::Linear(120, 84))),
        fc3(register_module("fc3", nn::Linear(84, kClasses))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    x = x.flatten(1);
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return fc3->forward(x);
  }

  nn::Conv2d conv1, conv2;
  nn::Linear fc1, fc2, fc3;
};

struct MlpImpl : nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", nn::Linear(28 * 28, 256))),
        fc2(register_module("fc2", nn::Linear(256, 128))),
        fc3(register_module("fc3", nn::Linear(128, kClasses))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = x.flatten(1);
    x = torch::relu(fc1->forward(x));
    x = torch::relu(fc2->forward(x));
    return fc3->forward(x);
  }

  nn::Linear fc1, fc2, fc3;
};

nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                int64_t groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding((kernel - 1) / 2)
                        .groups(groups)
                        .bias(false));
}

// torchvision's BasicBlock.
struct BasicBlockImpl : nn::Module {
  // Members are initialized, and so registered, in declaration order (conv1,
  // conv2, bn1, bn2), which fixes the order of Network::parameters.
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", Conv(in, out, 3, stride))),
        conv2(register_module("conv2", Conv(out, out, 3, 1))),
        bn1(register_module("bn1", nn::BatchNorm2d(out))),
        bn2(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample", nn::Sequential(Conv(in, out, 1, stride), nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::relu(bn1->forward(conv1->forward(x)));
    y = bn2->forward(conv2->forward(y));
    return torch::relu(y + (downsample.is_empty() ? x : downsample->forward(x)));
  }

  nn::Conv2d conv1, conv2;
  nn::BatchNorm2d bn1, bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNet18Impl : nn::Module {
  ResNet18Impl()
      : conv1(register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(1, 64, 7).stride(2).padding(3).bias(false)))),
        bn1(register_module("bn1", nn::BatchNorm2d(64))),
        fc(nullptr) {
    const int64_t widths[] = {64, 128, 256, 512};
    int64_t in = 64;
    for (int stage = 0; stage < 4; ++stage) {
      nn::Sequential layer;
      const int64_t stride = stage == 0 ? 1 : 2;
      layer->push_back(BasicBlock(in, widths[stage], stride));
      layer->push_back(BasicBlock(widths[stage], widths[stage], 1));
      layers.push_back(register_module(absl::StrCat("layer", stage + 1), layer));
      in = widths[stage];
    }
    fc = register_module("fc", nn::Linear(512, kClasses));
    // torchvision: Kaiming-normal convolutions (fan_out), unit batch norms.
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut, torch::kReLU);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(bn1->forward(conv1->forward(x)));
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers) x = layer->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc->forward(x);
  }

  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  std::vector<nn::Sequential> layers;
  nn::Linear fc;
};

// A Sequential with a plain forward(), so that it can nest in another
// Sequential (LibTorch's own has a templated one).
struct StackImpl : nn::SequentialImpl {
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(Stack);

// Convolution, batch norm and (optionally) ReLU6: torchvision's ConvBNReLU.
Stack ConvBn(int64_t in, int64_t out, int64_t kernel, int64_t stride,
             int64_t groups, bool relu6) {
  Stack s(Conv(in, out, kernel, stride, groups), nn::BatchNorm2d(out));
  if (relu6) s->push_back(nn::ReLU6());
  return s;
}

struct InvertedResidualImpl : nn::Module {
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand)
      : residual(stride == 1 && in == out) {
    const int64_t hidden = in * expand;
    Stack layers;
    if (expand != 1) layers->push_back(ConvBn(in, hidden, 1, 1, 1, true));
    layers->push_back(ConvBn(hidden, hidden, 3, stride, hidden, true));
    layers->push_back(ConvBn(hidden, out, 1, 1, 1, false));
    conv = register_module("conv", layers);
  }

  torch::Tensor forward(const torch::Tensor& x) {
    return residual ? x + conv->forward(x) : conv->forward(x);
  }

  bool residual;
  Stack conv{nullptr};
};
TORCH_MODULE(InvertedResidual);

struct MobileNetV2Impl : nn::Module {
  MobileNetV2Impl() {
    // (expansion t, channels c, repeats n, first stride s), torchvision's table.
    const int64_t settings[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2},
                                    {6, 64, 4, 2},  {6, 96, 3, 1},  {6, 160, 3, 2},
                                    {6, 320, 1, 1}};
    nn::Sequential f;
    f->push_back(ConvBn(1, 32, 3, 2, 1, true));
    int64_t in = 32;
    for (const auto& s : settings) {
      for (int64_t i = 0; i < s[2]; ++i) {
        f->push_back(InvertedResidual(in, s[1], i == 0 ? s[3] : 1, s[0]));
        in = s[1];
      }
    }
    f->push_back(ConvBn(in, 1280, 1, 1, 1, true));
    features = register_module("features", f);
    classifier = register_module("classifier", nn::Linear(1280, kClasses));
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut);
      } else if (auto* linear = m->as<nn::Linear>()) {
        nn::init::normal_(linear->weight, 0, 0.01);
        nn::init::zeros_(linear->bias);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    x = features->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return classifier->forward(x);
  }

  nn::Sequential features{nullptr};
  nn::Linear classifier{nullptr};
};

template <typename M>
Network Wrap(std::shared_ptr<M> module) {
  Network network;
  for (const auto& p : module->named_parameters(/*recurse=*/true)) {
    network.parameters.emplace_back(p.key(), p.value());
  }
  for (const auto& b : module->named_buffers(/*recurse=*/true)) {
    if (b.value().scalar_type() == torch::kFloat) {
      network.buffers.emplace_back(b.key(), b.value());
    }
  }
  network.forward = [module](const torch::Tensor& x) { return module->forward(x); };
  network.set_training = [module](bool on) { module->train(on); };
  network.to = [module](const torch::Device& device) { module->to(device); };
  network.owner = module;
  return network;
}

}  // namespace

absl::StatusOr<Network> LoadTorchScript(const std::string& module_bytes) {
  auto module = std::make_shared<torch::jit::Module>();
  try {
    std::istringstream stream(module_bytes);
    *module = torch::jit::load(stream, torch::kCPU);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a TorchScript module: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a TorchScript module: ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(
        "not a TorchScript module: loading it threw an exception of unknown type");
  }
  Network network;
  for (const auto& p : module->named_parameters(/*recurse=*/true)) {
    network.parameters.emplace_back(p.name, p.value);
  }
  for (const auto& b : module->named_buffers(/*recurse=*/true)) {
    if (b.value.scalar_type() == torch::kFloat) {
      network.buffers.emplace_back(b.name, b.value);
    }
  }
  network.forward = [module](const torch::Tensor& x) {
    return module->forward({x}).toTensor();
  };
  network.set_training = [module](bool on) { module->train(on); };
  network.to = [module](const torch::Device& device) { module->to(device); };
  network.owner = module;
  try {
    torch::NoGradGuard no_grad;
    module->eval();
    const torch::Tensor out = network.forward(torch::zeros({2, kImageChannels, kImageSize, kImageSize}));
    if (out.dim() != 2 || out.size(0) != 2 || out.size(1) != kClasses) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the TorchScript module maps [2, 1, 28, 28] to ", out.sizes().vec().size(),
          "-d output [", absl::StrJoin(out.sizes().vec(), ", "),
          "], expected [2, ", kClasses, "]"));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TorchScript module does not take [N, 1, 28, 28] inputs: ",
                     e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // The interpreter's own errors (torch::jit::JITException, raised by the
    // module's code) are std::runtime_errors, not c10::Errors.
    return absl::InvalidArgumentError(absl::StrCat(
        "the TorchScript module does not take [N, 1, 28, 28] inputs: ", e.what()));
  }
  return network;
}

std::vector<std::string> ArchitectureNames() {
  return {"lenet5", "mlp", "resnet18", "mobilenet_v2"};
}

absl::StatusOr<Network> BuildNetwork(const std::string& architecture) {
  if (architecture == "lenet5") return Wrap(std::make_shared<LeNet5Impl>());
  if (architecture == "mlp") return Wrap(std::make_shared<MlpImpl>());
  if (architecture == "resnet18") return Wrap(std::make_shared<ResNet18Impl>());
  if (architecture == "mobilenet_v2") return Wrap(std::make_shared<MobileNetV2Impl>());
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model architecture \"", architecture,
                   "\"; expected one of ", absl::StrJoin(ArchitectureNames(), ", ")));
}

}  // namespace contrail
