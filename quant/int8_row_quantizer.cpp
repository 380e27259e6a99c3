// int8_row: the challenge baseline's export. Per source tensor:
//   non-float                      -> stored unchanged                      (scheme "raw")
//   float, numel <= keep max       -> fp32 if the name holds a keep pattern ("fp32"), else fp16 ("fp16")
//   larger 2-D float               -> per row: clip = quantile(|w_r|, q), s = max(clip/127, 1/127),
//                                     codes = clamp(round(clamp(w, ±clip)/s), ±127) int8, s stored fp16 ("int8_row")
//   larger float of any other rank -> one fp32 scale: clip = quantile(|w|, q), s = clip/127 (1 if clip = 0) ("int8_tensor")
// Dequantisation is codes · fp32(stored scale), then every tensor is cast back to its original dtype.
#include <algorithm>
#include <cmath>
#include <set>

#include "framework/artifact.h"

namespace pgolf {
namespace {

constexpr const char* kName = "int8_row";

// torch.quantile(x, q) with linear interpolation, bit for bit: rank = fp32(q)·(n−1) in fp32, then ATen's lerp
// (w < 0.5: a + w·(b−a), else b − (b−a)·(1−w)) with the product fused as its vectorised CPU kernel does.
// Selection instead of a sort: O(n), and no 16M-element limit. `v` is scratch (reordered).
float quantile_linear(std::vector<float>& v, float qf) {
  const size_t n = v.size();
  const float rank = qf * static_cast<float>(n - 1);
  const size_t lo = static_cast<size_t>(rank), hi = static_cast<size_t>(std::ceil(rank));
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const float a = v[lo];
  const float b = hi == lo ? a : *std::min_element(v.begin() + lo + 1, v.end());
  const float w = rank - static_cast<float>(lo), d = b - a;
  return w < 0.5f ? std::fma(w, d, a) : std::fma(w - 1.0f, d, b);
}

class Int8RowQuantizer : public Quantizer {
 public:
  Int8RowQuantizer(double clip_percentile, int64_t keep_max, std::vector<std::string> keep_fp32)
      : q_(static_cast<float>(clip_percentile / 100.0)), keep_max_(keep_max), keep_fp32_(std::move(keep_fp32)) {}

  QuantizedState quantize(const QuantizerContext& ctx) const override {
    const NamedTensors& state = ctx.state;
    QuantizedState out;
    Json tensors = Json::object();
    std::set<std::string> names;
    auto emit = [&](const std::string& name, torch::Tensor t) {
      if (!names.insert(name).second)
        throw std::runtime_error(std::string(kName) + " quantize: two tensors would be stored as '" + name +
                                 "' (a source name ends in .q or .scale); rename the parameter");
      out.tensors.emplace_back(name, std::move(t));
    };
    for (const auto& [name, src] : state) {
      if (tensors.contains(name)) throw std::runtime_error(std::string(kName) + " quantize: tensor '" + name + "' given twice");
      const torch::Tensor t = src.detach().to(torch::kCPU);  // CPU: the same bytes whatever device trained
      Json m = {{"scheme", ""}, {"dtype", dtype_name(t.scalar_type(), name, kName)}, {"shape", t.sizes().vec()}};
      if (!t.is_floating_point()) {
        m["scheme"] = "raw";
        emit(name, t.contiguous());
      } else if (t.numel() <= keep_max_) {
        const bool fp32 = std::any_of(keep_fp32_.begin(), keep_fp32_.end(),
                                      [&](const std::string& p) { return name.find(p) != std::string::npos; });
        m["scheme"] = fp32 ? "fp32" : "fp16";
        emit(name, t.to(fp32 ? torch::kFloat32 : torch::kFloat16).contiguous());
      } else {
        const torch::Tensor t32 = t.to(torch::kFloat32).contiguous();
        if (!torch::isfinite(t32).all().item<bool>())
          throw std::runtime_error(std::string(kName) + " quantize: tensor '" + name +
                                   "' holds NaN or Inf; training diverged, there is nothing to quantise");
        if (t32.dim() == 2) {
          auto [codes, scale] = quantize_rows(t32);
          m["scheme"] = "int8_row";
          emit(name + ".q", codes);
          emit(name + ".scale", scale);
        } else {
          auto [codes, scale] = quantize_tensor(t32);
          m["scheme"] = "int8_tensor";
          emit(name + ".q", codes);
          emit(name + ".scale", scale);
        }
      }
      tensors[name] = std::move(m);
    }
    out.meta = {{"quantizer", kName}, {"tensors", std::move(tensors)}};
    return out;
  }

