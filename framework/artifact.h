// The artifact: quantised weights, serialised and compressed, plus the counted code bytes. Every score
// after quantisation comes from a model rebuilt from the artifact's bytes alone.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "framework/registry.h"

namespace pgolf {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// What a quantiser produces: named tensors (int8 codes, fp16 scales, passthrough values) and a small
// JSON description per source tensor saying how to rebuild it.
struct QuantizedState {
  NamedTensors tensors;
  Json meta = Json::object();
};

struct Quantizer {
  static constexpr const char* kKind = "quantizer";
  virtual ~Quantizer() = default;
  virtual QuantizedState quantize(const NamedTensors& state) const = 0;
  // Rebuilds every tensor quantize() saw, in its original dtype and order.
  virtual NamedTensors dequantize(const QuantizedState& q) const = 0;
};
using QuantizerRegistry = Registry<Quantizer>;

struct Compressor {
  static constexpr const char* kKind = "compressor";
  virtual ~Compressor() = default;
  virtual std::string compress(const std::string& raw) const = 0;
  virtual std::string decompress(const std::string& packed) const = 0;
};
using CompressorRegistry = Registry<Compressor>;

// A deterministic container for a QuantizedState (same input -> same bytes).
std::string serialize_state(const QuantizedState& q);
QuantizedState deserialize_state(const std::string& bytes, const std::string& what);

}  // namespace pgolf
