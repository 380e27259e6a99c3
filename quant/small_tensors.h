// The small-tensor policy of the GPTQ seeds (spec posttrain §6), applied before any matrix quantiser:
//   non-float                                          -> stored unchanged          ("raw")
//   float 2-D whose name ends in the gate suffix, with
//   gate_min_numel ≤ numel ≤ gate_max_numel (when on)  -> int8 per row, .gq / .gs    ("gate_int8_row")
//   other float with numel ≤ max_numel                 -> fp16 under its own name    ("passthrough")
// On load the fp16 value is cast back to the template dtype (the tensor's own), losing precision once.
#pragma once

#include "quant/quant_state.h"

namespace pgolf::quant {

struct SmallTensorPolicy {
  int64_t max_numel = 65536;
  bool gate_int8_row = false;
  std::string gate_suffix = ".attn_gate_w";
  int64_t gate_min_numel = 32, gate_max_numel = 8192;

  static Schema schema();
  static SmallTensorPolicy from(const Config& c);
  // Whether the policy stores `t` (else it is for the matrix quantiser).
  bool handles(const std::string& name, const torch::Tensor& t) const;
  // Writes `t` (CPU) by the policy; returns handles(name, t).
  bool apply(const std::string& name, const torch::Tensor& t, StateWriter& w, const std::string& who) const;

 private:
  bool gate(const std::string& name, const torch::Tensor& t) const;
};

// fp16 passthrough of `t` under `name` (also for large tensors a quantiser does not handle).
void write_passthrough(const std::string& name, const torch::Tensor& t, torch::ScalarType stored, StateWriter& w,
                       const std::string& who);

}  // namespace pgolf::quant
