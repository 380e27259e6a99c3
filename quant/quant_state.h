// What the spec's quantisers (gptq, rtn461) share: the naming contract of framework/artifact.h (tensor
// names, per-parameter meta), writing a QuantizedState without name clashes, per-row codes, and the one
// dequantiser every method's meta is undone by (spec posttrain §7.5: fp32, then the template dtype).
#pragma once

#include <map>
#include <set>
#include <string>

#include "framework/artifact.h"

namespace pgolf::quant {

// {"method": m, "dtype": <source dtype>, "shape": [...]}: the part of every meta entry.
Json entry_meta(const std::string& method, const torch::Tensor& src, const std::string& name, const std::string& who);

// Appends tensors to a QuantizedState, refusing a name twice (a source called "x.q" beside "x").
class StateWriter {
 public:
  StateWriter(QuantizedState& out, std::string who) : out_(out), who_(std::move(who)) {}
  void emit(const std::string& name, torch::Tensor t);
  void meta(const std::string& param, Json m);

 private:
  QuantizedState& out_;
  std::string who_;
  std::set<std::string> names_;
};

// Per-row symmetric codes with fixed fp16 scales: q = clamp(round(w / s), lo, hi) (round half to even); a
// zero scale (a constant row whose scale underflowed) gives codes 0. w fp32 (rows, cols), s fp16 (rows).
torch::Tensor row_codes(const torch::Tensor& w, const torch::Tensor& s16, int64_t lo, int64_t hi);

// The gate int8-row scheme (spec §6): s = fp16(max(max|w_r|, 1e-10)/127), q ∈ [−127, 127]; `.gq`, `.gs`.
void write_gate_int8_row(const std::string& name, const torch::Tensor& t32, StateWriter& w, Json& m);

// Every tensor the meta lists, rebuilt in fp32 and cast to its recorded dtype, in the meta's order.
// Methods: raw, passthrough, gate_int8_row, int_row (gptq and rtn: q·s per row, + LQER factors), int_tensor.
NamedTensors dequantize_state(const QuantizedState& q, const std::string& who);

}  // namespace pgolf::quant
