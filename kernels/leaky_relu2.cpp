// (e) LeakyReLU² (kernels/ops.h): the Function saves only z (the composition keeps z and LeakyReLU(z)).
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;

struct LeakyRelu2 : torch::autograd::Function<LeakyRelu2> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& z, double slope) {
    ctx->save_for_backward({z});
    ctx->saved_data["slope"] = slope;
#ifdef PGOLF_KERNELS_CUDA
    if (applies(z)) {
      auto out = torch::empty_like(z);
      cuda::leaky_relu2_fwd(z.data_ptr(), out.data_ptr(), z.numel(), static_cast<float>(slope), detail::stream());
      return out;
    }
#endif
    return torch::where(z > 0, z, z * slope).square();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto z = ctx->get_saved_variables()[0];
    const double slope = ctx->saved_data["slope"].toDouble();
    const auto g = grads[0].contiguous();
#ifdef PGOLF_KERNELS_CUDA
    if (applies(z)) {
      auto dz = torch::empty_like(z);
      cuda::leaky_relu2_bwd(z.data_ptr(), g.data_ptr(), dz.data_ptr(), z.numel(), static_cast<float>(slope),
                            detail::stream());
      return {dz, Tensor()};
    }
#endif
    return {g * torch::where(z > 0, 2 * z, (2 * slope * slope) * z), Tensor()};
  }
};

}  // namespace

namespace compose {
Tensor leaky_relu2(const Tensor& z, double slope) {
  namespace F = torch::nn::functional;
  return F::leaky_relu(z, F::LeakyReLUFuncOptions().negative_slope(slope)).square();
}
}  // namespace compose

namespace function {
Tensor leaky_relu2(const Tensor& z, double slope) { return LeakyRelu2::apply(z.contiguous(), slope); }
}  // namespace function

Tensor leaky_relu2(const Tensor& z, double slope, bool fused) {
  if (fused && applies(z)) return function::leaky_relu2(z, slope);
  return compose::leaky_relu2(z, slope);
}

}  // namespace pgolf::kernels
