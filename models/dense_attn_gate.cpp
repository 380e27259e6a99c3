// Dense gated attention (Qwen G1, present but off in #1855/#1938, spec §2.5): g_{t,h} = σ(W · n_t),
// W ∈ R^{H×d} drawn from N(0, init_std²), so g ≈ 0.5 at init.
#include "models/components.h"

namespace pgolf {
namespace {

struct DenseAttnGate : AttentionGate {
  DenseAttnGate(const Config& cfg, const LayerContext& ctx) {
    attn_gate_w = register_parameter("attn_gate_w", torch::empty({ctx.heads, ctx.dim}));
    torch::NoGradGuard g;
    attn_gate_w.normal_(0.0, cfg.f("init_std"));
  }

  torch::Tensor values(const AttentionInput& in) override {
    return torch::sigmoid(torch::nn::functional::linear(in.x, attn_gate_w.to(in.x.scalar_type())));  // (B, T, H)
  }
  torch::Tensor input_weight(int64_t /*D*/) const override { return attn_gate_w; }

  torch::Tensor attn_gate_w;
};

PGOLF_REGISTER(AttentionGateRegistry, "dense_attn_gate",
               Schema().number("init_std", 0.01, 0.0, 10.0, "std of the gate weight's normal init"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<AttentionGate> {
                 return std::make_shared<DenseAttnGate>(cfg, ctx);
               },
               "per-head sigmoid(W n) over the whole attention input (Qwen gated attention G1)");

}  // namespace
}  // namespace pgolf
