// The "gptq" quantiser as the recipe builds it: routing (small-tensor policy, groups by name, passthrough),
// the naming contract of framework/artifact.h, and dequantise(quantise) shapes, dtypes and values (§7.5).
#include <gtest/gtest.h>

#include "framework/artifact.h"
#include "quant/gptq.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

std::shared_ptr<Quantizer> make(const Json& keys) {
  Json section = keys;
  section["name"] = "gptq";
  return QuantizerRegistry::get().build(testing::component("quantizer", section));
}

const torch::Tensor& find(const NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

bool has(const NamedTensors& ts, const std::string& name) {
  return std::any_of(ts.begin(), ts.end(), [&](const auto& p) { return p.first == name; });
}

NamedTensors small_model_state() {
  torch::manual_seed(2);
  return {{"tok_emb.weight", torch::randn({64, 32}) * 0.05},
          {"blocks.0.attn.c_q.weight", torch::randn({32, 32}) * 0.05},
          {"blocks.0.attn.attn_gate_w", torch::randn({8, 12}) * 0.1},
          {"blocks.0.mlp.fc.weight", torch::randn({64, 32}) * 0.05},
          {"blocks.0.attn.q_gain", torch::full({8}, 5.0)},
          {"step_counter", torch::tensor({7}, torch::kInt64)}};
}

// Thresholds shrunk so 32x32 matrices are "large".
Json tiny_keys() {
  return Json{{"small", {{"max_numel", 256}, {"gate_int8_row", true}}},
              {"attn", {{"bits", 6}, {"k", 13.0}}},
              {"mlp", {{"bits", 5}, {"k", 11.5}}},
              {"embed", {{"bits", 7}, {"k", 14.0}}}};
}

TEST(GptqQuantizer, RoutesEveryTensorAndNamesItsParts) {
  const auto q = make(tiny_keys())->quantize_state(small_model_state());
  EXPECT_EQ(q.meta["tok_emb.weight"]["method"], "gptq");
  EXPECT_EQ(q.meta["tok_emb.weight"]["bits"], 7);
  EXPECT_EQ(q.meta["blocks.0.attn.c_q.weight"]["bits"], 6);
  EXPECT_EQ(q.meta["blocks.0.mlp.fc.weight"]["bits"], 5);
  EXPECT_EQ(q.meta["blocks.0.attn.attn_gate_w"]["method"], "gate_int8_row");
  EXPECT_EQ(q.meta["blocks.0.attn.q_gain"]["method"], "passthrough");
  EXPECT_EQ(q.meta["blocks.0.attn.q_gain"]["stored"], "float16");
  EXPECT_EQ(q.meta["step_counter"]["method"], "raw");
  EXPECT_EQ(find(q.tensors, "tok_emb.weight.q").scalar_type(), torch::kInt8);
  EXPECT_EQ(find(q.tensors, "tok_emb.weight.scale").scalar_type(), torch::kFloat16);
  EXPECT_EQ(find(q.tensors, "blocks.0.attn.attn_gate_w.gq").scalar_type(), torch::kInt8);
  EXPECT_EQ(find(q.tensors, "blocks.0.attn.attn_gate_w.gs").sizes(), (std::vector<int64_t>{8}));
  EXPECT_EQ(find(q.tensors, "blocks.0.attn.q_gain").scalar_type(), torch::kFloat16);
  // int5 codes stay in ±15, int7 in ±63
  EXPECT_LE(find(q.tensors, "blocks.0.mlp.fc.weight.q").abs().max().item<int>(), 15);
  EXPECT_LE(find(q.tensors, "tok_emb.weight.q").abs().max().item<int>(), 63);
  // the scales are SD-clip's of the original rows
  EXPECT_TRUE(torch::equal(find(q.tensors, "blocks.0.mlp.fc.weight.scale"),
                           quant::sdclip_scales(small_model_state()[3].second, 11.5, 5)));
}

TEST(GptqQuantizer, DequantisesToTheSourceShapesAndDtypes) {
  const NamedTensors src = small_model_state();
  const auto qz = make(tiny_keys());
  const auto q = qz->quantize_state(src);
  const NamedTensors back = qz->dequantize(deserialize_state(serialize_state(q), "test"));
  ASSERT_EQ(back.size(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(back[i].first, src[i].first);
    EXPECT_EQ(back[i].second.sizes(), src[i].second.sizes());
    EXPECT_EQ(back[i].second.scalar_type(), src[i].second.scalar_type());
  }
  // q·s per row in fp32; gate q·s; passthrough the fp16 value; raw unchanged
  const torch::Tensor expect =
      find(q.tensors, "blocks.0.attn.c_q.weight.q").to(torch::kFloat32) *
      find(q.tensors, "blocks.0.attn.c_q.weight.scale").to(torch::kFloat32).unsqueeze(1);
  EXPECT_TRUE(torch::equal(back[1].second, expect));
  EXPECT_LT((back[1].second - src[1].second).abs().max().item<float>(), 0.02f);
  EXPECT_LT((back[2].second - src[2].second).abs().max().item<float>(), src[2].second.abs().max().item<float>() / 200);
  EXPECT_TRUE(torch::equal(back[4].second, src[4].second));  // 5.0 is exact in fp16
  EXPECT_TRUE(torch::equal(back[5].second, src[5].second));
}

TEST(GptqQuantizer, UsesTheCollectedHessian) {
  torch::manual_seed(4);
  const torch::Tensor w = torch::randn({32, 32}) * 0.05;
  const torch::Tensor x = torch::mm(torch::randn({256, 32}), torch::randn({32, 32}));
  std::map<std::string, torch::Tensor> hessians{{"blocks.0.attn.c_q.weight", torch::mm(x.t(), x)}};
  LocalCommunicator local;
  const NamedTensors state{{"blocks.0.attn.c_q.weight", w}};
  const auto qz = make(Json{{"small", {{"max_numel", 256}}}, {"no_hessian", "error"}});
  const auto q = qz->quantize(QuantizerContext{nullptr, state, hessians, torch::kCPU, local});
  const torch::Tensor s = quant::sdclip_scales(w, 12.85, 6);
  const torch::Tensor expect = quant::gptq_codes(w.unsqueeze(0), hessians.begin()->second.unsqueeze(0), s.unsqueeze(0), {})[0];
  EXPECT_TRUE(torch::equal(find(q.tensors, "blocks.0.attn.c_q.weight.q"), expect));
  // without a Hessian and no_hessian = error: a clear refusal naming the tensor
  const std::map<std::string, torch::Tensor> none;
  try {
    qz->quantize(QuantizerContext{nullptr, state, none, torch::kCPU, local});
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.0.attn.c_q.weight"), std::string::npos);
  }
}

TEST(GptqQuantizer, RefusesNaNAndClashingNames) {
  const auto qz = make(tiny_keys());
  EXPECT_THROW(qz->quantize_state({{"blocks.0.attn.c_q.weight", torch::full({32, 32}, NAN)}}), std::runtime_error);
  EXPECT_THROW(qz->quantize_state({{"a", torch::randn({32, 32})}, {"a.q", torch::zeros({2})}}), std::runtime_error);
}

TEST(GptqQuantizer, DequantizeRefusesAMissingPart) {
  const auto qz = make(tiny_keys());
  auto q = qz->quantize_state(small_model_state());
  q.tensors.erase(std::remove_if(q.tensors.begin(), q.tensors.end(), [](const auto& p) { return p.first == "tok_emb.weight.scale"; }),
                  q.tensors.end());
  EXPECT_THROW(qz->dequantize(q), std::runtime_error);
}

}  // namespace
}  // namespace pgolf
