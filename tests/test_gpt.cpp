// The baseline GPT: parameter count, initialisation, an identity it satisfies at init, causality, RoPE.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/model.h"
#include "framework/recipe.h"
#include "models/layers.h"

namespace pgolf {
namespace {

Json baseline_model(int64_t vocab = 1024, int64_t layers = 9, int64_t dim = 512) {
  return Json{{"name", "gpt"}, {"vocab_size", vocab}, {"layers", layers}, {"dim", dim}, {"heads", 8}, {"kv_heads", 4}};
}

std::shared_ptr<LanguageModel> build(const Json& model) {
  Recipe r = resolve_recipe(Json{{"model", model}}, "test", {});
  return ModelRegistry::get().build(r.section("model"));
}

std::map<std::string, torch::Tensor> params_of(LanguageModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  return out;
}

TEST(Gpt, BaselineParameterCount) {
  // 1024*512 embedding + 9 * (512*512*2 + 512*256*2 + 2*512*1024) matrices
  // + 9 * (512 attn_scale + 512 mlp_scale + 1024 resid_mix + 8 q_gain) + 4*512 skip weights.
  const int64_t expected = 1024 * 512 + 9 * (2 * 512 * 512 + 2 * 512 * 256 + 2 * 512 * 1024) + 9 * (512 + 512 + 1024 + 8) + 4 * 512;
  ASSERT_EQ(expected, 17059912);
  EXPECT_EQ(count_parameters(*build(baseline_model())), 17059912);
}

TEST(Gpt, InitialisationFollowsTheBaseline) {
  torch::manual_seed(0);
  auto m = build(baseline_model());
  auto p = params_of(*m);
  EXPECT_NEAR(p["tok_emb.weight"].std().item<double>(), 0.005, 0.0002);
  for (const char* zero : {"blocks.0.attn.proj.weight", "blocks.8.mlp.proj.weight"})
    EXPECT_EQ(p[zero].abs().max().item<double>(), 0.0) << zero;
  // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(512.0);
  EXPECT_LE(p["blocks.0.attn.c_q.weight"].abs().max().item<double>(), bound);
  EXPECT_GT(p["blocks.0.attn.c_q.weight"].abs().max().item<double>(), 0.99 * bound);
  EXPECT_TRUE(torch::equal(p["blocks.3.resid_mix"][0], torch::ones({512})));
  EXPECT_TRUE(torch::equal(p["blocks.3.resid_mix"][1], torch::zeros({512})));
  EXPECT_TRUE(torch::allclose(p["blocks.3.attn.q_gain"], torch::full({8}, 1.5)));
  EXPECT_TRUE(torch::equal(p["skip.skip_weights"], torch::ones({4, 512})));
}

TEST(Gpt, AtInitLogitsAreSoftcappedSelfSimilarity) {
  // Zero output projections make every block the identity; the additive skips then only rescale x,
  // which the final RMSNorm removes: logits = C*tanh(rms(E[x]) . E^T / C).
  torch::manual_seed(1);
  auto m = build(baseline_model(64, 4, 64));
  auto ids = torch::randint(0, 64, {2, 7}, torch::kLong);
  auto E = params_of(*m)["tok_emb.weight"].detach();
  auto h = E.index_select(0, ids.view(-1));
  h = h / torch::sqrt(h.square().mean(-1, true) + std::numeric_limits<float>::epsilon());
  auto z = torch::matmul(h, E.t());
  auto logits = 30.0 * torch::tanh(z / 30.0);
  auto expected = torch::log_softmax(logits, -1).gather(1, ids.view({-1, 1}).roll(-1, 0)).neg().view({2, 7});
  auto y = ids.view(-1).roll(-1, 0).view({2, 7});
  auto nll = m->token_nll(ids, y).detach();
  EXPECT_TRUE(torch::allclose(nll, expected, 1e-4, 1e-5)) << nll << expected;
}

TEST(Gpt, IsCausalAndGradientsAreFinite) {
  torch::manual_seed(2);
  auto m = build(baseline_model(50, 2, 32));
  {  // give the zero-initialised projections weights so attention and MLP matter
    torch::NoGradGuard g;
    for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  auto x = torch::randint(0, 50, {1, 12}, torch::kLong);
  auto y = torch::randint(0, 50, {1, 12}, torch::kLong);
  auto a = m->token_nll(x, y).detach();
  auto x2 = x.clone();
  x2[0][8] = (x[0][8].item<int64_t>() + 1) % 50;
  auto b = m->token_nll(x2, y).detach();
  EXPECT_TRUE(torch::allclose(a.narrow(1, 0, 8), b.narrow(1, 0, 8), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(a.narrow(1, 8, 4), b.narrow(1, 8, 4), 1e-5, 1e-6));
  auto loss = m->loss(x, y);
  EXPECT_NEAR(loss.item<double>(), a.mean().item<double>(), 1e-5);
  loss.backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST(Rotary, RotatesHalfSplitPairsAndLeavesTheRestAlone) {
  Rotary full(8, 0, 10000.0), partial(8, 4, 10000.0);
  auto x = torch::randn({1, 5, 2, 8});  // (B, T, H, d_h)
  auto yf = full.apply(x), yp = partial.apply(x);
  // Position 0 is the identity.
  EXPECT_TRUE(torch::allclose(yf.select(1, 0), x.select(1, 0)));
  // Channels >= rope_dims pass through unchanged.
  EXPECT_TRUE(torch::equal(yp.narrow(-1, 4, 4), x.narrow(-1, 4, 4)));
  // Pair (c, c + 2) at position p rotates by p * base^(-2c/4): check c = 1, p = 3 by hand.
  const double theta = 3.0 * std::pow(10000.0, -2.0 * 1 / 4.0);
  const double x1 = x[0][3][1][1].item<double>(), x2 = x[0][3][1][3].item<double>();
  EXPECT_NEAR(yp[0][3][1][1].item<double>(), x1 * std::cos(theta) + x2 * std::sin(theta), 1e-5);
  EXPECT_NEAR(yp[0][3][1][3].item<double>(), -x1 * std::sin(theta) + x2 * std::cos(theta), 1e-5);
  // Rotations keep each pair's norm.
  EXPECT_TRUE(torch::allclose(yf.square().sum(-1), x.square().sum(-1), 1e-4));
}

}  // namespace
}  // namespace pgolf
