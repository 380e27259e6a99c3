// LQER (spec posttrain §5, §11.2, §11.3, §12.3): the packing vectors, factors that reduce ‖E‖_F, selection of
// the top-k tensors by absolute ‖E‖_F over all GPTQ tensors, the symmetric fallback, and W' = Q·s + A·B.
#include <gtest/gtest.h>

#include "framework/artifact.h"
#include "quant/lqer.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

const torch::Tensor& find(const NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

TEST(Lqer, PacksAAsTheSpecVector) {
  // §11.2: s_A = fp16(0.6/1.5) = 0.39990234375; A/s_A = [0.750, -1.500, 1.125, 1.500] -> [1, -2, 1, 1].
  const auto [q, s] = quant::pack_a_asym(torch::tensor({{0.3f, -0.6f}, {0.45f, 0.6f}}));
  EXPECT_EQ(s.scalar_type(), torch::kFloat16);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 0.39990234375f);
  EXPECT_TRUE(torch::equal(q, torch::tensor({{1, -2}, {1, 1}}, torch::kInt8)));
}

TEST(Lqer, PacksBGroupsAsTheSpecVector) {
  // §11.3: a group with max |.| = 0.75: s_B = fp16(0.1) = 0.0999755859375; 0.75 -> 7.50183 -> 8 -> 7; -0.75 -> -8.
  torch::Tensor b = torch::zeros({2, 64});
  b[0][0] = 0.75f;
  b[0][1] = -0.75f;
  b[0][2] = 0.3f;  // 3.0007 -> 3
  b[1][5] = 0.0f;  // an all-zero group: scale 0, codes 0
  const auto [q, s] = quant::pack_b_asym(b, 64);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(s[0].item<float>(), 0.0999755859375f);
  EXPECT_EQ(s[1].item<float>(), 0.0f);
  EXPECT_EQ(q[0][0].item<int>(), 7);
  EXPECT_EQ(q[0][1].item<int>(), -8);
  EXPECT_EQ(q[0][2].item<int>(), 3);
  EXPECT_EQ(q[1].abs().sum().item<int>(), 0);
}

TEST(Lqer, FactorsReduceTheErrorNorm) {
  torch::manual_seed(7);
  // an error with a strong low-rank part (as the embedding's outlier rows give) plus noise
  const torch::Tensor e = torch::mm(torch::randn({96, 3}), torch::randn({3, 128})) * 0.01 + torch::randn({96, 128}) * 0.001;
  for (bool asym : {true, false}) {
    quant::LqerOptions o;
    o.top_k = 1;
    o.asymmetric = asym;
    const auto [f, m] = quant::lqer_encode("w", e, o);
    EXPECT_EQ(m["scheme"], asym ? "asym" : "sym");
    EXPECT_EQ(f[0].first, asym ? "w.lqA_a" : "w.lqA");
    const torch::Tensor ab = quant::lqer_decode("w", m, f);
    // 2-bit A leaves about half of the planted part; 4-bit per-row factors most of it
    EXPECT_LT((e - ab).norm().item<double>(), (asym ? 0.65 : 0.3) * e.norm().item<double>()) << asym;
  }
}

TEST(Lqer, FallsBackToSymmetricWhenBDoesNotSplitIntoGroups) {
  torch::manual_seed(8);
  const torch::Tensor e = torch::randn({10, 30});
  quant::LqerOptions o;
  o.rank = 3;  // B is 3 x 30 = 90 values: not a multiple of 64
  const auto [f, m] = quant::lqer_encode("w", e, o);
  EXPECT_EQ(m["scheme"], "sym");
  EXPECT_EQ(m["rank"], 3);
  EXPECT_EQ(find(f, "w.lqAs").sizes(), (std::vector<int64_t>{10}));
  EXPECT_EQ(find(f, "w.lqBs").sizes(), (std::vector<int64_t>{3}));
  EXPECT_LE(find(f, "w.lqB").abs().max().item<int>(), 7);
}

std::shared_ptr<Quantizer> gptq_with_lqer(int64_t top_k) {
  return QuantizerRegistry::get().build(testing::component(
      "quantizer", Json{{"name", "gptq"}, {"small", {{"max_numel", 256}}}, {"lqer", {{"top_k", top_k}, {"rank", 4}}}}));
}

TEST(Lqer, TopKByAbsoluteErrorNormAndDequantisedWithTheFactors) {
  torch::manual_seed(3);
  // the larger-magnitude matrix has the larger absolute error, whatever its relative error
  const NamedTensors state{{"blocks.0.mlp.fc.weight", torch::randn({64, 32}) * 0.01},
                           {"tok_emb.weight", torch::randn({64, 32}) * 0.2},
                           {"blocks.0.attn.c_q.weight", torch::randn({32, 32}) * 0.05}};
  const auto qz = gptq_with_lqer(1);
  const auto q = qz->quantize_state(state);
  EXPECT_TRUE(q.meta["tok_emb.weight"].contains("lqer"));
  EXPECT_EQ(q.meta["tok_emb.weight"]["lqer"]["scheme"], "asym");
  EXPECT_FALSE(q.meta["blocks.0.mlp.fc.weight"].contains("lqer"));
  EXPECT_FALSE(q.meta["blocks.0.attn.c_q.weight"].contains("lqer"));
  EXPECT_EQ(find(q.tensors, "tok_emb.weight.lqA_a").sizes(), (std::vector<int64_t>{64, 4}));
  EXPECT_EQ(find(q.tensors, "tok_emb.weight.lqBs_a").sizes(), (std::vector<int64_t>{4 * 32 / 64}));
  const NamedTensors back = qz->dequantize(q);
  const torch::Tensor qs = find(q.tensors, "tok_emb.weight.q").to(torch::kFloat32) *
                           find(q.tensors, "tok_emb.weight.scale").to(torch::kFloat32).unsqueeze(1);
  const NamedTensors f{{"a", find(q.tensors, "tok_emb.weight.lqA_a")}, {"as", find(q.tensors, "tok_emb.weight.lqAs_a")},
                       {"b", find(q.tensors, "tok_emb.weight.lqB_a")}, {"bs", find(q.tensors, "tok_emb.weight.lqBs_a")}};
  const torch::Tensor expect = qs + quant::lqer_decode("tok_emb.weight", q.meta["tok_emb.weight"]["lqer"], f);
  EXPECT_TRUE(torch::allclose(back[1].second, expect, 0, 1e-7));
  // and the factors bring the rebuilt matrix closer to the original than Q·s alone
  EXPECT_LT((back[1].second - state[1].second).norm().item<double>(), (qs - state[1].second).norm().item<double>());
}

TEST(Lqer, OffByDefault) {
  const auto q = gptq_with_lqer(0)->quantize_state({{"tok_emb.weight", torch::randn({64, 32})}});
  EXPECT_FALSE(q.meta["tok_emb.weight"].contains("lqer"));
  EXPECT_EQ(q.tensors.size(), 2u);
}

}  // namespace
}  // namespace pgolf
