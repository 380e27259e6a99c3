// (d') resid_mix / scale_add with the RMSNorm × factor of their result (kernels/ops.h). The Functions save the
// inputs and `out`; the backward adds out's own gradient to the norm's and runs the residual op's backward in
// the same pass, so neither the norm's input gradient nor their sum is ever written.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef PGOLF_KERNELS_CUDA
const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }
Tensor dense_or_zeros(const Tensor& g, const Tensor& like) { return g.defined() ? g.contiguous() : torch::zeros_like(like); }

struct MixNorm : torch::autograd::Function<MixNorm> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& x0, const Tensor& mix, double factor) {
    auto out = torch::empty_like(x), n = torch::empty_like(x);
    const int64_t D = x.size(-1);
    cuda::mix_norm_fwd(x.data_ptr(), x0.data_ptr(), mix.data_ptr<float>(), out.data_ptr(), n.data_ptr(),
                       x.numel() / D, D, static_cast<float>(factor), detail::stream());
    ctx->save_for_backward({x, x0, mix, out});
    ctx->saved_data["factor"] = factor;
    return {out, n};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &x0 = s[1], &mix = s[2], &out = s[3];
    const int64_t D = x.size(-1), rows = x.numel() / D;
    const Tensor g_out = grads[0].defined() ? grads[0].contiguous() : Tensor(), g_n = dense_or_zeros(grads[1], x);
    auto dx = torch::empty_like(x), dx0 = torch::empty_like(x0);
    auto partial = torch::empty({cuda::residual_norm_blocks(rows), 2, D}, mix.options());
    cuda::mix_norm_bwd(ptr_or_null(g_out), g_n.data_ptr(), out.data_ptr(), x.data_ptr(), x0.data_ptr(),
                       mix.data_ptr<float>(), dx.data_ptr(), dx0.data_ptr(), partial.data_ptr<float>(), rows, D,
                       static_cast<float>(ctx->saved_data["factor"].toDouble()), detail::stream());
    return {dx, dx0, partial.sum(0), Tensor()};
  }
};

struct ScaleAddNorm : torch::autograd::Function<ScaleAddNorm> {
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& s, const Tensor& y, double factor) {
    auto out = torch::empty_like(x), n = torch::empty_like(x);
    const int64_t D = x.size(-1);
    cuda::scale_add_norm_fwd(x.data_ptr(), s.data_ptr<float>(), y.data_ptr(), out.data_ptr(), n.data_ptr(),
                             x.numel() / D, D, static_cast<float>(factor), detail::stream());
    ctx->save_for_backward({y, s, out});
    ctx->saved_data["factor"] = factor;
    return {out, n};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &y = saved[0], &s = saved[1], &out = saved[2];
    const int64_t D = y.size(-1), rows = y.numel() / D;
    const Tensor g_out = grads[0].defined() ? grads[0].contiguous() : Tensor(), g_n = dense_or_zeros(grads[1], y);
    auto dx = torch::empty_like(y), dy = torch::empty_like(y);
    auto partial = torch::empty({cuda::residual_norm_blocks(rows), D}, s.options());
    cuda::scale_add_norm_bwd(ptr_or_null(g_out), g_n.data_ptr(), out.data_ptr(), y.data_ptr(), s.data_ptr<float>(),
                             dx.data_ptr(), dy.data_ptr(), partial.data_ptr<float>(), rows, D,
                             static_cast<float>(ctx->saved_data["factor"].toDouble()), detail::stream());
    return {dx, partial.sum(0), dy, Tensor()};
  }
};

// The fused pass applies to same-shaped dense bf16 CUDA rows of a supported D with fp32 coefficients.
bool fuses(const Tensor& x, const Tensor& other, const Tensor& coef) {
  return applies(x) && other.sizes() == x.sizes() && other.scalar_type() == x.scalar_type() &&
         coef.scalar_type() == torch::kFloat32 && coef.is_cuda() &&
         cuda::residual_norm_applies(x.size(-1), {x.data_ptr(), other.data_ptr()});
}
#endif

}  // namespace

std::pair<Tensor, Tensor> mix_norm(const Tensor& x, const Tensor& x0, const Tensor& mix, double factor, bool fused) {
#ifdef PGOLF_KERNELS_CUDA
  if (fused && fuses(x, x0, mix)) {
    auto r = MixNorm::apply(x.contiguous(), x0.contiguous(), mix.contiguous(), factor);
    return {r[0], r[1]};
  }
#endif
  auto out = resid_mix(x, x0, mix, fused);
  return {out, rms_norm_scaled(out, factor, fused)};
}

std::pair<Tensor, Tensor> scale_add_norm(const Tensor& x, const Tensor& s, const Tensor& y, double factor, bool fused) {
#ifdef PGOLF_KERNELS_CUDA
  if (fused && fuses(x, y, s)) {
    auto r = ScaleAddNorm::apply(x.contiguous(), s.contiguous(), y.contiguous(), factor);
    return {r[0], r[1]};
  }
#endif
  auto out = scale_add(x, s, y, fused);
  return {out, rms_norm_scaled(out, factor, fused)};
}

}  // namespace pgolf::kernels
