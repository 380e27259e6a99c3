#include "quant/lqer.h"

#include "quant/quant_state.h"

namespace pgolf::quant {
namespace {

// q = clamp(round(x / s), lo, hi) with s already fp16-rounded, broadcast; a zero scale gives codes 0.
torch::Tensor codes(const torch::Tensor& x, const torch::Tensor& s16, int64_t lo, int64_t hi) {
  const torch::Tensor s = s16.to(torch::kFloat32);
  const torch::Tensor ok = s > 0;
  const torch::Tensor q = torch::clamp(torch::round(x / torch::where(ok, s, torch::ones_like(s))), lo, hi);
  return torch::where(ok, q, torch::zeros_like(q)).to(torch::kInt8);
}

// Symmetric per-row: s_r = fp16(max|x_r| / cr), q ∈ [−cr, cr].
std::pair<torch::Tensor, torch::Tensor> pack_rows_sym(const torch::Tensor& x, int bits) {
  const int64_t cr = (int64_t{1} << (bits - 1)) - 1;
  const torch::Tensor s = (x.abs().amax(1) / static_cast<double>(cr)).to(torch::kFloat16);
  return {codes(x, s.unsqueeze(1), -cr, cr), s};
}

torch::Tensor f32(const torch::Tensor& t) { return t.to(torch::kFloat32); }

}  // namespace

Schema lqer_schema() {
  return Schema()
      .integer("top_k", 0, 0, 1e6, "GPTQ tensors with the largest absolute ||W - Q s||_F that get factors (0 = off)")
      .integer("rank", 4, 1, 1024, "rank r of the error's SVD factors")
      .integer("group", 64, 1, 1 << 20, "group size of B's asymmetric 4-bit scales")
      .integer("factor_bits", 4, 2, 8, "bits of the symmetric fallback's per-row factors")
      .boolean("asymmetric", true, "A 2-bit / B 4-bit asymmetric when B divides into groups (else symmetric)");
}

LqerOptions lqer_options(const Config& c) {
  return LqerOptions{c.i("top_k"), c.i("rank"), c.i("group"), static_cast<int>(c.i("factor_bits")), c.b("asymmetric")};
}

std::pair<torch::Tensor, torch::Tensor> pack_a_asym(const torch::Tensor& a) {
  const torch::Tensor s = (a.abs().max() / 1.5).to(torch::kFloat16).reshape({});
  return {codes(a, s, -2, 1), s};
}

std::pair<torch::Tensor, torch::Tensor> pack_b_asym(const torch::Tensor& b, int64_t group) {
  const torch::Tensor g = b.reshape({-1, group});
  const torch::Tensor s = (g.abs().amax(1) / 7.5).to(torch::kFloat16);
  return {codes(g, s.unsqueeze(1), -8, 7).reshape(b.sizes()), s};
}

std::pair<NamedTensors, Json> lqer_encode(const std::string& p, const torch::Tensor& e, const LqerOptions& o) {
  const auto [u, sv, vh] = at::linalg_svd(f32(e), /*full_matrices=*/false);
  const int64_t r = std::min<int64_t>(o.rank, sv.size(0));
  using torch::indexing::Slice;
  const torch::Tensor a = (u.index({Slice(), Slice(0, r)}) * sv.index({Slice(0, r)})).contiguous();
  const torch::Tensor b = vh.index({Slice(0, r), Slice()}).contiguous();
  Json m = {{"rank", r}};
  if (o.asymmetric && b.numel() % o.group == 0) {
    auto [qa, sa] = pack_a_asym(a);
    auto [qb, sb] = pack_b_asym(b, o.group);
    m["scheme"] = "asym";
    m["group"] = o.group;
    return {{{p + ".lqA_a", qa}, {p + ".lqAs_a", sa}, {p + ".lqB_a", qb}, {p + ".lqBs_a", sb}}, m};
  }
  auto [qa, sa] = pack_rows_sym(a, o.factor_bits);
  auto [qb, sb] = pack_rows_sym(b, o.factor_bits);
  m["scheme"] = "sym";
  m["bits"] = o.factor_bits;
  return {{{p + ".lqA", qa}, {p + ".lqAs", sa}, {p + ".lqB", qb}, {p + ".lqBs", sb}}, m};
}

std::vector<std::string> lqer_tensor_names(const std::string& p, const Json& m) {
  const bool asym = m.at("scheme").get<std::string>() == "asym";
  const std::string sfx = asym ? "_a" : "";
  return {p + ".lqA" + sfx, p + ".lqAs" + sfx, p + ".lqB" + sfx, p + ".lqBs" + sfx};
}

torch::ScalarType lqer_tensor_dtype(const std::string& n) {
  return n.find(".lqAs") != std::string::npos || n.find(".lqBs") != std::string::npos ? torch::kFloat16 : torch::kInt8;
}

torch::Tensor lqer_decode(const std::string& p, const Json& m, const NamedTensors& f) {
  if (f.size() != 4) throw std::runtime_error("lqer: '" + p + "' needs 4 factor tensors, has " + std::to_string(f.size()));
  const torch::Tensor &qa = f[0].second, &sa = f[1].second, &qb = f[2].second, &sb = f[3].second;
  const int64_t r = m.at("rank").get<int64_t>();
  if (qa.dim() != 2 || qb.dim() != 2 || qa.size(1) != r || qb.size(0) != r)
    throw std::runtime_error("lqer: '" + p + "' factors " + c10::str(qa.sizes()) + " x " + c10::str(qb.sizes()) +
                             " do not have rank " + std::to_string(r));
  if (m.at("scheme").get<std::string>() == "asym") {
    const int64_t g = m.at("group").get<int64_t>();
    if (sa.numel() != 1 || qb.numel() % g != 0 || sb.numel() != qb.numel() / g)
      throw std::runtime_error("lqer: '" + p + "' asymmetric scales do not match its factors");
    const torch::Tensor b = (f32(qb).reshape({-1, g}) * f32(sb).unsqueeze(1)).reshape(qb.sizes());
    return torch::mm(f32(qa) * f32(sa).reshape({}), b);
  }
  if (sa.numel() != qa.size(0) || sb.numel() != qb.size(0))
    throw std::runtime_error("lqer: '" + p + "' symmetric row scales do not match its factors");
  return torch::mm(f32(qa) * f32(sa).unsqueeze(1), f32(qb) * f32(sb).unsqueeze(1));
}

}  // namespace pgolf::quant
