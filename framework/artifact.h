// The artifact: quantised weights, serialised and compressed, plus the counted code bytes. Every score
// after quantisation comes from a model rebuilt from the artifact's bytes alone.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "framework/comm.h"
#include "framework/named_state.h"
#include "framework/registry.h"

namespace pgolf {

struct LanguageModel;

// What a quantiser produces: named tensors (int8 codes, fp16 scales, passthrough values) and a small
// JSON description per source tensor saying how to rebuild it.
struct QuantizedState {
  NamedTensors tensors;
  Json meta = Json::object();
};

// What a quantiser sees: the model being exported (weights averaged and pruned), its state by name (live
// tensors on the device), the Hessians a calibration stage collected (input-activation H = sum x^T x by
// parameter name; empty when none ran), the device and the communicator.
struct QuantizerContext {
  LanguageModel* model = nullptr;  // null when only a state is quantised (tests, tools)
  NamedTensors state;
  const std::map<std::string, torch::Tensor>& hessians;
  torch::Device device;
  Communicator& comm;
};

struct Quantizer {
  static constexpr const char* kKind = "quantizer";
  virtual ~Quantizer() = default;
  virtual QuantizedState quantize(const QuantizerContext& ctx) const = 0;
  // A bare state on the CPU, with no model, Hessians or other ranks (tests, tools).
  QuantizedState quantize_state(const NamedTensors& state) const;
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

// An artifact format: a QuantizedState <-> the bytes of artifact.bin (posttrain §7: the standard container,
// #461's zstd-22, the per-group PGRP serializer). Built when the pipeline is built, so whatever it needs from
// outside the process (an external program) is checked before training.
struct Container {
  static constexpr const char* kKind = "container";
  virtual ~Container() = default;
  virtual std::string pack(const QuantizedState& q) const = 0;
  // Throws std::runtime_error naming `what` (the file) and what is wrong: truncated, damaged, foreign.
  virtual QuantizedState unpack(const std::string& bytes, const std::string& what) const = 0;
  // Stored bytes by part ("model", or one entry per PGRP stream), for pgolf-artifact inspect.
  virtual std::vector<std::pair<std::string, int64_t>> parts(const std::string& bytes, const std::string& what) const {
    return {{"model", static_cast<int64_t>(bytes.size())}};
  }
  // The part that stores a tensor of an unpacked state.
  virtual std::string part_of(const std::string& name, const torch::Tensor& t) const { return "model"; }
};
using ContainerRegistry = Registry<Container>;

// A registered component of `kind` from a JSON section {"name": ..., keys...}, validated against its schema
// (defaults filled); `path` names it in errors.
std::shared_ptr<Compressor> make_compressor(const Json& section, const std::string& path);
std::shared_ptr<Container> make_container(const Json& section, const std::string& path);

}  // namespace pgolf
