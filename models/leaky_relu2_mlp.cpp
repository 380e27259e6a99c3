// The LeakyReLU² MLP of family A (spec §2.4): out = W_down · (LeakyReLU_s(W_up · n))², slope s = 0.5
// (0.3 in #1938's run). Its backward gate is 2z for z > 0 and 2s²z for z ≤ 0.
#include "kernels/ops.h"
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct LeakyRelu2Mlp : Mlp {
  LeakyRelu2Mlp(const Config& cfg, const LayerContext& ctx) : slope_(cfg.f("slope")), fused_(ctx.fused_kernels) {
    const auto hidden = static_cast<int64_t>(cfg.f("mult") * static_cast<double>(ctx.dim));
    fc = register_module("fc", CastedLinear(ctx.dim, hidden));
    proj = register_module("proj", CastedLinear(hidden, ctx.dim));
    fc->initialize(ctx.linear_init);
    proj->initialize("zeros");
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return proj(kernels::leaky_relu2(fc(x), slope_, fused_));
  }
  double slope_;
  bool fused_;
  CastedLinear fc{nullptr}, proj{nullptr};
};

Schema schema() {
  return Schema()
      .number("mult", 4.0, 0.0625, 64.0, "hidden width = mult * dim")
      .number("slope", 0.5, 0.0, 1.0, "negative slope of the LeakyReLU before squaring");
}

PGOLF_REGISTER(MlpRegistry, "leaky_relu2", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Mlp> {
                 return std::make_shared<LeakyRelu2Mlp>(cfg, ctx);
               },
               "LeakyReLU(slope) squared MLP (family A)");

}  // namespace
}  // namespace pgolf
