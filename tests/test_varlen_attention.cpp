// Document-isolated (varlen) attention: the reference path against dense attention under a block-diagonal
// causal mask written here (values and gradients, GQA, empty padding segments); the CUDA flash path
// against the reference (skipped without a GPU); and a whole seed-style model whose packed-row NLL equals
// running each document on its own (RoPE only sees relative positions).
#include <gtest/gtest.h>

#include <cmath>

#include "models/varlen_attention.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

// Softmax attention over the whole axis with a mask allowing j <= i inside the same segment. q (N, H, D).
torch::Tensor masked_dense(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const std::vector<int64_t>& cu) {
  const int64_t N = q.size(0), H = q.size(1), D = q.size(2), g = H / k.size(1);
  auto seg = torch::empty({N}, torch::kLong);
  for (size_t i = 0; i + 1 < cu.size(); ++i)
    if (cu[i + 1] > cu[i]) seg.slice(0, cu[i], cu[i + 1]).fill_(static_cast<int64_t>(i));
  auto pos = torch::arange(N);
  auto allowed = seg.view({N, 1}).eq(seg.view({1, N})) & pos.view({1, N}).le(pos.view({N, 1}));
  auto qh = q.transpose(0, 1), kh = k.transpose(0, 1).repeat_interleave(g, 0), vh = v.transpose(0, 1).repeat_interleave(g, 0);
  auto s = torch::matmul(qh, kh.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  s = s.masked_fill(allowed.logical_not(), -INFINITY);
  return torch::matmul(torch::softmax(s, -1), vh).transpose(0, 1);
}

TEST(VarlenAttention, ReferenceEqualsMaskedDenseAttentionWithGradients) {
  torch::manual_seed(0);
  const std::vector<int64_t> cu = {0, 5, 6, 13, 20, 20, 20};  // a one-token document and two padding entries
  const int64_t N = 20, H = 4, Hkv = 2, D = 8;
  auto q = torch::randn({N, H, D}, torch::kFloat64).requires_grad_();
  auto k = torch::randn({N, Hkv, D}, torch::kFloat64).requires_grad_();
  auto v = torch::randn({N, Hkv, D}, torch::kFloat64).requires_grad_();
  auto cu_t = torch::tensor(cu, torch::kInt32);
  auto out = varlen_causal_attention(q, k, v, cu_t, 7);
  auto ref = masked_dense(q, k, v, cu);
  ASSERT_TRUE(torch::allclose(out, ref, 1e-10, 1e-12)) << (out - ref).abs().max();
  // Nothing crosses a boundary: changing document 3 leaves documents 1-2 alone.
  auto k2 = k.detach().clone();
  k2.slice(0, 13, 20).add_(1.0);
  auto out2 = varlen_causal_attention(q.detach(), k2, v.detach(), cu_t, 7);
  EXPECT_TRUE(torch::equal(out2.slice(0, 0, 13), out.detach().slice(0, 0, 13)));
  auto w = torch::randn_like(out);
  auto grads = torch::autograd::grad({(out * w).sum()}, {q, k, v});
  auto grads_ref = torch::autograd::grad({(ref * w).sum()}, {q, k, v});
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(grads[i], grads_ref[i], 1e-10, 1e-12)) << i;
}

TEST(VarlenAttention, RefusesOffsetsThatDoNotCoverTheTokens) {
  auto q = torch::randn({6, 2, 4}), k = torch::randn({6, 1, 4});
  EXPECT_THROW(varlen_causal_attention(q, k, k, torch::tensor({0, 4}, torch::kInt32), 4), c10::Error);
  EXPECT_THROW(varlen_causal_attention(q, k, k, torch::tensor({0, 4, 6}, torch::kInt64), 4), c10::Error);
}

