#include "common/model_spec.h"

#include <xxhash.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace contrail {

uint64_t ComputeFingerprint(const ModelSpec& spec) {
  // A canonical text form keeps the hash independent of proto serialisation.
  std::string text = absl::StrCat(spec.architecture(), "|",
                                  absl::StrJoin(spec.input_shape(), ","), "|",
                                  spec.num_classes());
  for (const TensorSpec& t : spec.tensors()) {
    absl::StrAppend(&text, ";", t.name(), ":", absl::StrJoin(t.shape(), ","),
                    ":", t.dtype(), ":", t.is_buffer() ? "b" : "p");
  }
  return XXH64(text.data(), text.size(), /*seed=*/0);
}

int64_t TensorSize(const TensorSpec& tensor) {
  int64_t n = 1;
  for (int64_t d : tensor.shape()) n *= d;
  return n;
}

int64_t ModelSize(const ModelSpec& spec) {
  int64_t n = 0;
  for (const TensorSpec& t : spec.tensors()) n += TensorSize(t);
  return n;
}

absl::Status CheckViewsMatchSpec(const ModelSpec& spec,
                                 const ConstTensorViews& views) {
  if (static_cast<int>(views.size()) != spec.tensors_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model has ", views.size(), " tensors, spec names ",
                     spec.tensors_size()));
  }
  for (int i = 0; i < spec.tensors_size(); ++i) {
    const int64_t expected = TensorSize(spec.tensors(i));
    if (static_cast<int64_t>(views[i].size()) != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", spec.tensors(i).name(), " has ", views[i].size(),
          " entries, spec says ", expected));
    }
  }
  return absl::OkStatus();
}

}  // namespace contrail
