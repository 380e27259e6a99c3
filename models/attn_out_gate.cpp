// AttnOutGate (#1693, spec §2.5): g_{t,h} = 2σ(W · x_in,t[:window]), W ∈ R^{H×window} zero-initialised, so
// g = 1 at init (the identity). It reads the residual after resid_mix, before the norm and f_ℓ.
#include "models/components.h"

namespace pgolf {
namespace {

struct AttnOutGate : AttentionGate {
  AttnOutGate(const Config& cfg, const LayerContext& ctx) : window_(cfg.i("window")) {
    cfg.check(window_ <= ctx.dim, "window", "at most model.dim (" + std::to_string(ctx.dim) + ")");
    attn_out_gate_w = register_parameter("attn_out_gate_w", torch::zeros({ctx.heads, window_}));
  }

  torch::Tensor values(const AttentionInput& in) override {
    auto u = in.x_in.narrow(-1, 0, window_);
    return 2.0 * torch::sigmoid(torch::nn::functional::linear(u, attn_out_gate_w.to(u.scalar_type())));  // (B, T, H)
  }

  int64_t window_;
  torch::Tensor attn_out_gate_w;
};

PGOLF_REGISTER(AttentionGateRegistry, "attn_out_gate",
               Schema().integer("window", 12, 1, 1 << 20, "leading residual channels the gate reads"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<AttentionGate> {
                 return std::make_shared<AttnOutGate>(cfg, ctx);
               },
               "per-head 2*sigmoid(W x_in[:window]) on the attention output, identity at init (#1693)");

}  // namespace
}  // namespace pgolf