TEST(VarlenAttention, FlashPathMatchesTheReferenceOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: the flash path runs on the GPU only";
  torch::manual_seed(1);
  const std::vector<int64_t> cu = {0, 100, 101, 356, 512, 512};
  auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  auto q = torch::randn({512, 8, 64}, opt).requires_grad_();
  auto k = torch::randn({512, 4, 64}, opt).requires_grad_();
  auto v = torch::randn({512, 4, 64}, opt).requires_grad_();
  auto cu_t = torch::tensor(cu, torch::kInt32).to(torch::kCUDA);
  ASSERT_TRUE(varlen_uses_flash(q));
  auto out = varlen_causal_attention(q, k, v, cu_t, 256);
  auto q32 = q.detach().to(torch::kFloat32).requires_grad_(), k32 = k.detach().to(torch::kFloat32).requires_grad_(),
       v32 = v.detach().to(torch::kFloat32).requires_grad_();
  auto ref = varlen_causal_attention_reference(q32, k32, v32, cu_t);
  EXPECT_LT((out.to(torch::kFloat32) - ref).abs().max().item<double>(), 2e-2);
  auto w = torch::randn(out.sizes(), opt.dtype(torch::kFloat32));
  auto g = torch::autograd::grad({(out.to(torch::kFloat32) * w).sum()}, {q, k, v});
  auto gr = torch::autograd::grad({(ref * w).sum()}, {q32, k32, v32});
  for (size_t i = 0; i < 3; ++i) {
    const double scale = gr[i].abs().max().item<double>();
    EXPECT_LT((g[i].to(torch::kFloat32) - gr[i]).abs().max().item<double>(), 3e-2 * scale + 1e-2) << i;
  }
}

TEST(VarlenAttention, APackedRowScoresEachDocumentAsIfAlone) {
  // #1855's structure at tiny size: BOS-masked smear, sparse gate, XSA, loop, two lanes. With the smear masked
  // at BOS and attention confined to documents, a packed row's NLL equals each document run on its own.
  torch::manual_seed(2);
  auto m = testing::build_model(Json{
      {"name", "gpt"}, {"vocab_size", 30}, {"layers", 5}, {"dim", 32}, {"heads", 4}, {"kv_heads", 2},
      {"linear_init", "orthogonal"},
      {"block", {{"name", "sequential"}, {"ln_scale", true}}},
      {"attention", {{"name", "gqa"}, {"rope_dims", 4}, {"qk_gain_init", 5.0}, {"xsa_layers", {0, 1, 2, 3, 4}},
                     {"gate", {{"name", "sparse_attn_gate"}, {"scale", 0.5}}}}},
      {"mlp", {{"name", "leaky_relu2"}, {"mult", 2.0}}},
      {"skip", "unet_gated"},
      {"recurrence", {{"name", "segment_loop"}, {"loop_start", 1}, {"loop_end", 2}, {"num_loops", 1}}},
      {"lanes", {{"name", "two_lane"}, {"start_layer", 3}}},
      {"smear", "bos_fixed"}});
  testing::perturb(*m, 0.1);
  m->eval();
  torch::NoGradGuard g;
  auto x = torch::tensor({1, 7, 8, 9, 1, 4, 5, 1, 12, 13, 14, 15}, torch::kLong).view({1, 12});
  auto y = torch::tensor({7, 8, 9, 1, 4, 5, 1, 12, 13, 14, 15, 3}, torch::kLong).view({1, 12});
  const std::vector<int64_t> cu = {0, 4, 7, 12};
  auto packed = m->token_nll(x, y, torch::tensor(cu, torch::kInt32), 5);
  for (size_t d = 0; d + 1 < cu.size(); ++d) {
    const int64_t s = cu[d], n = cu[d + 1] - cu[d];
    auto alone = m->token_nll(x.narrow(1, s, n), y.narrow(1, s, n));
    EXPECT_TRUE(torch::allclose(packed.narrow(1, s, n), alone, 1e-4, 1e-5)) << d << packed << alone;
  }
  // Without the boundaries the later documents see the earlier ones.
  auto unpacked = m->token_nll(x, y);
  EXPECT_FALSE(torch::allclose(unpacked.narrow(1, 4, 8), packed.narrow(1, 4, 8), 1e-4, 1e-5));
}

}  // namespace
}  // namespace pgolf
