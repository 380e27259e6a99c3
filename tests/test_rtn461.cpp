// #461's RTN export (spec posttrain §4.4): the routing order and hand-computed per-row absmax codes with the
// asymmetric ranges [−32, 31] (int6) and [−16, 15] (int5).
#include <gtest/gtest.h>

#include "framework/artifact.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

std::shared_ptr<Quantizer> make() {
  return QuantizerRegistry::get().build(testing::component("quantizer", Json{{"name", "rtn461"}}));
}

const torch::Tensor& find(const NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

// 2 x 8192 = 16384 > 8192 elements: quantised. Row 0 holds the hand values, the rest zeros.
torch::Tensor hand(std::vector<float> row0) {
  torch::Tensor w = torch::zeros({2, 8192});
  for (size_t j = 0; j < row0.size(); ++j) w[0][static_cast<int64_t>(j)] = row0[j];
  w[1][0] = 1e-9f;  // a tiny row: the scale floor (fp16 tiny) applies
  return w;
}

TEST(Rtn461, AttentionIsInt6AbsmaxPerRow) {
  // absmax 0.62: s = fp16(0.62/31 = 0.02) = 0.0200042724609375; 0.62 -> 30.993 -> 31, 0.3 -> 14.997 -> 15,
  // 0.01 -> 0.49989 -> 0, -0.62 -> -31.
  const auto q = make()->quantize_state({{"blocks.0.attn.c_q.weight", hand({0.62f, -0.62f, 0.3f, 0.01f})}});
  const torch::Tensor& c = find(q.tensors, "blocks.0.attn.c_q.weight.q");
  const torch::Tensor& s = find(q.tensors, "blocks.0.attn.c_q.weight.scale");
  EXPECT_EQ(q.meta["blocks.0.attn.c_q.weight"]["method"], "rtn");
  EXPECT_EQ(q.meta["blocks.0.attn.c_q.weight"]["bits"], 6);
  EXPECT_EQ(s[0].item<float>(), 0.0200042724609375f);
  EXPECT_EQ(s[1].item<float>(), 6.103515625e-05f);
  EXPECT_EQ(c[0][0].item<int>(), 31);
  EXPECT_EQ(c[0][1].item<int>(), -31);
  EXPECT_EQ(c[0][2].item<int>(), 15);
  EXPECT_EQ(c[0][3].item<int>(), 0);
}

TEST(Rtn461, MlpIsInt5AbsmaxPerRow) {
  // absmax 0.3: s = fp16(0.3/15) = 0.0200042724609375; 0.3 -> 14.997 -> 15, -0.3 -> -15, 0.29 -> 14.497 -> 14.
  const auto q = make()->quantize_state({{"blocks.1.mlp.proj.weight", hand({0.3f, -0.3f, 0.29f})}});
  const torch::Tensor& c = find(q.tensors, "blocks.1.mlp.proj.weight.q");
  EXPECT_EQ(q.meta["blocks.1.mlp.proj.weight"]["bits"], 5);
  EXPECT_EQ(c[0][0].item<int>(), 15);
  EXPECT_EQ(c[0][1].item<int>(), -15);
  EXPECT_EQ(c[0][2].item<int>(), 14);
  EXPECT_GE(c.min().item<int>(), -16);
  EXPECT_LE(c.max().item<int>(), 15);
}

TEST(Rtn461, RoutesPassthroughsInTheSpecsOrder) {
  torch::manual_seed(1);
  const NamedTensors state{{"cores.0.attn.q_gain", torch::randn({8})},          // small -> fp16 (before the fp32 rule)
                           {"ve_shared.scale", torch::randn({10000})},         // control, large -> fp32
                           {"tok_emb.weight", torch::randn({1024, 16})},       // fp16 pattern
                           {"cores.2.attn.c_k.weight", torch::randn({256, 64})},
                           {"ve_shared.proj.weight", torch::randn({128, 128})},  // other 2-D -> int8 clip
                           {"big_vector", torch::randn({9000})},                // other 1-D -> one fp32 scale
                           {"ids", torch::arange(20000)}};
  const auto qz = make();
  const auto q = qz->quantize_state(state);
  EXPECT_EQ(q.meta["cores.0.attn.q_gain"]["stored"], "float16");
  EXPECT_EQ(q.meta["ve_shared.scale"]["stored"], "float32");
  EXPECT_EQ(q.meta["tok_emb.weight"]["stored"], "float16");
  EXPECT_EQ(q.meta["cores.2.attn.c_k.weight"]["stored"], "float16");
  EXPECT_EQ(q.meta["ve_shared.proj.weight"]["bits"], 8);
  EXPECT_EQ(q.meta["big_vector"]["method"], "int8_tensor");
  EXPECT_EQ(q.meta["ids"]["method"], "raw");
  EXPECT_EQ(find(q.tensors, "big_vector.scale").scalar_type(), torch::kFloat32);
  const NamedTensors back = qz->dequantize(q);
  ASSERT_EQ(back.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(back[i].second.sizes(), state[i].second.sizes()) << state[i].first;
    EXPECT_EQ(back[i].second.scalar_type(), state[i].second.scalar_type()) << state[i].first;
  }
  EXPECT_TRUE(torch::equal(back[1].second, state[1].second));
  EXPECT_TRUE(torch::equal(back[6].second, state[6].second));
  EXPECT_LT((back[4].second - state[4].second).abs().max().item<float>(), 0.05f);
}

}  // namespace
}  // namespace pgolf
