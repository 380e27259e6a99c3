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

}  // namespace pgolf
