// Writes the seed corpus of the update decoder's fuzz target: valid updates
// for the fuzz replica in every encoding (sparse fp32, fp16 and bf16
// differences per tensor and model-wide, dense fp32, a snapshot), each behind the InputFlags byte
// that reseals it, so that mutations start from inputs that decode.
//
//   bazel run //tests/fuzz:make_seed_corpus -- $PWD/tests/fuzz/corpus
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/model_spec.h"
#include "common/update_codec.h"
#include "proto/contrail.pb.h"
#include "tests/fuzz/fuzz_model.h"

namespace contrail {
namespace {

Update NewUpdate(const ModelSpec& spec, ValueEncoding encoding) {
  Update update;
  update.set_version(8);
  update.set_base_version(7);
  update.set_fingerprint(spec.fingerprint());
  update.set_run(0x5eed);
  update.set_encoding(encoding);
  return update;
}

bool Write(const std::string& dir, const std::string& name, const Update& update) {
  std::string bytes(1, static_cast<char>(fuzz::kMatchFingerprint | fuzz::kReseal));
  update.AppendToString(&bytes);
  std::ofstream file(dir + "/" + name, std::ios::binary | std::ios::trunc);
  file << bytes;
  return static_cast<bool>(file);
}

int Main(const std::string& dir) {
  const ModelSpec spec = fuzz::FuzzSpec();
  const std::vector<uint32_t> indices = {0, 3, 4, 19};
  const std::vector<float> values = {1.5f, -2.0f, 0.25f, 3.0e-3f};
  const std::vector<uint32_t> far = {2, 40, 41, 500, 999};
  const std::vector<float> far_values = {1.0f, -1.0f, 2.0f, 1e-6f, 65000.0f};
  bool ok = true;
  for (const ValueEncoding encoding : {FP32_ASSIGN, FP16_DELTA, BF16_DELTA}) {
    Update update = NewUpdate(spec, encoding);
    AppendSparseTensor(0, indices, values, &update);
    AppendSparseTensor(2, far, far_values, &update);
    SealUpdate(&update);
    ok &= Write(dir, "sparse_" + ValueEncodingName(encoding), update);

    // The same entries in the model-wide form the trainer publishes.
    Update model_wide = NewUpdate(spec, encoding);
    SparseUpdateWriter writer(spec, &model_wide);
    writer.Append(0, indices, values);
    writer.Append(2, far, far_values);
    writer.Finish();
    SealUpdate(&model_wide);
    ok &= Write(dir, "model_wide_" + ValueEncodingName(encoding), model_wide);
  }
  Update dense = NewUpdate(spec, FP32_ASSIGN);
  AppendDenseTensor(1, std::vector<float>{1, 2, 3, 4, 5}, &dense);
  SealUpdate(&dense);
  ok &= Write(dir, "dense_fp32", dense);

  Update snapshot = NewUpdate(spec, FP32_ASSIGN);
  snapshot.set_base_version(0);
  snapshot.set_snapshot(true);
  for (int t = 0; t < spec.tensors_size(); ++t) {
    std::vector<float> all(TensorSize(spec.tensors(t)));
    for (size_t i = 0; i < all.size(); ++i) all[i] = 0.01f * static_cast<float>(i % 97);
    AppendDenseTensor(static_cast<uint32_t>(t), all, &snapshot);
  }
  SealUpdate(&snapshot);
  *snapshot.mutable_spec() = spec;
  ok &= Write(dir, "snapshot", snapshot);
  if (!ok) std::fprintf(stderr, "make_seed_corpus: cannot write into %s\n", dir.c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace contrail

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_corpus DIR\n");
    return 2;
  }
  return contrail::Main(argv[1]);
}
