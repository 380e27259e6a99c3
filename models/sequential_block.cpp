// The residual block (spec training §2.2), with f_ℓ = 1/√(ℓ+1) when ln_scale is on (family A, #461)
// and 1 otherwise (the challenge baseline); ℓ is the block's own index, so recurrent passes reuse it:
//   x_in  = μ0 ⊙ x + μ1 ⊙ x0
//   x_mid = x_in + a ⊙ Attn(RMSNorm(x_in) · f_ℓ)
//   x_out = x_mid + m ⊙ MLP(RMSNorm(x_mid) · f_ℓ)
// From layer `gptj_parallel_from` on (#1755: 7) both branches read the same input (GPT-J, single lane):
//   x_out = x_in + a ⊙ Attn(RMSNorm(x_in) · f_ℓ) + m ⊙ MLP(RMSNorm(x_in) · f_ℓ)
// The block owns its attention and MLP unless the model hands it a shared core (#461).
#include <cmath>

#include "kernels/ops.h"
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct SequentialBlock : Block {
  SequentialBlock(const Config& cfg, const LayerContext& ctx, const Config& model)
      : layer_(ctx.layer), fused_(ctx.fused_kernels) {
    if (ctx.shared_attn) {  // a shared core's weights: used, not owned (they are registered under cores.*)
      attn = ctx.shared_attn;
      mlp = ctx.shared_mlp;
    } else {
      attn = register_module("attn", AttentionRegistry::get().build(model.sub("attention"), ctx));
      mlp = register_module("mlp", MlpRegistry::get().build(model.sub("mlp"), ctx));
    }
    attn_scale = register_parameter("attn_scale", torch::ones({ctx.dim}));
    mlp_scale = register_parameter("mlp_scale", torch::ones({ctx.dim}));
    resid_mix = register_parameter("resid_mix", torch::stack({torch::ones({ctx.dim}), torch::zeros({ctx.dim})}));
    ln_factor_ = cfg.b("ln_scale") ? 1.0 / std::sqrt(static_cast<double>(ctx.layer + 1)) : 1.0;
    const int64_t from = cfg.i("gptj_parallel_from");
    gptj_ = from >= 0 && ctx.layer >= from;
  }

  // The fused ops of kernels/ops.h: on the CPU (or with model.fused_kernels off) the former compositions.
  torch::Tensor norm(const torch::Tensor& x) const { return kernels::rms_norm_scaled(x, ln_factor_, fused_); }

  // Each residual op and the norm of its result run as one fused op (kernels::mix_norm, scale_add_norm).
  torch::Tensor forward(const torch::Tensor& x, const ForwardContext& ctx) override {
    auto [x_in, n] = kernels::mix_norm(x, ctx.x0, resid_mix, ln_factor_, fused_);
    auto a = attn->forward(AttentionInput{n, x_in, ctx.value_addend(layer_)}, ctx.segments);
    if (gptj_) return kernels::scale_add(kernels::scale_add(x_in, attn_scale, a, fused_), mlp_scale, mlp->forward(n), fused_);
    auto [x_mid, n_mid] = kernels::scale_add_norm(x_in, attn_scale, a, ln_factor_, fused_);
    return kernels::scale_add(x_mid, mlp_scale, mlp->forward(n_mid), fused_);
  }

  LaneBranches lane_branches(const torch::Tensor& lane0, const torch::Tensor& lane1, const ForwardContext& ctx) override {
    auto [x_in, n] = kernels::mix_norm(lane0, ctx.x0, resid_mix, ln_factor_, fused_);
    auto a = attn->forward(AttentionInput{n, x_in, ctx.value_addend(layer_)}, ctx.segments);
    return {a, mlp->forward(norm(lane1)), attn_scale, mlp_scale};  // the MLP lane has no x0 mix
  }

  int64_t layer_;
  bool fused_;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
  torch::Tensor attn_scale, mlp_scale, resid_mix;
  double ln_factor_ = 1.0;
  bool gptj_ = false;
};

Schema schema() {
  return Schema()
      .boolean("ln_scale", false, "scale normalised inputs by 1/sqrt(layer+1)")
      .integer("gptj_parallel_from", -1, -1, 4096,
               "layers from this index on add attention and MLP of the same input (GPT-J; -1 = never)");
}

PGOLF_REGISTER(BlockRegistry, "sequential", schema(),
               [](const Config& cfg, const LayerContext& ctx, const Config& model) -> std::shared_ptr<Block> {
                 return std::make_shared<SequentialBlock>(cfg, ctx, model);
               },
               "resid_mix, then attention and MLP (in sequence, or GPT-J parallel from a layer on), learned scales");

}  // namespace
}  // namespace pgolf
