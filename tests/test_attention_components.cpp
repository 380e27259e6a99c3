// Attention components against independent computations: XSA's projection, partial RoPE with the NTK
// base rescale, the whole GQA attention (QK RMSNorm, RoPE, q-gain, GQA, XSA) against a dense reference
// written here, the three output gates (values at init and their formulas) and the LeakyReLU² MLP.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "models/layers.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

using kernels::compose::exclusive_self_attention;
using testing::component;
using testing::layer_context;
using testing::params_of;
using testing::perturb;

double at(const torch::Tensor& t, std::initializer_list<int64_t> idx) {
  torch::Tensor x = t;
  for (int64_t i : idx) x = x[i];
  return x.item<double>();
}

TEST(Xsa, RemovesTheComponentAlongTheOwnUnitValue) {
  torch::manual_seed(0);
  const int64_t B = 2, H = 4, Hkv = 2, T = 5, D = 8;
  auto y = torch::randn({B, T, H, D}, torch::kFloat64), v = torch::randn({B, T, Hkv, D}, torch::kFloat64);
  auto out = exclusive_self_attention(y, v);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        auto vt = v[b][t][h / 2];  // query heads 0,1 read kv head 0; 2,3 read kv head 1
        auto vhat = vt / vt.norm();
        auto yt = y[b][t][h];
        auto expected = yt - (yt * vhat).sum() * vhat;
        EXPECT_TRUE(torch::allclose(out[b][t][h], expected, 1e-12, 1e-12)) << b << h << t;
        EXPECT_NEAR((out[b][t][h] * vhat).sum().item<double>(), 0.0, 1e-12);
      }
  // The same from a strided (B, H, T, d_h)-ordered tensor, as SDPA returns it.
  auto y_strided = y.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(y_strided.is_contiguous());
  EXPECT_TRUE(torch::allclose(exclusive_self_attention(y_strided, v), out, 1e-12, 1e-12));
  // A head output along its value vanishes; one orthogonal to it is unchanged.
  auto along = v.repeat_interleave(2, 2) * 3.0;
  EXPECT_LT(exclusive_self_attention(along, v).abs().max().item<double>(), 1e-12);
  auto ortho = out.clone();
  EXPECT_TRUE(torch::allclose(exclusive_self_attention(ortho, v), ortho, 1e-12, 1e-12));
}

TEST(Rotary, NtkRescaleOnlyForRowsLongerThanTheTrainingLength) {
  Rotary r(64, 16, 10000.0, 1024);
  EXPECT_DOUBLE_EQ(r.base_for(1024), 10000.0);
  EXPECT_DOUBLE_EQ(r.base_for(512), 10000.0);
  EXPECT_NEAR(r.base_for(2048), 22081.790273476247, 1e-6);  // 1e4 * 2^(16/14), #461's training base
  EXPECT_DOUBLE_EQ(Rotary(64, 16, 10000.0, 0).base_for(1 << 20), 10000.0);  // off

  torch::manual_seed(1);
  auto x = torch::randn({1, 2048, 2, 64});  // (B, T, H, d_h)
  auto y = r.apply(x);
  // Channels >= rope_dims pass through untouched.
  EXPECT_TRUE(torch::equal(y.narrow(-1, 16, 48), x.narrow(-1, 16, 48)));
  // Pair (c, c + 8) at position p turns by p * base'^(-2c/16).
  const int64_t p = 1500, c = 3;
  const double theta = p * std::pow(22081.790273476247, -2.0 * c / 16.0);
  const double x1 = at(x, {0, p, 1, c}), x2 = at(x, {0, p, 1, c + 8});
  EXPECT_NEAR(at(y, {0, p, 1, c}), x1 * std::cos(theta) + x2 * std::sin(theta), 2e-3);
  EXPECT_NEAR(at(y, {0, p, 1, c + 8}), -x1 * std::sin(theta) + x2 * std::cos(theta), 2e-3);
}

