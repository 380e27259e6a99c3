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
//
// Naming contract of the spec's quantisers (gptq, rtn461; spec posttrain §5-§7; containers and the PGRP
// per-group serializer bucket by these names). For a parameter P (state-dict name, e.g.
// "blocks.3.attn.c_q.weight"):
//   P.q            int8 (rows, cols) codes             gptq / rtn (per-row), int8_tensor (any shape)
//   P.scale        fp16 (rows) row scales              gptq / rtn;  fp32 scalar for int8_tensor
//   P              the tensor itself                   passthrough (stored fp16 or fp32), raw (non-float)
//   P.gq, P.gs     int8 (rows, cols), fp16 (rows)      gate_int8_row (the attention gate, spec §6)
//   P.lqA_a        int8 (rows, r) in [-2, 1]           LQER asymmetric A (spec §5)
//   P.lqAs_a       fp16 scalar                         its one scale
//   P.lqB_a        int8 (r, cols) in [-8, 7]           LQER asymmetric B
//   P.lqBs_a       fp16 (r*cols/group)                 its per-group scales (row-major groups)
//   P.lqA, P.lqAs, P.lqB, P.lqBs                       the symmetric fallback (per-row scales of A and B)
// meta is an object keyed by P (every parameter the quantiser saw, in state order), each entry
//   {"method": "gptq" | "rtn" | "passthrough" | "raw" | "gate_int8_row" | "int8_tensor",
//    "dtype": <the parameter's dtype, what dequantisation casts back to>, "shape": [...],
//    "bits": b (gptq, rtn), "k": k (gptq), "stored": "float16" | "float32" (passthrough),
//    "lqer": {"rank": r, "scheme": "asym", "group": 64} or {"rank": r, "scheme": "sym", "bits": 4} (optional)}
// Dequantisation (spec §7.5): P = q·s per row (+ (qA·sA)(qB·sB)) in fp32, then cast to "dtype".
// (int8_row, the baseline quantiser, keeps its own older layout: meta = {"quantizer", "tensors": {...}}.)
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

// The one table of the dtype names artifact meta uses ("float32", "bfloat16", "int8", ...); `who` (the quantiser)
// and the tensor's name go into the message when a dtype has no name or a name no dtype.
std::string dtype_name(torch::ScalarType t, const std::string& tensor, const std::string& who);
torch::ScalarType dtype_from_name(const std::string& name, const std::string& tensor, const std::string& who);

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
