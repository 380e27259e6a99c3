#include "quant/quant_state.h"

#include "quant/lqer.h"

namespace pgolf::quant {
namespace {

struct Stored {
  std::map<std::string, const torch::Tensor*> by_name;
  std::string who;
  const torch::Tensor& need(const std::string& src, const std::string& n, torch::ScalarType dt) const {
    auto it = by_name.find(n);
    if (it == by_name.end()) throw std::runtime_error(who + " dequantize: tensor '" + n + "' (for '" + src + "') is missing");
    if (it->second->scalar_type() != dt)
      throw std::runtime_error(who + " dequantize: tensor '" + n + "' has dtype " + c10::toString(it->second->scalar_type()) +
                               ", expected " + c10::toString(dt));
    return *it->second;
  }
};

torch::Tensor rows_times_scale(const Stored& st, const std::string& name, const std::string& qn, const std::string& sn) {
  const torch::Tensor& q = st.need(name, qn, torch::kInt8);
  const torch::Tensor& s = st.need(name, sn, torch::kFloat16);
  if (q.dim() != 2 || s.dim() != 1 || s.size(0) != q.size(0))
    throw std::runtime_error(st.who + " dequantize: '" + name + "' codes " + c10::str(q.sizes()) + " and row scales " +
                             c10::str(s.sizes()) + " disagree");
  return q.to(torch::kFloat32) * s.to(torch::kFloat32).unsqueeze(1);
}

torch::Tensor dequantize_entry(const Stored& st, const std::string& name, const Json& m) {
  const std::string method = m.at("method").get<std::string>();
  if (method == "raw") return st.need(name, name, dtype_from_name(m.at("dtype").get<std::string>(), name, st.who));
  if (method == "passthrough") {
    return st.need(name, name, dtype_from_name(m.at("stored").get<std::string>(), name, st.who)).to(torch::kFloat32);
  }
  if (method == "gate_int8_row") return rows_times_scale(st, name, name + ".gq", name + ".gs");
  if (method == "int8_tensor") {
    const torch::Tensor& s = st.need(name, name + ".scale", torch::kFloat32);
    if (s.numel() != 1) throw std::runtime_error(st.who + " dequantize: '" + name + "' needs one scale");
    return st.need(name, name + ".q", torch::kInt8).to(torch::kFloat32) * s.to(torch::kFloat32).reshape({});
  }
  if (method == "gptq" || method == "rtn") {
    torch::Tensor w = rows_times_scale(st, name, name + ".q", name + ".scale");
    if (m.contains("lqer")) {
      NamedTensors f;
      for (const auto& n : lqer_tensor_names(name, m["lqer"])) f.emplace_back(n, st.need(name, n, lqer_tensor_dtype(n)));
      w = w + lqer_decode(name, m["lqer"], f);
    }
    return w;
  }
  throw std::runtime_error(st.who + " dequantize: '" + name + "' has unknown method '" + method + "'");
}

}  // namespace

Json entry_meta(const std::string& method, const torch::Tensor& src, const std::string& name, const std::string& who) {
  return Json{{"method", method}, {"dtype", dtype_name(src.scalar_type(), name, who)}, {"shape", src.sizes().vec()}};
}

void StateWriter::emit(const std::string& name, torch::Tensor t) {
  if (!names_.insert(name).second)
    throw std::runtime_error(who_ + " quantize: two tensors would be stored as '" + name +
                             "' (a parameter's name ends like a stored suffix: .q, .scale, .gq, .lqA_a, ...); rename it");
  out_.tensors.emplace_back(name, std::move(t));
}

void StateWriter::meta(const std::string& param, Json m) {
  if (out_.meta.contains(param)) throw std::runtime_error(who_ + " quantize: tensor '" + param + "' given twice");
  out_.meta[param] = std::move(m);
}

torch::Tensor row_codes(const torch::Tensor& w, const torch::Tensor& s16, int64_t lo, int64_t hi) {
  const torch::Tensor s = s16.to(w.scalar_type()).unsqueeze(-1);
  const torch::Tensor ok = s > 0;
  const torch::Tensor q = torch::clamp(torch::round(w / torch::where(ok, s, torch::ones_like(s))), lo, hi);
  return torch::where(ok, q, torch::zeros_like(q)).to(torch::kInt8);
}

void write_gate_int8_row(const std::string& name, const torch::Tensor& t32, StateWriter& w, Json& m) {
  const torch::Tensor s = (t32.abs().amax(1).clamp_min(1e-10) / 127.0).to(torch::kFloat16);
  w.emit(name + ".gq", row_codes(t32, s, -127, 127));
  w.emit(name + ".gs", s);
  m["method"] = "gate_int8_row";
}

NamedTensors dequantize_state(const QuantizedState& q, const std::string& who) {
  if (!q.meta.is_object())
    throw std::runtime_error(who + " dequantize: the artifact's meta is not an object of per-tensor entries");
  Stored st{{}, who};
  for (const auto& [n, t] : q.tensors) st.by_name[n] = &t;
  NamedTensors out;
  for (const auto& [name, m] : q.meta.items()) {
    torch::Tensor t;
    torch::ScalarType dtype;
    std::vector<int64_t> shape;
    try {
      dtype = dtype_from_name(m.at("dtype").get<std::string>(), name, who);
      shape = m.at("shape").get<std::vector<int64_t>>();
      t = dequantize_entry(st, name, m);
    } catch (const Json::exception& e) {
      throw std::runtime_error(who + " dequantize: meta of '" + name + "' (" + m.dump() + ") is malformed: " + e.what());
    }
    if (t.sizes().vec() != shape)
      throw std::runtime_error(who + " dequantize: '" + name + "' rebuilt as " + c10::str(t.sizes()) +
                               ", its meta records " + c10::str(c10::IntArrayRef(shape)));
    out.emplace_back(name, t.to(dtype));
  }
  return out;
}

}  // namespace pgolf::quant
