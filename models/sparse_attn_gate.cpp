// SparseAttnGate (#1855, spec §2.5): g_{t,h} = σ(s · W · n_t[:window]), W ∈ R^{H×window} zero-initialised,
// so g = 0.5 at init (attention halved). It reads the attention input n = RMSNorm(x_in)·f_ℓ.
#include "models/components.h"

namespace pgolf {
namespace {

struct SparseAttnGate : AttentionGate {
  SparseAttnGate(const Config& cfg, const LayerContext& ctx) : window_(cfg.i("window")), scale_(cfg.f("scale")) {
    cfg.check(window_ <= ctx.dim, "window", "at most model.dim (" + std::to_string(ctx.dim) + ")");
    attn_gate_w = register_parameter("attn_gate_w", torch::zeros({ctx.heads, window_}));
  }

  torch::Tensor values(const AttentionInput& in) override {
    auto u = in.x.narrow(-1, 0, window_);
    return torch::sigmoid(scale_ * torch::nn::functional::linear(u, attn_gate_w.to(u.scalar_type())));  // (B, T, H)
  }
  torch::Tensor input_weight(int64_t D) const override {
    return torch::constant_pad_nd(scale_ * attn_gate_w, {0, D - window_});
  }

  int64_t window_;
  double scale_;
  torch::Tensor attn_gate_w;
};

Schema schema() {
  return Schema()
      .integer("window", 12, 1, 1 << 20, "leading channels of the attention input the gate reads")
      .number("scale", 1.0, -1e6, 1e6, "s in sigmoid(s * W u) (0.5 in #1855)");
}

PGOLF_REGISTER(AttentionGateRegistry, "sparse_attn_gate", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<AttentionGate> {
                 return std::make_shared<SparseAttnGate>(cfg, ctx);
               },
               "per-head sigmoid(s W n[:window]) on the attention output, 0.5 at init (#1855)");

}  // namespace
}  // namespace pgolf
