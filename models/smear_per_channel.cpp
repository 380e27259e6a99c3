// #461's SmearGate (spec §2.6): x_t ← (1 − σ(γ)) ⊙ x_t + σ(γ) ⊙ x_{t−1} with x_{−1} = 0 and γ ∈ R^d
// initialised to 0, a 50/50 average at init (not the identity). Applied after the embedding RMSNorm.
#include "models/components.h"

namespace pgolf {
namespace {

struct PerChannelSmear : Smear {
  PerChannelSmear(const Config& cfg, const LayerContext& ctx) : before_norm_(cfg.s("placement") == "before_norm") {
    gate = register_parameter("gate", torch::zeros({ctx.dim}));
  }
  bool before_norm() const override { return before_norm_; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& /*ids*/) override {
    auto g = torch::sigmoid(gate.to(x.scalar_type()));
    auto prev = torch::cat({torch::zeros_like(x.narrow(1, 0, 1)), x.narrow(1, 0, x.size(1) - 1)}, 1);
    return (1 - g) * x + g * prev;
  }
  bool before_norm_;
  torch::Tensor gate;
};

PGOLF_REGISTER(SmearRegistry, "per_channel",
               Schema().choice("placement", "after_norm", {"before_norm", "after_norm"},
                               "apply to the raw embedding or to the RMS-normalised one"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Smear> {
                 return std::make_shared<PerChannelSmear>(cfg, ctx);
               },
               "per-channel sigmoid(gamma) blend with the previous position, 50/50 at init (#461)");

}  // namespace
}  // namespace pgolf
