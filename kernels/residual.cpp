// (d) resid_mix and scale-and-add (kernels/ops.h): the block's residual arithmetic with its per-channel
// fp32 coefficients; the coefficient gradients come out of the backward kernels' in-register sums.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef PGOLF_KERNELS_CUDA
int64_t rows_of(const Tensor& x) { return x.numel() / x.size(-1); }
#endif

struct ResidMix : torch::autograd::Function<ResidMix> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& x0, const Tensor& mix) {
    ctx->save_for_backward({x, x0, mix});
#ifdef PGOLF_KERNELS_CUDA
    if (applies(x)) {
      auto out = torch::empty_like(x);
      cuda::resid_mix_fwd(x.data_ptr(), x0.data_ptr(), detail::f32(mix), out.data_ptr(), rows_of(x), x.size(-1),
                          detail::stream());
      return out;
    }
#endif
    auto m = mix.to(x.scalar_type());
    return m[0] * x + m[1] * x0;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const auto &x = s[0], &x0 = s[1], &mix = s[2];
    const auto g = grads[0].contiguous();
#ifdef PGOLF_KERNELS_CUDA
    if (applies(x)) {
      const int64_t D = x.size(-1), rows = rows_of(x), G = cuda::reduce_groups(rows, D);
      auto dx = torch::empty_like(x), dx0 = torch::empty_like(x0);
      auto partial = torch::empty({G, 2, D}, x.options().dtype(torch::kFloat32));
      cuda::resid_mix_bwd(g.data_ptr(), x.data_ptr(), x0.data_ptr(), detail::f32(mix), dx.data_ptr(), dx0.data_ptr(),
                          partial.data_ptr<float>(), rows, D, detail::stream());
      return {dx, dx0, partial.sum(0).to(mix.scalar_type())};
    }
#endif
    auto m = mix.to(x.scalar_type());
    auto dmix = torch::stack({detail::channel_sum(g * x, mix.scalar_type()), detail::channel_sum(g * x0, mix.scalar_type())});
    return {m[0] * g, m[1] * g, dmix};
  }
};

struct ScaleAdd : torch::autograd::Function<ScaleAdd> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& s, const Tensor& y) {
    ctx->save_for_backward({s, y});
#ifdef PGOLF_KERNELS_CUDA
    if (applies(x)) {
      auto out = torch::empty_like(x);
      cuda::scale_add_fwd(x.data_ptr(), detail::f32(s), y.data_ptr(), out.data_ptr(), rows_of(x), x.size(-1),
                          detail::stream());
      return out;
    }
#endif
    return x + s.to(x.scalar_type()) * y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &s = saved[0], &y = saved[1];
    const auto g = grads[0].contiguous();
#ifdef PGOLF_KERNELS_CUDA
    if (applies(y)) {
      const int64_t D = y.size(-1), rows = rows_of(y), G = cuda::reduce_groups(rows, D);
      auto dy = torch::empty_like(y);
      auto partial = torch::empty({G, D}, y.options().dtype(torch::kFloat32));
      cuda::scale_add_bwd(g.data_ptr(), y.data_ptr(), detail::f32(s), dy.data_ptr(), partial.data_ptr<float>(), rows, D,
                          detail::stream());
      return {g, partial.sum(0).to(s.scalar_type()), dy};
    }
#endif
    return {g, detail::channel_sum(g * y, s.scalar_type()), g * s.to(y.scalar_type())};
  }
};

// The kernels read x, x0, y and the coefficients densely: same shapes, contiguous, fp32 coefficients.
bool fits(const Tensor& x, const Tensor& other, const Tensor& coef) {
  return applies(x) && other.sizes() == x.sizes() && other.scalar_type() == x.scalar_type() &&
         coef.scalar_type() == torch::kFloat32 && coef.is_cuda();
}

}  // namespace

namespace compose {
Tensor resid_mix(const Tensor& x, const Tensor& x0, const Tensor& mix) {
  auto m = mix.to(x.scalar_type());
  return m[0] * x + m[1] * x0;
}
Tensor scale_add(const Tensor& x, const Tensor& s, const Tensor& y) { return x + s.to(x.scalar_type()) * y; }
}  // namespace compose

namespace function {
Tensor resid_mix(const Tensor& x, const Tensor& x0, const Tensor& mix) {
  return ResidMix::apply(x.contiguous(), x0.contiguous(), mix.contiguous());
}
Tensor scale_add(const Tensor& x, const Tensor& s, const Tensor& y) {
  return ScaleAdd::apply(x.contiguous(), s.contiguous(), y.contiguous());
}
}  // namespace function

Tensor resid_mix(const Tensor& x, const Tensor& x0, const Tensor& mix, bool fused) {
  if (fused && fits(x, x0, mix)) return function::resid_mix(x, x0, mix);
  return compose::resid_mix(x, x0, mix);
}

Tensor scale_add(const Tensor& x, const Tensor& s, const Tensor& y, bool fused) {
  if (fused && fits(x, y, s)) return function::scale_add(x, s, y);
  return compose::scale_add(x, s, y);
}

}  // namespace pgolf::kernels