// Dense reference attention written from the spec (§2.3) with plain tensor ops, fp64.
torch::Tensor reference_attention(const std::map<std::string, torch::Tensor>& p, const torch::Tensor& x, int64_t H,
                                  int64_t Hkv, int64_t rope_dims, double base, bool xsa) {
  const int64_t B = x.size(0), T = x.size(1), Dm = x.size(2), D = Dm / H;
  auto lin = [&](const std::string& n, const torch::Tensor& in) { return torch::matmul(in, p.at(n).t().to(torch::kFloat64)); };
  auto heads = [&](const torch::Tensor& t, int64_t h) { return t.view({B, T, h, D}).permute({0, 2, 1, 3}); };
  auto rms = [](const torch::Tensor& t) { return t / torch::sqrt(t.square().mean(-1, true) + 1.1920928955078125e-07); };
  auto q = rms(heads(lin("c_q.weight", x), H)), k = rms(heads(lin("c_k.weight", x), Hkv));
  auto v = heads(lin("c_v.weight", x), Hkv);
  auto rope = [&](const torch::Tensor& t) {
    auto out = t.clone();
    const int64_t half = rope_dims / 2;
    for (int64_t pos = 0; pos < T; ++pos)
      for (int64_t c = 0; c < half; ++c) {
        const double th = pos * std::pow(base, -2.0 * c / rope_dims);
        auto a = t.select(2, pos).select(-1, c), b = t.select(2, pos).select(-1, c + half);
        out.select(2, pos).select(-1, c).copy_(a * std::cos(th) + b * std::sin(th));
        out.select(2, pos).select(-1, c + half).copy_(-a * std::sin(th) + b * std::cos(th));
      }
    return out;
  };
  q = rope(q) * p.at("q_gain").to(torch::kFloat64).view({1, H, 1, 1});
  k = rope(k).repeat_interleave(H / Hkv, 1);
  auto vv = v.repeat_interleave(H / Hkv, 1);
  auto s = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  s = s.masked_fill(torch::ones({T, T}, torch::kBool).triu(1), -INFINITY);
  auto y = torch::matmul(torch::softmax(s, -1), vv);  // (B, H, T, D)
  if (xsa) {
    auto vhat = vv / vv.norm(2, -1, true);
    y = y - (y * vhat).sum(-1, true) * vhat;
  }
  return lin("proj.weight", y.permute({0, 2, 1, 3}).reshape({B, T, Dm}));
}

TEST(GqaAttention, MatchesADenseReferenceWithPartialRopeQkNormGainAndXsa) {
  torch::manual_seed(2);
  for (bool xsa : {false, true}) {
    auto ctx = layer_context(32, 4, 2, /*layer=*/1);
    auto attn = AttentionRegistry::get().build(
        component("attention", Json{{"name", "gqa"}, {"rope_dims", 4}, {"qk_gain_init", 5.0},
                                    {"xsa_layers", xsa ? Json{1, 3} : Json::array()}}),
        ctx);
    perturb(*attn, 0.1);  // proj starts at zero
    auto x = torch::randn({2, 6, 32});
    auto got = attn->forward(x).to(torch::kFloat64);
    auto expected = reference_attention(params_of(*attn), x.to(torch::kFloat64), 4, 2, 4, 10000.0, xsa);
    EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << "xsa " << xsa << (got - expected).abs().max();
  }
}

TEST(GqaAttention, XsaOnlyOnTheListedLayers) {
  torch::manual_seed(3);
  auto section = Json{{"name", "gqa"}, {"rope_dims", 4}, {"xsa_layers", Json::array({2})}};
  auto ctx = layer_context(32, 4, 2, /*layer=*/2);
  auto with = AttentionRegistry::get().build(component("attention", section), ctx);
  ctx.layer = 1;
  auto without = AttentionRegistry::get().build(component("attention", section), ctx);
  perturb(*with, 0.1);
  {
    torch::NoGradGuard g;
    auto pw = params_of(*with);
    for (auto& [n, t] : params_of(*without)) t.copy_(pw.at(n));
  }
  auto x = torch::randn({1, 5, 32});
  auto p = params_of(*with);
  auto x64 = x.to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(with->forward(x).to(torch::kFloat64), reference_attention(p, x64, 4, 2, 4, 1e4, true), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(without->forward(x).to(torch::kFloat64), reference_attention(p, x64, 4, 2, 4, 1e4, false), 1e-4, 1e-5));
}

