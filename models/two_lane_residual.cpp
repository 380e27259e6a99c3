// The two-lane decoder (A2, spec §2.11). From block start_layer on, the decoder keeps two residual lanes
// (both equal to x at the first such entry); per layer ℓ, with A and M the block's branch outputs,
//   lane0 ← ρ_{ℓ,0}·lane0 + π_{ℓ,0,0}·A + π_{ℓ,1,0}·M
//   lane1 ← ρ_{ℓ,1}·lane1 + π_{ℓ,0,1}·A + π_{ℓ,1,1}·M
// ρ = parallel_resid_lambdas (L×2, init 1.1), π = parallel_post_lambdas (L×2×2, init 1; source, then
// destination lane). All L rows exist, only those of lane layers are used. Final hidden: the lane mean.
// Each lane update is one resid_mix (ρ·lane + π₀·a ⊙ attn) and one scale_add (+ π₁·m ⊙ mlp) of kernels/ops.h,
// with the per-channel coefficients built in fp32: two fused kernels instead of a dozen broadcast products.
#include "kernels/ops.h"
#include "models/components.h"

namespace pgolf {
namespace {

struct TwoLaneResidual : LaneMixer {
  TwoLaneResidual(const Config& cfg, const LayerContext& ctx)
      : start_(cfg.i("start_layer")), final_(cfg.s("final")), fused_(ctx.fused_kernels) {
    parallel_resid_lambdas = register_parameter("parallel_resid_lambdas", torch::full({ctx.num_layers, 2}, cfg.f("resid_init")));
    parallel_post_lambdas = register_parameter("parallel_post_lambdas", torch::full({ctx.num_layers, 2, 2}, cfg.f("post_init")));
  }

  int64_t start_layer() const override { return start_; }

  std::pair<torch::Tensor, torch::Tensor> mix(int64_t layer, const torch::Tensor& lane0, const torch::Tensor& lane1,
                                              const LaneBranches& b) override {
    auto rho = parallel_resid_lambdas[layer], pi = parallel_post_lambdas[layer];
    auto lane = [&](int64_t k, const torch::Tensor& x) {
      auto mix = torch::stack({rho[k].expand_as(b.attn_scale), pi[0][k] * b.attn_scale});  // (2, D) fp32
      return kernels::scale_add(kernels::resid_mix(x, b.attn, mix, fused_), pi[1][k] * b.mlp_scale, b.mlp, fused_);
    };
    return {lane(0, lane0), lane(1, lane1)};
  }

  torch::Tensor merge(const torch::Tensor& lane0, const torch::Tensor& lane1) override {
    if (final_ == "lane0") return lane0;
    if (final_ == "lane1") return lane1;
    return 0.5 * (lane0 + lane1);
  }

  int64_t start_;
  std::string final_;
  bool fused_;
  torch::Tensor parallel_resid_lambdas, parallel_post_lambdas;
};

Schema schema() {
  return Schema()
      .integer("start_layer", 8, 0, 4096, "decoder entries whose block index is at least this run in two lanes")
      .choice("final", "mean", {"mean", "lane0", "lane1"}, "the final hidden state: the lanes' mean, or one lane")
      .number("resid_init", 1.1, -1e6, 1e6, "initial lane residual weights rho")
      .number("post_init", 1.0, -1e6, 1e6, "initial branch-to-lane weights pi");
}

PGOLF_REGISTER(LaneRegistry, "two_lane", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<LaneMixer> {
                 return std::make_shared<TwoLaneResidual>(cfg, ctx);
               },
               "two residual lanes with learned mixing in the late decoder, final = lane mean (A2)");

}  // namespace
}  // namespace pgolf
