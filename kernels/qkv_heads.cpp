// (g) The attention's input projection split into heads (kernels/ops.h). The Function keeps the projection
// y = x·wᵀ as one (B, T, W) buffer: the q and k norm kernels read their heads in place, their backward
// writes into one dy beside dv and the extra columns' gradient, and dy makes dx and dw in one GEMM each.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Columns [c, c + heads·d) of y (B, T, W) as (B, T, heads, d).
Tensor heads_of(const Tensor& y, int64_t c, int64_t heads, int64_t d) {
  return y.narrow(-1, c, heads * d).view({y.size(0), y.size(1), heads, d});
}

#ifdef PGOLF_KERNELS_CUDA
void* bf16_at(const Tensor& y, int64_t c) { return static_cast<at::BFloat16*>(y.data_ptr()) + c; }

struct QkvHeadsFn : torch::autograd::Function<QkvHeadsFn> {
  // cos, sin: (T, R/2) fp32 or empty (no RoPE); gain: (H) fp32 or empty.
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const Tensor& cos,
                               const Tensor& sin, const Tensor& gain, int64_t H, int64_t Hkv, bool norm) {
    const auto y = torch::nn::functional::linear(x, w);
    const int64_t B = y.size(0), T = y.size(1), W = y.size(2), d = x.size(2) / H, kv = Hkv * d;
    const int64_t R = 2 * cos.size(-1);  // 0 without RoPE (cos is then empty)
    const int64_t D = H * d, Z = W - D - 2 * kv;
    auto q = torch::empty({B, T, H, d}, y.options()), k = torch::empty({B, T, Hkv, d}, y.options());
    cuda::norm_rope_fwd(y.data_ptr(), detail::f32_or_null(cos), detail::f32_or_null(sin), detail::f32_or_null(gain), q.data_ptr(), B * T * H,
                        T, H, d, R, norm, 1.f, W, detail::stream());
    cuda::norm_rope_fwd(bf16_at(y, D), detail::f32_or_null(cos), detail::f32_or_null(sin), nullptr, k.data_ptr(), B * T * Hkv, T, Hkv,
                        d, R, norm, 1.f, W, detail::stream());
    ctx->save_for_backward({x, w, y, cos, sin, gain});
    ctx->saved_data["H"] = H;
    ctx->saved_data["Hkv"] = Hkv;
    ctx->saved_data["norm"] = norm;
    return {q, k, heads_of(y, D + kv, Hkv, d).contiguous(), y.narrow(-1, D + 2 * kv, Z).contiguous()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &w = s[1], &y = s[2], &cos = s[3], &sin = s[4], &gain = s[5];
    const int64_t H = ctx->saved_data["H"].toInt(), Hkv = ctx->saved_data["Hkv"].toInt();
    const bool norm = ctx->saved_data["norm"].toBool();
    const int64_t B = y.size(0), T = y.size(1), W = y.size(2), d = x.size(2) / H, kv = Hkv * d;
    const int64_t D = H * d, Z = W - D - 2 * kv, R = 2 * cos.size(-1);
    auto dy = torch::empty_like(y);
    // The q (offset 0) and k (offset D) heads' backward, written into dy's columns in place.
    auto heads_bwd = [&](const Tensor& g_in, int64_t c, int64_t heads, const Tensor& gn) {
      if (!g_in.defined()) {
        heads_of(dy, c, heads, d).zero_();
        return Tensor();
      }
      const auto g = g_in.contiguous();
      const int64_t rows = B * T * heads;
      const int64_t P = cuda::norm_rope_bwd_partials(rows, heads, d, R, bf16_at(y, c), g.data_ptr(), bf16_at(dy, c), W);
      Tensor partial = detail::f32_or_null(gn) ? torch::empty({P}, y.options().dtype(torch::kFloat32)) : Tensor();
      cuda::norm_rope_bwd(bf16_at(y, c), g.data_ptr(), detail::f32_or_null(cos), detail::f32_or_null(sin), detail::f32_or_null(gn),
                          bf16_at(dy, c), partial.defined() ? partial.data_ptr<float>() : nullptr, rows, T, heads, d, R,
                          norm, 1.f, W, detail::stream());
      return partial.defined() ? partial.view({P / heads, heads}).sum(0) : Tensor();
    };
    const Tensor dgain = heads_bwd(grads[0], 0, H, gain);
    heads_bwd(grads[1], D, Hkv, Tensor());
    auto place = [&](const Tensor& g, int64_t c, int64_t width) {
      auto cols = dy.narrow(-1, c, width);
      if (g.defined()) cols.copy_(g.reshape({B, T, width}));
      else cols.zero_();
    };
    place(grads[2], D + kv, kv);
    if (Z) place(grads[3], D + 2 * kv, Z);
    const auto dx = torch::matmul(dy, w);
    const auto dw = torch::matmul(dy.reshape({-1, W}).t(), x.reshape({-1, x.size(2)}));
    return {dx, dw, Tensor(), Tensor(), gain.numel() ? dgain : Tensor(), Tensor(), Tensor(), Tensor()};
  }
};
#endif

}  // namespace

namespace compose {
QkvHeads qkv_heads(const Tensor& x, const Tensor& w, int64_t H, int64_t Hkv, const Tensor& cos, const Tensor& sin,
                   const Tensor& q_gain, bool norm) {
  const auto y = torch::nn::functional::linear(x, w);
  const int64_t d = x.size(2) / H, D = H * d, kv = Hkv * d;
  return {compose::norm_rope_gain(heads_of(y, 0, H, d), cos, sin, q_gain, norm, 1.0),
          compose::norm_rope_gain(heads_of(y, D, Hkv, d), cos, sin, {}, norm, 1.0), heads_of(y, D + kv, Hkv, d),
          y.narrow(-1, D + 2 * kv, y.size(2) - D - 2 * kv)};
}
}  // namespace compose

QkvHeads qkv_heads(const Tensor& x, const Tensor& w, int64_t H, int64_t Hkv, const Tensor& cos, const Tensor& sin,
                   const Tensor& q_gain, bool norm, bool fused) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) % H == 0 && H % Hkv == 0, "qkv_heads: x (B, T, D) with D = H·d expected");
#ifdef PGOLF_KERNELS_CUDA
  const int64_t d = x.size(2) / H;
  if (fused && applies(x) && d % 8 == 0 && d <= cuda::kMaxNormDim && w.scalar_type() == x.scalar_type()) {
    const auto f32 = x.options().dtype(torch::kFloat32);
    const auto dense = [&](const Tensor& t) { return t.defined() ? t.to(f32).contiguous() : torch::empty({0}, f32); };
    auto out = QkvHeadsFn::apply(x.contiguous(), w.contiguous(), dense(cos), dense(sin), dense(q_gain), H, Hkv, norm);
    return {out[0], out[1], out[2], out[3]};
  }
#endif
  return compose::qkv_heads(x, w, H, Hkv, cos, sin, q_gain, norm);
}

}  // namespace pgolf::kernels
