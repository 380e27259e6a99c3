// (b, c) Norm + partial RoPE + gain (kernels/ops.h): the q/k path of attention in its (B, T, H, d) layout,
// and the block-input RMSNorm × f_ℓ as rows of (N, 1, 1, D). The Function saves only x; the backward
// recomputes the normalised row.
#include <limits>

#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;

// The Function's optional inputs (cos/sin without RoPE, gain for k) travel as empty tensors: autograd
// Functions take no undefined inputs.
bool has(const Tensor& t) { return t.defined() && t.numel() > 0; }

// (n_c, n_{c+R/2}) → (n_c cos + n_{c+R/2} sin, n_{c+R/2} cos − n_c sin) on the first R channels; cos, sin
// (T, R/2) broadcast over (B, T, H, ·). transpose = the inverse rotation (the backward of the forward one).
Tensor rotate(const Tensor& x, const Tensor& cos, const Tensor& sin, bool transpose) {
  if (!has(cos)) return x;
  const int64_t half = cos.size(1), R = 2 * half, D = x.size(-1);
  auto c = cos.to(x.scalar_type()).view({1, x.size(1), 1, half}), s = sin.to(x.scalar_type()).view({1, x.size(1), 1, half});
  if (transpose) s = -s;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * c + x2 * s, x2 * c - x1 * s}, -1);
  return R == D ? rotated : torch::cat({rotated, x.narrow(-1, R, D - R)}, -1);
}

double eps_of(torch::ScalarType t) {  // at::rms_norm's default: the machine epsilon of the opmath type
  return t == torch::kFloat64 ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

Tensor head_scale(const Tensor& x, const Tensor& gain, double factor) {  // factor · gain[h] as (1, 1, H, 1)
  auto s = has(gain) ? gain.to(x.scalar_type()).view({1, 1, -1, 1}) * factor
                          : torch::full({1, 1, 1, 1}, factor, x.options());
  return s;
}

struct Parts {  // the forward's intermediates, recomputed in the backward
  Tensor r, n, ro;
};

Parts forward_parts(const Tensor& x, const Tensor& cos, const Tensor& sin, bool norm) {
  Parts p;
  p.r = norm ? torch::rsqrt(x.square().mean({-1}, true) + eps_of(x.scalar_type())) : torch::ones({1}, x.options());
  p.n = x * p.r;
  p.ro = rotate(p.n, cos, sin, false);
  return p;
}

Tensor fwd(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& gain, bool norm, double factor) {
#ifdef PGOLF_KERNELS_CUDA
  if (applies(x)) {
    auto out = torch::empty_like(x);
    const int64_t D = x.size(3), R = has(cos) ? 2 * cos.size(1) : 0;
    cuda::norm_rope_fwd(x.data_ptr(), detail::f32_or_null(cos), detail::f32_or_null(sin), detail::f32_or_null(gain), out.data_ptr(),
                        x.numel() / D, x.size(1), x.size(2), D, R, norm, static_cast<float>(factor), /*x_stride=*/0,
                        detail::stream());
    return out;
  }
#endif
  return forward_parts(x, cos, sin, norm).ro * head_scale(x, gain, factor);
}

std::pair<Tensor, Tensor> bwd(const Tensor& x, const Tensor& g, const Tensor& cos, const Tensor& sin,
                              const Tensor& gain, bool norm, double factor) {
#ifdef PGOLF_KERNELS_CUDA
  if (applies(x)) {
    auto dx = torch::empty_like(x);
    const int64_t D = x.size(3), R = has(cos) ? 2 * cos.size(1) : 0, H = x.size(2), rows = x.numel() / D;
    const int64_t W = cuda::norm_rope_bwd_partials(rows, H, D, R, x.data_ptr(), g.data_ptr(), dx.data_ptr(), 0);
    Tensor partial = has(gain) ? torch::empty({W}, x.options().dtype(torch::kFloat32)) : Tensor();
    cuda::norm_rope_bwd(x.data_ptr(), g.data_ptr(), detail::f32_or_null(cos), detail::f32_or_null(sin), detail::f32_or_null(gain),
                        dx.data_ptr(), partial.defined() ? partial.data_ptr<float>() : nullptr, rows, x.size(1), H, D,
                        R, norm, static_cast<float>(factor), /*x_stride=*/0, detail::stream());
    return {dx, has(gain) ? partial.view({W / H, H}).sum(0).to(gain.scalar_type()) : Tensor()};
  }
#endif
  const Parts p = forward_parts(x, cos, sin, norm);
  Tensor dgain;
  if (has(gain)) dgain = (g * p.ro * factor).to(detail::acc_dtype(x.scalar_type())).sum({0, 1, 3}).to(gain.scalar_type());
  auto gn = rotate(g * head_scale(x, gain, factor), cos, sin, true);
  if (!norm) return {gn, dgain};
  return {p.r * (gn - p.n * (gn * p.n).mean({-1}, true)), dgain};
}

struct NormRopeGain : torch::autograd::Function<NormRopeGain> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& cos, const Tensor& sin,
                        const Tensor& gain, bool norm, double factor) {
    ctx->save_for_backward({x, cos, sin, gain});
    ctx->saved_data["norm"] = norm;
    ctx->saved_data["factor"] = factor;
    return fwd(x, cos, sin, gain, norm, factor);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    auto [dx, dgain] = bwd(s[0], grads[0].contiguous(), s[1], s[2], s[3], ctx->saved_data["norm"].toBool(),
                           ctx->saved_data["factor"].toDouble());
    return {dx, Tensor(), Tensor(), dgain, Tensor(), Tensor()};
  }
};

