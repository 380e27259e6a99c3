// The sequential residual block (spec training §2.2):
//   x_in  = μ0 ⊙ x + μ1 ⊙ x0
//   x_mid = x_in + a ⊙ Attn(RMSNorm(x_in) · f_ℓ)
//   x_out = x_mid + m ⊙ MLP(RMSNorm(x_mid) · f_ℓ)
// with f_ℓ = 1/√(ℓ+1) when ln_scale is on (family A, #461) and 1 otherwise (the challenge baseline).
#include <cmath>

#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct SequentialBlock : Block {
  SequentialBlock(const Config& cfg, const LayerContext& ctx, const Config& model) {
    attn = register_module("attn", AttentionRegistry::get().build(model.sub("attention"), ctx));
    mlp = register_module("mlp", MlpRegistry::get().build(model.sub("mlp"), ctx));
    attn_scale = register_parameter("attn_scale", torch::ones({ctx.dim}));
    mlp_scale = register_parameter("mlp_scale", torch::ones({ctx.dim}));
    resid_mix = register_parameter("resid_mix", torch::stack({torch::ones({ctx.dim}), torch::zeros({ctx.dim})}));
    ln_factor_ = cfg.b("ln_scale") ? 1.0 / std::sqrt(static_cast<double>(ctx.layer + 1)) : 1.0;
  }

  torch::Tensor forward(const torch::Tensor& x_, const torch::Tensor& x0) override {
    const auto dt = x_.scalar_type();
    auto mix = resid_mix.to(dt);
    auto x = mix[0] * x_ + mix[1] * x0;
    auto n = rms_norm(x);
    if (ln_factor_ != 1.0) n = n * ln_factor_;
    x = x + attn_scale.to(dt) * attn->forward(n);
    n = rms_norm(x);
    if (ln_factor_ != 1.0) n = n * ln_factor_;
    return x + mlp_scale.to(dt) * mlp->forward(n);
  }

  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
  torch::Tensor attn_scale, mlp_scale, resid_mix;
  double ln_factor_ = 1.0;
};

PGOLF_REGISTER(BlockRegistry, "sequential",
               Schema().boolean("ln_scale", false, "scale normalised inputs by 1/sqrt(layer+1)"),
               [](const Config& cfg, const LayerContext& ctx, const Config& model) -> std::shared_ptr<Block> {
                 return std::make_shared<SequentialBlock>(cfg, ctx, model);
               },
               "resid_mix, then attention and MLP in sequence, each with a learned per-channel scale");

}  // namespace
}  // namespace pgolf
