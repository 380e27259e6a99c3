#include "models/varlen_attention.h"

#include <ATen/ops/_flash_attention_backward.h>
#include <ATen/ops/_flash_attention_forward.h>

#include <stdexcept>
#include <string>

namespace pgolf {
namespace {

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& cu) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "varlen attention: q, k, v must be (N, heads, head_dim)");
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(2) == k.size(2),
              "varlen attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(), " do not agree");
  TORCH_CHECK(q.size(1) % k.size(1) == 0, "varlen attention: ", q.size(1), " query heads are not a multiple of ",
              k.size(1), " kv heads");
  TORCH_CHECK(cu.dim() == 1 && cu.numel() >= 2 && cu.scalar_type() == torch::kInt32,
              "varlen attention: cu_seqlens must be a 1-D int32 tensor of at least 2 offsets");
}

// Flash attention over cumulative sequence lengths; the backward recomputes through ATen's flash backward
// from the saved log-sum-exp, as FA varlen does.
struct FlashVarlenAttention : torch::autograd::Function<FlashVarlenAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& cu, int64_t max_seqlen) {
    auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    auto [out, lse, rng_state, unused, debug_mask] =
        at::_flash_attention_forward(qc, kc, vc, cu, cu, max_seqlen, max_seqlen, /*dropout_p=*/0.0,
                                     /*is_causal=*/true, /*return_debug_mask=*/false);
    ctx->save_for_backward({qc, kc, vc, out, lse, rng_state, unused, cu});
    ctx->saved_data["max_seqlen"] = max_seqlen;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto s = ctx->get_saved_variables();
    const int64_t max_seqlen = ctx->saved_data["max_seqlen"].toInt();
    auto [dq, dk, dv] = at::_flash_attention_backward(grad[0].contiguous(), s[0], s[1], s[2], s[3], s[4], s[7], s[7],
                                                      max_seqlen, max_seqlen, /*dropout_p=*/0.0, /*is_causal=*/true,
                                                      s[5], s[6]);
    return {dq, dk, dv, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool varlen_uses_flash(const torch::Tensor& q) {
  return q.is_cuda() && (q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kHalf) && q.size(-1) % 8 == 0 &&
         q.size(-1) <= 256;
}

torch::Tensor varlen_causal_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                const torch::Tensor& cu_seqlens) {
  check_inputs(q, k, v, cu_seqlens);
  const auto cu = cu_seqlens.to(torch::kCPU).to(torch::kInt64);  // host copy: the segment loop needs the offsets
  const int64_t* off = cu.data_ptr<int64_t>();
  const int64_t n = cu.numel(), N = q.size(0);
  TORCH_CHECK(off[0] == 0 && off[n - 1] == N, "varlen attention: cu_seqlens must run from 0 to N = ", N, ", got ",
              off[0], " .. ", off[n - 1]);
  const bool gqa = q.size(1) != k.size(1);
  std::vector<torch::Tensor> pieces;
  for (int64_t i = 0; i + 1 < n; ++i) {
    const int64_t s = off[i], len = off[i + 1] - off[i];
    TORCH_CHECK(len >= 0, "varlen attention: cu_seqlens must be non-decreasing (entry ", i + 1, ")");
    if (len == 0) continue;  // padding entries repeat the end offset
    auto seg = [&](const torch::Tensor& t) { return t.narrow(0, s, len).transpose(0, 1).unsqueeze(0); };
    auto y = at::scaled_dot_product_attention(seg(q), seg(k), seg(v), /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                              /*is_causal=*/true, /*scale=*/std::nullopt, /*enable_gqa=*/gqa);
    pieces.push_back(y.squeeze(0).transpose(0, 1));
  }
  return torch::cat(pieces, 0);
}

torch::Tensor varlen_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& cu_seqlens, int64_t max_seqlen) {
  check_inputs(q, k, v, cu_seqlens);
  if (varlen_uses_flash(q)) {
    TORCH_CHECK(cu_seqlens.device() == q.device(), "varlen attention: cu_seqlens must be on ", q.device());
    return FlashVarlenAttention::apply(q, k, v, cu_seqlens, max_seqlen);
  }
  return varlen_causal_attention_reference(q, k, v, cu_seqlens);
}

}  // namespace pgolf
