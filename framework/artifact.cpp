#include "framework/artifact.h"

#include "framework/tensor_archive.h"

namespace pgolf {

namespace {
constexpr ArchiveFormat kQuantizedState = {{'P', 'G', 'Q', 'S'}, "quantized-state container",
                                           "rewrite the artifact; was it truncated or written by another program?",
                                           "was it decompressed with the compressor that wrote it?"};
}  // namespace

namespace {
const std::vector<std::pair<torch::ScalarType, const char*>>& dtype_names() {
  static const std::vector<std::pair<torch::ScalarType, const char*>> names = {
      {torch::kFloat32, "float32"}, {torch::kFloat16, "float16"}, {torch::kBFloat16, "bfloat16"},
      {torch::kFloat64, "float64"}, {torch::kInt8, "int8"},       {torch::kUInt8, "uint8"},
      {torch::kInt16, "int16"},     {torch::kInt32, "int32"},     {torch::kInt64, "int64"},
      {torch::kBool, "bool"}};
  return names;
}
}  // namespace

std::string dtype_name(torch::ScalarType t, const std::string& tensor, const std::string& who) {
  for (const auto& [dt, n] : dtype_names())
    if (dt == t) return n;
  throw std::runtime_error(who + " quantize: tensor '" + tensor + "' has dtype " + c10::toString(t) +
                           ", which the artifact cannot hold");
}

torch::ScalarType dtype_from_name(const std::string& name, const std::string& tensor, const std::string& who) {
  for (const auto& [dt, n] : dtype_names())
    if (name == n) return dt;
  throw std::runtime_error(who + " dequantize: meta of '" + tensor + "' names unknown dtype '" + name + "'");
}

QuantizedState Quantizer::quantize_state(const NamedTensors& state) const {
  static const std::map<std::string, torch::Tensor> no_hessians;
  LocalCommunicator local;
  return quantize(QuantizerContext{nullptr, state, no_hessians, torch::kCPU, local});
}

std::string serialize_state(const QuantizedState& q) { return pack_archive(kQuantizedState, q.tensors, q.meta); }

QuantizedState deserialize_state(const std::string& bytes, const std::string& what) {
  QuantizedState q;
  unpack_archive(kQuantizedState, bytes, what, &q.tensors, &q.meta);
  return q;
}

namespace {
// The section validated as a component of `kind` would be in a recipe (defaults filled, keys checked).
Config component_config(const char* kind, const Json& section, const std::string& path) {
  Schema s;
  s.component(path, kind, "", "");  // the key is the path, so errors name it
  return Config(s.validate(Json{{path, section}}, "", "").at(path), path);
}
}  // namespace

std::shared_ptr<Compressor> make_compressor(const Json& section, const std::string& path) {
  return CompressorRegistry::get().build(component_config(Compressor::kKind, section, path));
}

std::shared_ptr<Container> make_container(const Json& section, const std::string& path) {
  return ContainerRegistry::get().build(component_config(Container::kKind, section, path));
}

}  // namespace pgolf
