// Embedding-side components: BigramHash buckets (hand-computed with the int32 formula of spec §2.7),
// the three SmearGate forms (values at init, formulas, the BOS mask, placement) and value embeddings.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/component_testing.h"

namespace pgolf {
namespace {

using testing::component;
using testing::layer_context;
using testing::params_of;
using testing::perturb;

TEST(BigramHash, BucketsFollowTheInt32Formula) {
  // idx_0 = B-1; idx_t = ((36313 tok_t) XOR (27191 tok_{t-1})) mod (B-1), B = 2048. By hand for (5, 1):
  // 36313 XOR 135955 = 171722, 171722 mod 2047 = 1821. The second row needs int32 wrap-around
  // (36313 * 65001 > 2^31) and a non-negative remainder; its values come from a python int32 emulation.
  auto ids = torch::tensor({5, 1, 1023, 0, 7, 1}, torch::kLong).view({1, 6});
  auto idx = bigram_hash_indices(ids, 2048);
  EXPECT_TRUE(torch::equal(idx, torch::tensor({2047, 1821, 752, 1757, 363, 677}, torch::kLong).view({1, 6}))) << idx;
  auto wide = torch::tensor({65000, 65001, 3, 65535}, torch::kLong).view({1, 4});
  EXPECT_TRUE(torch::equal(bigram_hash_indices(wide, 2048), torch::tensor({2047, 2034, 831, 1506}, torch::kLong).view({1, 4})));
  // Every row starts at the marker bucket.
  auto two = torch::tensor({{5, 1}, {9, 9}}, torch::kLong);
  EXPECT_EQ(bigram_hash_indices(two, 2048)[1][0].item<int64_t>(), 2047);
}

TEST(BigramHash, IsZeroAtInitThenScaledProjectedBucketRows) {
  torch::manual_seed(0);
  auto ctx = layer_context(64, 4, 2, 0, /*layers=*/11);
  auto b = BigramRegistry::get().build(component("bigram", Json{{"name", "bigram_hash"}, {"buckets", 64}, {"dim", 16}}), ctx);
  auto p = params_of(*b);
  EXPECT_EQ(p.at("embed.weight").abs().max().item<double>(), 0.0);
  EXPECT_NEAR(p.at("scale").item<double>(), 0.05, 1e-7);
  // proj: orthogonal columns times 1/sqrt(2L) = 1/sqrt(22).
  auto P = p.at("proj.weight");
  EXPECT_TRUE(torch::allclose(torch::matmul(P.t(), P), torch::eye(16) / 22.0, 1e-5, 1e-6));
  auto ids = torch::tensor({{3, 4, 5}}, torch::kLong);
  EXPECT_EQ(b->forward(ids, torch::kFloat32).abs().max().item<double>(), 0.0);
  perturb(*b, 1.0);
  auto out = b->forward(ids, torch::kFloat32);
  auto idx = bigram_hash_indices(ids, 64);
  auto expected = torch::matmul(p.at("embed.weight").index_select(0, idx.view(-1)), P.t()) * p.at("scale");
  EXPECT_TRUE(torch::allclose(out.view({3, 64}), expected, 1e-5, 1e-6));
}

std::shared_ptr<Smear> smear(const Json& section, int64_t dim = 16) {
  return SmearRegistry::get().build(component("smear", section), layer_context(dim, 4, 2));
}

TEST(SmearGate, PerChannelIsAFiftyFiftyAverageAtInitWithZeroBeforeTheFirstPosition) {
  auto s = smear(Json{{"name", "per_channel"}});
  EXPECT_FALSE(s->before_norm());
  auto x = torch::randn({2, 4, 16});
  auto ids = torch::zeros({2, 4}, torch::kLong);
  auto out = s->forward(x, ids);
  EXPECT_TRUE(torch::allclose(out.select(1, 0), 0.5 * x.select(1, 0)));
  EXPECT_TRUE(torch::allclose(out.narrow(1, 1, 3), 0.5 * (x.narrow(1, 1, 3) + x.narrow(1, 0, 3))));
  perturb(*s, 1.0);
  auto g = torch::sigmoid(params_of(*s).at("gate"));
  out = s->forward(x, ids);
  EXPECT_TRUE(torch::allclose(out[1][2], (1 - g) * x[1][2] + g * x[1][1], 1e-5, 1e-6));
}

TEST(SmearGate, ScalarFormIsTheIdentityAtInitAndLeaksAcrossBos) {
  torch::manual_seed(1);
  auto s = smear(Json{{"name", "scalar"}});
  EXPECT_FALSE(s->before_norm());  // #1693 smears after the embedding norm
  EXPECT_EQ(params_of(*s).at("smear_w").numel(), 12);
  auto x = torch::randn({1, 5, 16});
  auto ids = torch::tensor({{1, 7, 1, 9, 4}}, torch::kLong);
  EXPECT_TRUE(torch::equal(s->forward(x, ids), x));
  perturb(*s, 1.0);
  auto p = params_of(*s);
  auto out = s->forward(x, ids);
  EXPECT_TRUE(torch::equal(out[0][0], x[0][0]));
  for (int64_t t : {1, 2, 4}) {  // t = 2 holds BOS and still takes from t = 1: no mask in this form
    const double z = (p.at("smear_w") * x[0][t].narrow(0, 0, 12)).sum().item<double>();
    auto expected = x[0][t] + p.at("smear_lambda").item<double>() / (1.0 + std::exp(-z)) * x[0][t - 1];
    EXPECT_TRUE(torch::allclose(out[0][t], expected, 1e-5, 1e-6)) << t;
  }
}

TEST(SmearGate, BosFixedFormIsTheIdentityAtInitAndZeroesTheSmearExactlyAtBos) {
  torch::manual_seed(2);
  auto s = smear(Json{{"name", "bos_fixed"}});
  EXPECT_TRUE(s->before_norm());  // #1855 smears the raw embedding
  auto p = params_of(*s);
  ASSERT_EQ(p.at("smear_gate.weight").sizes(), (std::vector<int64_t>{1, 12}));
  ASSERT_EQ(p.at("smear_lambda").numel(), 1);
  auto x = torch::randn({2, 6, 16});
  auto ids = torch::tensor({{1, 5, 1, 1, 6, 2}, {3, 1, 4, 1, 5, 9}}, torch::kLong);
  EXPECT_TRUE(torch::equal(s->forward(x, ids), x));
  perturb(*s, 1.0);
  auto out = s->forward(x, ids);
  auto delta = (out - x).abs().amax(-1);  // (2, 6): how much each position changed
  auto acc = delta.accessor<float, 2>();
  auto id = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6; ++t) {
      if (t == 0 || id[b][t] == 1) EXPECT_EQ(acc[b][t], 0.0f) << b << "," << t;
      else EXPECT_GT(acc[b][t], 0.0f) << b << "," << t;
    }
  const double z = (p.at("smear_gate.weight")[0] * x[1][2].narrow(0, 0, 12)).sum().item<double>();
  auto expected = x[1][2] + p.at("smear_lambda").item<double>() / (1.0 + std::exp(-z)) * x[1][1];
  EXPECT_TRUE(torch::allclose(out[1][2], expected, 1e-5, 1e-6));
}

TEST(ValueEmbedding, AddsScaledProjectedRowsInTheChosenLayersOnly) {
  torch::manual_seed(3);
  auto ctx = layer_context(32, 4, 2, 0, /*layers=*/4, /*vocab=*/50);  // kv_dim = 16
  auto ve = ValueEmbeddingRegistry::get().build(
      component("value_embedding", Json{{"name", "shared"}, {"dim", 8}, {"layers", {1, 3}}}), ctx);
  auto p = params_of(*ve);
  EXPECT_NEAR(p.at("embed.weight").std().item<double>(), 0.01, 0.002);
  EXPECT_NEAR(p.at("scale").item<double>(), 0.1, 1e-7);
  ASSERT_EQ(p.count("ve_layer_scales.0") + p.count("ve_layer_scales.1"), 2u);
  auto ids = torch::tensor({{4, 9, 4}}, torch::kLong);
  auto out = ve->per_layer(ids, torch::kFloat32);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_FALSE(out[0].defined());
  EXPECT_FALSE(out[2].defined());
  // At init lambda = 1: 0.1 * P E[tok].
  auto expected = 0.1 * torch::matmul(p.at("embed.weight").index_select(0, ids.view(-1)), p.at("proj.weight").t());
  EXPECT_TRUE(torch::allclose(out[1].view({3, 16}), expected, 1e-6, 1e-7));
  {
    torch::NoGradGuard g;
    p.at("ve_layer_scales.1").fill_(-2.0);
  }
  out = ve->per_layer(ids, torch::kFloat32);
  EXPECT_TRUE(torch::allclose(out[3].view({3, 16}), -2.0 * expected, 1e-6, 1e-7));
}

TEST(ValueEmbedding, ReachesVInsideTheAttention) {
  // With W_v = 0 the attention's v is exactly the addend, so the output is linear in it.
  torch::manual_seed(4);
  auto ctx = layer_context(32, 4, 2);
  auto attn = AttentionRegistry::get().build(component("attention", Json{{"name", "gqa"}, {"rope_dims", 4}}), ctx);
  perturb(*attn, 0.1);
  auto x = torch::randn({1, 4, 32});
  auto extra = torch::randn({1, 4, 16});
  EXPECT_FALSE(torch::allclose(attn->forward(AttentionInput{x, x, extra}, Segments{}), attn->forward(x)));
  {
    torch::NoGradGuard g;
    params_of(*attn).at("c_v.weight").zero_();
  }
  auto a = attn->forward(AttentionInput{x, x, extra}, Segments{});
  auto b = attn->forward(AttentionInput{x, x, 2.0 * extra}, Segments{});
  EXPECT_TRUE(torch::allclose(b, 2.0 * a, 1e-5, 1e-6));
  EXPECT_GT(a.abs().max().item<double>(), 0.0);
  EXPECT_EQ(attn->forward(x).abs().max().item<double>(), 0.0);
}

}  // namespace
}  // namespace pgolf
