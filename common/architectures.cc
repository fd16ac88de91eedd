#include "common/architectures.h"

#include <torch/script.h>

#include <algorithm>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace contrail {
namespace {

namespace nn = torch::nn;

// What every built-in architecture derives from: the input normalisation
// stage (see the header). Its buffers are registered before any submodule's
// and come first among the network's buffers.
struct ClassifierImpl : nn::Module {
  explicit ClassifierImpl(int64_t channels)
      : input_mean(register_buffer("input_mean", torch::zeros({channels}))),
        input_scale(register_buffer("input_scale", torch::ones({channels}))) {}

  // (x - input_mean) * input_scale along dimension 1 of a batch.
  torch::Tensor Normalize(const torch::Tensor& x) const {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[1] = input_mean.size(0);
    return (x - input_mean.view(shape)) * input_scale.view(shape);
  }

  torch::Tensor input_mean;
  torch::Tensor input_scale;
};

int64_t Product(absl::Span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// LeNet-5's feature map after its second pooling, for an H or W of `size`.
int64_t LeNet5FeatureSize(int64_t size) { return (size / 2 - 4) / 2; }

struct LeNet5Impl : ClassifierImpl {
  LeNet5Impl(absl::Span<const int64_t> input_shape, int64_t classes)
      : ClassifierImpl(input_shape[0]),
        conv1(register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(input_shape[0], 6, 5).padding(2)))),
        conv2(register_module("conv2", nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", nn::Linear(16 * LeNet5FeatureSize(input_shape[1]) *
                                                  LeNet5FeatureSize(input_shape[2]),
                                              120))),
        fc2(register_module("fc2", nn::Linear(120, 84))),
        fc3(register_module("fc3", nn::Linear(84, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = Normalize(x);
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

struct MlpImpl : ClassifierImpl {
  MlpImpl(absl::Span<const int64_t> input_shape, int64_t classes)
      : ClassifierImpl(input_shape[0]),
        fc1(register_module("fc1", nn::Linear(Product(input_shape), 256))),
        fc2(register_module("fc2", nn::Linear(256, 128))),
        fc3(register_module("fc3", nn::Linear(128, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = Normalize(x).flatten(1);
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

struct ResNet18Impl : ClassifierImpl {
  ResNet18Impl(absl::Span<const int64_t> input_shape, int64_t classes)
      : ClassifierImpl(input_shape[0]),
        conv1(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(input_shape[0], 64, 7)
                                                      .stride(2)
                                                      .padding(3)
                                                      .bias(false)))),
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
    fc = register_module("fc", nn::Linear(512, classes));
    // torchvision: Kaiming-normal convolutions (fan_out), unit batch norms.
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut, torch::kReLU);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(bn1->forward(conv1->forward(Normalize(x))));
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

struct MobileNetV2Impl : ClassifierImpl {
  MobileNetV2Impl(absl::Span<const int64_t> input_shape, int64_t classes)
      : ClassifierImpl(input_shape[0]) {
    // (expansion t, channels c, repeats n, first stride s), torchvision's table.
    const int64_t settings[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2},
                                    {6, 64, 4, 2},  {6, 96, 3, 1},  {6, 160, 3, 2},
                                    {6, 320, 1, 1}};
    nn::Sequential f;
    f->push_back(ConvBn(input_shape[0], 32, 3, 2, 1, true));
    int64_t in = 32;
    for (const auto& s : settings) {
      for (int64_t i = 0; i < s[2]; ++i) {
        f->push_back(InvertedResidual(in, s[1], i == 0 ? s[3] : 1, s[0]));
        in = s[1];
      }
    }
    f->push_back(ConvBn(in, 1280, 1, 1, 1, true));
    features = register_module("features", f);
    classifier = register_module("classifier", nn::Linear(1280, classes));
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
    x = features->forward(Normalize(x));
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
  network.input_mean = module->input_mean;
  network.input_scale = module->input_scale;
  return network;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// What a TorchScript module declares as `name`: an attribute, or a
// constant (a Final annotation); None where it declares nothing.
c10::IValue Declared(const torch::jit::Module& module, const std::string& name) {
  if (module.hasattr(name)) return module.attr(name);
  const c10::ClassTypePtr& type = module.type();
  if (type->hasConstant(name)) return type->getConstant(name);
  return c10::IValue();
}

absl::Status ReadDeclarations(const torch::jit::Module& module, Network* network) {
  const c10::IValue shape = Declared(module, "input_shape");
  if (!shape.isNone()) {
    bool ok = shape.isIntList() || shape.isTuple();
    if (shape.isIntList()) {
      network->declared_input_shape = shape.toIntVector();
    } else if (shape.isTuple()) {
      for (const c10::IValue& d : shape.toTupleRef().elements()) {
        ok = ok && d.isInt();
        if (d.isInt()) network->declared_input_shape.push_back(d.toInt());
      }
    }
    ok = ok && !network->declared_input_shape.empty();
    for (int64_t d : network->declared_input_shape) ok = ok && d >= 1;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the TorchScript module's input_shape must be a non-empty List[int] of "
          "sizes >= 1 (one example, without the batch dimension), got ",
          shape.type()->str(), " ", shape.isIntList() ? ShapeString(shape.toIntVector()) : ""));
    }
  }
  const c10::IValue classes = Declared(module, "num_classes");
  if (!classes.isNone()) {
    if (!classes.isInt() || classes.toInt() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the TorchScript module's num_classes must be an int >= 1, got ",
          classes.isInt() ? std::to_string(classes.toInt()) : classes.type()->str()));
    }
    network->declared_num_classes = classes.toInt();
  }
  return absl::OkStatus();
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
  const absl::Status declared = ReadDeclarations(*module, &network);
  if (!declared.ok()) return declared;
  return network;
}

absl::Status CheckNetworkShape(Network& network, absl::Span<const int64_t> input_shape,
                               int64_t num_classes) {
  std::vector<int64_t> batch = {2};
  batch.insert(batch.end(), input_shape.begin(), input_shape.end());
  const std::string takes = absl::StrCat("[N, ", absl::StrJoin(input_shape, ", "), "]");
  try {
    torch::NoGradGuard no_grad;
    network.set_training(false);
    const torch::Tensor out = network.forward(torch::zeros(batch));
    if (out.dim() != 2 || out.size(0) != 2 || out.size(1) != num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model maps ", ShapeString(batch), " to ", out.dim(), "-d output ",
          ShapeString(out.sizes().vec()), ", expected [2, ", num_classes,
          "] logits (input_shape ", ShapeString(input_shape), ", num_classes ",
          num_classes, ")"));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model does not take ", takes, " inputs: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // The interpreter's own errors (torch::jit::JITException, raised by the
    // module's code) are std::runtime_errors, not c10::Errors.
    return absl::InvalidArgumentError(
        absl::StrCat("the model does not take ", takes, " inputs: ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model does not take ", takes, " inputs: it raised a non-standard exception"));
  }
  return absl::OkStatus();
}