bool fits(const Tensor& x) {
#ifdef PGOLF_KERNELS_CUDA
  return applies(x) && x.size(-1) <= cuda::kMaxNormDim;
#else
  return applies(x);
#endif
}

}  // namespace

namespace compose {
namespace {
Tensor rms_norm(const Tensor& x) { return at::rms_norm(x, {x.size(-1)}, std::nullopt, std::nullopt); }
}  // namespace

Tensor norm_rope_gain(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& gain, bool norm,
                      double factor) {
  auto y = norm ? rms_norm(x) : x;  // the models' former q/k code, op for op
  y = rotate(y, cos, sin, false);
  if (gain.defined()) y = y * gain.to(y.scalar_type()).view({1, 1, -1, 1});
  return factor != 1.0 ? y * factor : y;
}
}  // namespace compose

namespace function {
Tensor norm_rope_gain(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& gain, bool norm,
                      double factor) {
  TORCH_CHECK(x.dim() == 4, "norm_rope_gain: x (B, T, H, d) expected");
  const auto acc = x.options().dtype(detail::acc_dtype(x.scalar_type()));
  const auto f32 = [&](const Tensor& t) { return has(t) ? t.to(acc).contiguous() : torch::empty({0}, acc); };
  return NormRopeGain::apply(x.contiguous(), f32(cos), f32(sin), has(gain) ? gain.contiguous() : torch::empty({0}, acc),
                             norm, factor);
}
}  // namespace function

Tensor norm_rope_gain(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& gain, bool norm,
                      double factor, bool fused) {
  if (fused && fits(x)) return function::norm_rope_gain(x, cos, sin, gain, norm, factor);
  return compose::norm_rope_gain(x, cos, sin, gain, norm, factor);
}

Tensor rms_norm_scaled(const Tensor& x, double factor, bool fused) {
  if (fused && fits(x)) {
    const int64_t D = x.size(-1);
    return function::norm_rope_gain(x.reshape({-1, 1, 1, D}), {}, {}, {}, true, factor).view(x.sizes());
  }
  auto n = at::rms_norm(x, {x.size(-1)}, std::nullopt, std::nullopt);
  return factor != 1.0 ? n * factor : n;
}

}  // namespace pgolf::kernels
