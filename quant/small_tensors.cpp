#include "quant/small_tensors.h"

namespace pgolf::quant {

Schema SmallTensorPolicy::schema() {
  return Schema()
      .integer("max_numel", 65536, 0, 1e15, "float tensors with at most this many elements are stored fp16")
      .boolean("gate_int8_row", false, "store attention-gate weights (name ends in gate_suffix) as int8 per row")
      .string("gate_suffix", ".attn_gate_w", "name suffix of the gate weights gate_int8_row applies to")
      .integer("gate_min_numel", 32, 0, 1e15, "gate_int8_row applies from this many elements")
      .integer("gate_max_numel", 8192, 0, 1e15, "gate_int8_row applies up to this many elements");
}

SmallTensorPolicy SmallTensorPolicy::from(const Config& c) {
  return SmallTensorPolicy{c.i("max_numel"), c.b("gate_int8_row"), c.s("gate_suffix"), c.i("gate_min_numel"),
                           c.i("gate_max_numel")};
}

void write_passthrough(const std::string& name, const torch::Tensor& t, torch::ScalarType stored, StateWriter& w,
                       const std::string& who) {
  Json m = entry_meta("passthrough", t, name, who);
  m["stored"] = dtype_name(stored, name, who);
  w.emit(name, t.to(stored).contiguous());
  w.meta(name, std::move(m));
}

bool SmallTensorPolicy::handles(const std::string& name, const torch::Tensor& t) const {
  return !t.is_floating_point() || gate(name, t) || t.numel() <= max_numel;
}

bool SmallTensorPolicy::gate(const std::string& name, const torch::Tensor& t) const {
  return gate_int8_row && t.dim() == 2 && t.numel() >= gate_min_numel && t.numel() <= gate_max_numel &&
         name.size() >= gate_suffix.size() &&
         name.compare(name.size() - gate_suffix.size(), gate_suffix.size(), gate_suffix) == 0;
}

bool SmallTensorPolicy::apply(const std::string& name, const torch::Tensor& t, StateWriter& w,
                              const std::string& who) const {
  if (!t.is_floating_point()) {
    w.emit(name, t.contiguous());
    w.meta(name, entry_meta("raw", t, name, who));
    return true;
  }
  if (gate(name, t)) {
    Json m = entry_meta("gate_int8_row", t, name, who);
    write_gate_int8_row(name, t.to(torch::kFloat32), w, m);
    w.meta(name, std::move(m));
    return true;
  }
  if (t.numel() > max_numel) return false;
  write_passthrough(name, t, torch::kFloat16, w, who);
  return true;
}

}  // namespace pgolf::quant
