// Gated U-Net skips (family A, spec §2.9): before decoder entry j,
//   x ← σ(γ_j) ⊙ x + (1 − σ(γ_j)) ⊙ (w_j ⊙ skip)
// with w (skip_weights) initialised to 1 and γ (skip_gates) to 0, a convex average at init.
#include "models/components.h"

namespace pgolf {
namespace {

struct UnetGatedSkip : SkipConnection {
  explicit UnetGatedSkip(const SkipContext& ctx) {
    skip_weights = register_parameter("skip_weights", torch::ones({ctx.count, ctx.dim}));
    skip_gates = register_parameter("skip_gates", torch::zeros({ctx.count, ctx.dim}));
  }
  torch::Tensor merge(const torch::Tensor& x, const torch::Tensor& skip, int64_t j) override {
    const auto dt = x.scalar_type();
    auto scaled = skip_weights[j].to(dt) * skip;
    return torch::lerp(scaled, x, torch::sigmoid(skip_gates[j].to(dt)));
  }
  torch::Tensor skip_weights, skip_gates;
};

PGOLF_REGISTER(SkipRegistry, "unet_gated", Schema(),
               [](const Config&, const SkipContext& ctx) -> std::shared_ptr<SkipConnection> {
                 return std::make_shared<UnetGatedSkip>(ctx);
               },
               "sigmoid(g_j) * x + (1 - sigmoid(g_j)) * w_j * encoder output, g = 0 and w = 1 at init (family A)");

}  // namespace
}  // namespace pgolf
