#include "framework/artifact.h"

#include "framework/tensor_archive.h"

namespace pgolf {

namespace {
constexpr ArchiveFormat kQuantizedState = {{'P', 'G', 'Q', 'S'}, "quantized-state container",
                                           "rewrite the artifact; was it truncated or written by another program?",
                                           "was it decompressed with the compressor that wrote it?"};
}  // namespace

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