std::vector<std::string> ArchitectureNames() {
  return {"lenet5", "mlp", "resnet18", "mobilenet_v2"};
}

absl::StatusOr<Network> BuildNetwork(const std::string& architecture,
                                     absl::Span<const int64_t> input_shape,
                                     int64_t num_classes) {
  const std::vector<std::string> known = ArchitectureNames();
  if (std::find(known.begin(), known.end(), architecture) == known.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown model architecture \"", architecture,
                     "\"; expected one of ", absl::StrJoin(known, ", ")));
  }
  if (num_classes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(architecture, " needs num_classes >= 1, got ", num_classes));
  }
  bool sizes_ok = !input_shape.empty();
  for (int64_t d : input_shape) sizes_ok = sizes_ok && d >= 1;
  if (!sizes_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        architecture, " needs an input_shape of sizes >= 1, got ", ShapeString(input_shape)));
  }
  if (architecture == "mlp") return Wrap(std::make_shared<MlpImpl>(input_shape, num_classes));
  // The convolutional ones take images [C, H, W]; LeNet-5 has no padding in
  // its second convolution, so it needs H, W >= 12 to keep a 1x1 feature.
  if (input_shape.size() != 3 ||
      (architecture == "lenet5" && (input_shape[1] < 12 || input_shape[2] < 12))) {
    return absl::InvalidArgumentError(absl::StrCat(
        architecture, " takes images [C, H, W]",
        architecture == "lenet5" ? " with H, W >= 12" : "", ", got input_shape ",
        ShapeString(input_shape)));
  }
  if (architecture == "lenet5") {
    return Wrap(std::make_shared<LeNet5Impl>(input_shape, num_classes));
  }
  if (architecture == "resnet18") {
    return Wrap(std::make_shared<ResNet18Impl>(input_shape, num_classes));
  }
  return Wrap(std::make_shared<MobileNetV2Impl>(input_shape, num_classes));
}

}  // namespace contrail
