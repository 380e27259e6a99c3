// rtn461: #461's export (spec posttrain §4.4), no Hessian. Per state entry, first rule that applies:
//   non-float                              -> stored unchanged                              ("raw")
//   numel ≤ small_max_numel                -> fp16 under its own name                       ("passthrough")
//   name holds an fp32 pattern (controls)  -> fp32                                          ("passthrough")
//   name holds an fp16 pattern             -> fp16 (tok_emb, cores.2.attn.c_k)              ("passthrough")
//   2-D, name holds an attn pattern        -> per-row absmax int<attn_bits>, range [−(c+1), c] ("rtn")
//   2-D, name holds an mlp pattern         -> the same with mlp_bits
//   other 2-D                              -> int8: per-row clip at the clip percentile of |w|, values
//                                             clamped to ±clip, s = max(clip/127, 1/127) quantises in fp32
//                                             (the baseline's int8 path #461 inherits), stored fp16 ("rtn", 8)
//   other                                  -> one fp32 scale: clip/127 of the clip percentile ("int8_tensor")
// Absmax rows: s = max(fp16(max(max|w_r|/c, 1e-12)), fp16 tiny); the fp16 value quantises.
#include <algorithm>

#include "quant/quant_state.h"
#include "quant/small_tensors.h"

namespace pgolf {
namespace {

constexpr const char* kName = "rtn461";

bool holds_any(const std::string& name, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return name.find(p) != std::string::npos; });
}

// Per-row |w| quantile (linear interpolation, torch.quantile), row by row to stay under its size limit.
torch::Tensor row_quantile(const torch::Tensor& abs, double q) {
  if (abs.numel() <= (int64_t{1} << 24)) return torch::quantile(abs, q, /*dim=*/1);
  std::vector<torch::Tensor> rows;
  for (int64_t r = 0; r < abs.size(0); ++r) rows.push_back(torch::quantile(abs[r], q));
  return torch::stack(rows);
}

class Rtn461Quantizer : public Quantizer {
 public:
  explicit Rtn461Quantizer(const Config& c)
      : small_max_(c.i("small_max_numel")), fp32_(c.strings("fp32_patterns")), fp16_(c.strings("fp16_patterns")),
        attn_(c.strings("attn_patterns")), mlp_(c.strings("mlp_patterns")), attn_bits_(static_cast<int>(c.i("attn_bits"))),
        mlp_bits_(static_cast<int>(c.i("mlp_bits"))), clip_q_(c.f("clip_percentile") / 100.0) {}

  QuantizedState quantize(const QuantizerContext& ctx) const override {
    QuantizedState out;
    quant::StateWriter wr(out, kName);
    for (const auto& [name, src] : ctx.state) {
      const torch::Tensor t = src.detach().to(torch::kCPU);
      if (!t.is_floating_point()) {
        wr.emit(name, t.contiguous());
        wr.meta(name, quant::entry_meta("raw", t, name, kName));
      } else if (t.numel() <= small_max_ || holds_any(name, fp32_) || holds_any(name, fp16_)) {
        const bool fp32 = t.numel() > small_max_ && holds_any(name, fp32_);
        quant::write_passthrough(name, t, fp32 ? torch::kFloat32 : torch::kFloat16, wr, kName);
      } else {
        write_quantized(name, t.to(torch::kFloat32), wr, quant::entry_meta("rtn", t, name, kName));
      }
    }
    return out;
  }

  NamedTensors dequantize(const QuantizedState& q) const override { return quant::dequantize_state(q, kName); }

 private:
  void write_quantized(const std::string& name, const torch::Tensor& w, quant::StateWriter& wr, Json m) const {
    if (!torch::isfinite(w).all().item<bool>())
      throw std::runtime_error(std::string(kName) + " quantize: tensor '" + name + "' holds NaN or Inf");
    if (w.dim() == 2 && (holds_any(name, attn_) || holds_any(name, mlp_))) {
      const int bits = holds_any(name, attn_) ? attn_bits_ : mlp_bits_;
      const int64_t c = (int64_t{1} << (bits - 1)) - 1;
      const double tiny = 6.103515625e-05;  // torch.finfo(float16).tiny
      const torch::Tensor s = (w.abs().amax(1) / static_cast<double>(c)).clamp_min(1e-12).to(torch::kFloat16).clamp_min(tiny);
      wr.emit(name + ".q", quant::row_codes(w, s, -(c + 1), c));
      wr.emit(name + ".scale", s);
      m["bits"] = bits;
    } else if (w.dim() == 2) {
      const torch::Tensor clip = row_quantile(w.abs(), clip_q_);
      const torch::Tensor s = (clip / 127.0).clamp_min(1.0 / 127.0);
      const torch::Tensor clipped = torch::maximum(torch::minimum(w, clip.unsqueeze(1)), -clip.unsqueeze(1));
      wr.emit(name + ".q", torch::clamp(torch::round(clipped / s.unsqueeze(1)), -127, 127).to(torch::kInt8));
      wr.emit(name + ".scale", s.to(torch::kFloat16));
      m["bits"] = 8;
    } else {
      const double clip = torch::quantile(w.abs().reshape(-1), clip_q_).item<double>();
      const float s = clip > 0 ? static_cast<float>(clip / 127.0) : 1.0f;
      wr.emit(name + ".q", torch::clamp(torch::round(torch::clamp(w, -clip, clip) / s), -127, 127).to(torch::kInt8));
      wr.emit(name + ".scale", torch::full({}, s, torch::kFloat32));
      m["method"] = "int8_tensor";
    }
    wr.meta(name, std::move(m));
  }

  int64_t small_max_;
  std::vector<std::string> fp32_, fp16_, attn_, mlp_;
  int attn_bits_, mlp_bits_;
  double clip_q_;
};

Schema rtn461_schema() {
  return Schema()
      .integer("small_max_numel", 8192, 0, 1e15, "float tensors with at most this many elements are stored fp16")
      .string_list("fp32_patterns",
                   {"attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight", "smear", "bigram.scale",
                    "ve_layer_scales", "ve_shared.scale"},
                   "name substrings of control tensors stored fp32")
      .string_list("fp16_patterns", {"tok_emb", "cores.2.attn.c_k"}, "name substrings of tensors stored fp16")
      .string_list("attn_patterns", {".attn.", "bigram"}, "name substrings of the attn_bits matrices")
      .string_list("mlp_patterns", {".mlp."}, "name substrings of the mlp_bits matrices")
      .integer("attn_bits", 6, 2, 8, "attention (and bigram) matrices: per-row absmax int<bits>")
      .integer("mlp_bits", 5, 2, 8, "MLP matrices: per-row absmax int<bits>")
      .number("clip_percentile", 99.99984, 0.0, 100.0, "the int8 path's per-row clip percentile of |w|");
}

PGOLF_REGISTER(QuantizerRegistry, kName, rtn461_schema(),
               [](const Config& c) -> std::shared_ptr<Quantizer> { return std::make_shared<Rtn461Quantizer>(c); },
               "#461's export: per-row absmax int6 attention / int5 MLP, fp16/fp32 passthrough, int8 rest");

}  // namespace
}  // namespace pgolf