  NamedTensors dequantize(const QuantizedState& q) const override {
    if (!q.meta.is_object() || q.meta.value("quantizer", "") != kName || !q.meta.contains("tensors") ||
        !q.meta["tensors"].is_object())
      throw std::runtime_error(std::string(kName) + " dequantize: the artifact's meta was not written by the " + kName +
                               " quantizer (meta.quantizer = " +
                               (q.meta.is_object() && q.meta.contains("quantizer") ? q.meta["quantizer"].dump() : "absent") +
                               "); set the quantize stage's quantizer to the one that wrote it");
    std::map<std::string, const torch::Tensor*> stored;
    for (const auto& [n, t] : q.tensors) stored[n] = &t;
    auto need = [&](const std::string& src, const std::string& n, torch::ScalarType dt) -> const torch::Tensor& {
      auto it = stored.find(n);
      if (it == stored.end())
        throw std::runtime_error(std::string(kName) + " dequantize: tensor '" + n + "' (for '" + src + "') is missing");
      if (it->second->scalar_type() != dt)
        throw std::runtime_error(std::string(kName) + " dequantize: tensor '" + n + "' has dtype " +
                                 c10::toString(it->second->scalar_type()) + ", expected " + c10::toString(dt));
      return *it->second;
    };
    NamedTensors out;
    for (const auto& [name, m] : q.meta["tensors"].items()) {
      std::string scheme, dtype_str;
      std::vector<int64_t> shape;
      try {
        scheme = m.at("scheme").get<std::string>();
        dtype_str = m.at("dtype").get<std::string>();
        shape = m.at("shape").get<std::vector<int64_t>>();
      } catch (const Json::exception& e) {
        throw std::runtime_error(std::string(kName) + " dequantize: meta of '" + name +
                                 "' lacks scheme/dtype/shape: " + e.what());
      }
      const torch::ScalarType dtype = dtype_from_name(dtype_str, name, kName);
      torch::Tensor t;
      if (scheme == "raw") {
        t = need(name, name, dtype);
      } else if (scheme == "fp32" || scheme == "fp16") {
        t = need(name, name, scheme == "fp32" ? torch::kFloat32 : torch::kFloat16);
      } else if (scheme == "int8_row") {
        const torch::Tensor& codes = need(name, name + ".q", torch::kInt8);
        const torch::Tensor& scale = need(name, name + ".scale", torch::kFloat16);
        if (codes.dim() != 2 || scale.dim() != 1 || scale.size(0) != codes.size(0))
          throw std::runtime_error(std::string(kName) + " dequantize: '" + name + "' codes and row scales disagree in shape");
        t = codes.to(torch::kFloat32) * scale.to(torch::kFloat32).unsqueeze(1);
      } else if (scheme == "int8_tensor") {
        const torch::Tensor& codes = need(name, name + ".q", torch::kInt8);
        const torch::Tensor& scale = need(name, name + ".scale", torch::kFloat32);
        if (scale.numel() != 1)
          throw std::runtime_error(std::string(kName) + " dequantize: '" + name + "' needs one scale, has " +
                                   std::to_string(scale.numel()));
        t = codes.to(torch::kFloat32) * scale.reshape({});
      } else {
        throw std::runtime_error(std::string(kName) + " dequantize: '" + name + "' has unknown scheme '" + scheme + "'");
      }
      if (t.sizes().vec() != shape)
        throw std::runtime_error(std::string(kName) + " dequantize: '" + name + "' has another shape than its meta records");
      out.emplace_back(name, t.to(dtype));
    }
    return out;
  }

 private:
  // Row r: clip_r = quantile(|w_r|, q); s_r = max(clip_r/127, 1/127) in fp32 quantises, fp16(s_r) is stored.
  std::pair<torch::Tensor, torch::Tensor> quantize_rows(const torch::Tensor& t32) const {
    const int64_t rows = t32.size(0), cols = t32.size(1);
    const torch::Tensor abs = t32.abs();
    const float* a = abs.data_ptr<float>();
    torch::Tensor clip = torch::empty({rows}, torch::kFloat32);
    float* c = clip.data_ptr<float>();
    std::vector<float> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
      row.assign(a + r * cols, a + (r + 1) * cols);
      c[r] = quantile_linear(row, q_);
    }
    const torch::Tensor scale = (clip / 127.0).clamp_min(1.0 / 127.0);
    const torch::Tensor col = clip.unsqueeze(1);
    const torch::Tensor clipped = torch::maximum(torch::minimum(t32, col), -col);
    const torch::Tensor codes = torch::clamp(torch::round(clipped / scale.unsqueeze(1)), -127, 127).to(torch::kInt8);
    return {codes, scale.to(torch::kFloat16)};
  }

  // Any other rank: one scale for the whole tensor, kept fp32.
  std::pair<torch::Tensor, torch::Tensor> quantize_tensor(const torch::Tensor& t32) const {
    const torch::Tensor abs = t32.abs().reshape(-1).contiguous();
    std::vector<float> v(abs.data_ptr<float>(), abs.data_ptr<float>() + abs.numel());
    const float clip = quantile_linear(v, q_);
    const float s = clip > 0 ? static_cast<float>(static_cast<double>(clip) / 127.0) : 1.0f;
    const torch::Tensor scale = torch::full({}, s, torch::kFloat32);
    const torch::Tensor codes =
        torch::clamp(torch::round(torch::clamp(t32, -clip, clip) / scale), -127, 127).to(torch::kInt8);
    return {codes, scale};
  }

  float q_;
  int64_t keep_max_;
  std::vector<std::string> keep_fp32_;
};

Schema int8_row_schema() {
  Schema s;
  s.number("clip_percentile", 99.99984, 0.0, 100.0, "per-row clip at this percentile of |w| (100 = absmax)")
      .integer("keep_float_max_numel", 65536, 0, 1e15, "float tensors with at most this many elements are not quantised")
      .string_list("keep_fp32_patterns", {"attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight"},
                   "name substrings of small float tensors kept fp32 (other small floats are stored fp16)");
  return s;
}

PGOLF_REGISTER(
    QuantizerRegistry, kName, int8_row_schema(),
    [](const Config& c) -> std::shared_ptr<Quantizer> {
      return std::make_shared<Int8RowQuantizer>(c.f("clip_percentile"), c.i("keep_float_max_numel"),
                                                c.strings("keep_fp32_patterns"));
    },
    "baseline int8 export: per-row int8 (fp16 scales) for large matrices, fp16/fp32 passthrough for small tensors");

}  // namespace
}  // namespace pgolf
