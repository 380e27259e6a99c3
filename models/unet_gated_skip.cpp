// Gated U-Net skips (family A, spec §2.9): before decoder entry j,
//   x ← σ(γ_j) ⊙ x + (1 − σ(γ_j)) ⊙ (w_j ⊙ skip)
// with w (skip_weights) initialised to 1 and γ (skip_gates) to 0, a convex average at init. It is resid_mix
// of kernels/ops.h with the coefficients (σ(γ_j), (1 − σ(γ_j)) ⊙ w_j) built in fp32: one fused kernel each way.
#include "kernels/ops.h"
#include "models/components.h"

namespace pgolf {
namespace {

struct UnetGatedSkip : SkipConnection {
  explicit UnetGatedSkip(const SkipContext& ctx) : fused_(ctx.fused_kernels) {
    skip_weights = register_parameter("skip_weights", torch::ones({ctx.count, ctx.dim}));
    skip_gates = register_parameter("skip_gates", torch::zeros({ctx.count, ctx.dim}));
  }
  torch::Tensor merge(const torch::Tensor& x, const torch::Tensor& skip, int64_t j) override {
    auto g = torch::sigmoid(skip_gates[j]);
    return kernels::resid_mix(x, skip, torch::stack({g, (1 - g) * skip_weights[j]}), fused_);
  }
  torch::Tensor skip_weights, skip_gates;
  bool fused_;
};

PGOLF_REGISTER(SkipRegistry, "unet_gated", Schema(),
               [](const Config&, const SkipContext& ctx) -> std::shared_ptr<SkipConnection> {
                 return std::make_shared<UnetGatedSkip>(ctx);
               },
               "sigmoid(g_j) * x + (1 - sigmoid(g_j)) * w_j * encoder output, g = 0 and w = 1 at init (family A)");

}  // namespace
}  // namespace pgolf