std::shared_ptr<AttentionGate> gate(const Json& section, int64_t dim = 32, int64_t heads = 4) {
  return AttentionGateRegistry::get().build(component("attn_gate", section), layer_context(dim, heads, 2));
}

TEST(AttentionGates, SparseGateIsOneHalfAtInitAndSigmoidOfScaledWindowAfter) {
  torch::manual_seed(4);
  auto g = gate(Json{{"name", "sparse_attn_gate"}, {"window", 12}, {"scale", 0.5}});
  ASSERT_EQ(params_of(*g).at("attn_gate_w").sizes(), (std::vector<int64_t>{4, 12}));
  auto y = torch::randn({2, 3, 4, 8});  // (B, T, H, d_h)
  auto n = torch::randn({2, 3, 32}), x_in = torch::randn({2, 3, 32});
  EXPECT_TRUE(torch::equal(g->forward(y, AttentionInput{n, x_in, {}}), 0.5 * y));
  perturb(*g, 1.0);
  auto w = params_of(*g).at("attn_gate_w");
  auto out = g->forward(y, AttentionInput{n, x_in, {}});
  for (int64_t h : {0, 3}) {  // g_{t,h} = sigmoid(0.5 * W_h . n_t[:12]) from the attention input n
    const double z = 0.5 * (w[h] * n[1][2].narrow(0, 0, 12)).sum().item<double>();
    const double gv = 1.0 / (1.0 + std::exp(-z));
    EXPECT_TRUE(torch::allclose(out[1][2][h], gv * y[1][2][h], 1e-5, 1e-6)) << h;
  }
}

TEST(AttentionGates, AttnOutGateIsTheIdentityAtInitAndReadsTheResidualBeforeTheNorm) {
  torch::manual_seed(5);
  auto g = gate(Json{{"name", "attn_out_gate"}});
  auto y = torch::randn({1, 3, 4, 8});
  auto n = torch::randn({1, 3, 32}), x_in = torch::randn({1, 3, 32});
  EXPECT_TRUE(torch::equal(g->forward(y, AttentionInput{n, x_in, {}}), y));
  perturb(*g, 1.0);
  auto w = params_of(*g).at("attn_out_gate_w");
  auto out = g->forward(y, AttentionInput{n, x_in, {}});
  const double z = (w[2] * x_in[0][1].narrow(0, 0, 12)).sum().item<double>();
  EXPECT_TRUE(torch::allclose(out[0][1][2], 2.0 / (1.0 + std::exp(-z)) * y[0][1][2], 1e-5, 1e-6));
}

TEST(AttentionGates, DenseGateReadsTheWholeInputAndStartsNearOneHalf) {
  torch::manual_seed(6);
  auto g = gate(Json{{"name", "dense_attn_gate"}}, 512, 8);
  auto w = params_of(*g).at("attn_gate_w");
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{8, 512}));
  EXPECT_NEAR(w.std().item<double>(), 0.01, 0.001);
  auto y = torch::randn({1, 2, 8, 4});
  auto n = torch::randn({1, 2, 512});
  auto out = g->forward(y, AttentionInput{n, n, {}});
  const double z = (w[5] * n[0][1]).sum().item<double>();
  EXPECT_TRUE(torch::allclose(out[0][1][5], y[0][1][5] / (1.0 + std::exp(-z)), 1e-5, 1e-6));
  // z = W n has std 0.01 * sqrt(512) ~ 0.23 for unit-RMS n: gates spread about 0.5 by ~0.06.
  EXPECT_LT(((out / y) - 0.5).abs().mean().item<double>(), 0.1);
}

// The form the attention's joint q/k/v GEMM uses (CUDA): gate = from_logits(n · input_weight(D)ᵀ) for the
// gates that read n, and none for the gate that reads the residual.
TEST(AttentionGates, InputLinearFormGivesTheGateFromTheAttentionInput) {
  torch::manual_seed(8);
  auto n = torch::randn({2, 3, 32}), x_in = torch::randn({2, 3, 32});
  for (const auto& section : {Json{{"name", "sparse_attn_gate"}, {"window", 12}, {"scale", 0.5}},
                              Json{{"name", "dense_attn_gate"}}}) {
    auto g = gate(section);
    perturb(*g, 1.0);
    const auto w = g->input_weight(32);
    ASSERT_EQ(w.sizes(), (std::vector<int64_t>{4, 32})) << section.dump();
    EXPECT_TRUE(torch::allclose(g->from_logits(torch::matmul(n, w.t())), g->values(AttentionInput{n, x_in, {}}), 1e-5,
                                1e-6))
        << section.dump();
  }
  auto sparse = gate(Json{{"name", "sparse_attn_gate"}, {"window", 12}});
  perturb(*sparse, 1.0);
  EXPECT_EQ(sparse->input_weight(32).narrow(1, 12, 20).abs().max().item<double>(), 0.0);  // columns it does not read
  EXPECT_FALSE(gate(Json{{"name", "attn_out_gate"}})->input_weight(32).defined());
}

TEST(AttentionGates, SparseGateHalvesTheWholeAttentionAtInit) {
  torch::manual_seed(7);
  auto ctx = layer_context(32, 4, 2);
  auto plain = AttentionRegistry::get().build(component("attention", Json{{"name", "gqa"}, {"rope_dims", 4}}), ctx);
  auto gated = AttentionRegistry::get().build(
      component("attention", Json{{"name", "gqa"}, {"rope_dims", 4}, {"gate", {{"name", "sparse_attn_gate"}}}}), ctx);
  perturb(*plain, 0.1);
  {
    torch::NoGradGuard g;
    auto pp = params_of(*plain);
    for (auto& [n, t] : params_of(*gated))
      if (pp.count(n)) t.copy_(pp.at(n));
  }
  EXPECT_EQ(params_of(*gated).count("gate.attn_gate_w"), 1u);
  auto x = torch::randn({2, 5, 32});
  EXPECT_TRUE(torch::allclose(gated->forward(x), 0.5 * plain->forward(x), 1e-5, 1e-6));
}

TEST(LeakyRelu2Mlp, ForwardAndBackwardFollowTheSquaredLeakyRelu) {
  torch::manual_seed(8);
  const double s = 0.3;
  auto mlp = MlpRegistry::get().build(component("mlp", Json{{"name", "leaky_relu2"}, {"mult", 2.0}, {"slope", s}}),
                                      layer_context(16, 4, 2));
  auto p = params_of(*mlp);
  ASSERT_EQ(p.at("fc.weight").sizes(), (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(p.at("proj.weight").abs().max().item<double>(), 0.0);  // zero-initialised output
  perturb(*mlp, 0.2);
  auto up = p.at("fc.weight").detach(), down = p.at("proj.weight").detach();
  auto x = torch::randn({3, 16}, torch::requires_grad());
  auto out = mlp->forward(x);
  auto z = torch::matmul(x.detach(), up.t());
  auto act = torch::where(z > 0, z, s * z);
  EXPECT_TRUE(torch::allclose(out, torch::matmul(act.square(), down.t()), 1e-5, 1e-6));
  auto gout = torch::randn_like(out);
  out.backward(gout);
  // d act(z)^2 / dz = 2z for z > 0 and 2 s^2 z for z <= 0 (0.18 z at s = 0.3).
  auto gate = torch::where(z > 0, 2 * z, 2 * s * s * z);
  auto dx = torch::matmul(gate * torch::matmul(gout, down), up);
  EXPECT_TRUE(torch::allclose(x.grad(), dx, 1e-4, 1e-5));
}

}  // namespace
}  // namespace pgolf
