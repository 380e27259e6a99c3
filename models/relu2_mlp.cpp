// The ReLU² MLP of the challenge baseline and #461: out = W_down · relu(W_up · n)².
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct Relu2Mlp : Mlp {
  Relu2Mlp(const Config& cfg, const LayerContext& ctx) {
    const auto hidden = static_cast<int64_t>(cfg.f("mult") * static_cast<double>(ctx.dim));
    fc = register_module("fc", CastedLinear(ctx.dim, hidden));
    proj = register_module("proj", CastedLinear(hidden, ctx.dim));
    fc->initialize(ctx.linear_init);
    proj->initialize("zeros");
  }
  torch::Tensor forward(const torch::Tensor& x) override { return proj(torch::relu(fc(x)).square()); }
  CastedLinear fc{nullptr}, proj{nullptr};
};

PGOLF_REGISTER(MlpRegistry, "relu2", Schema().number("mult", 2.0, 0.0625, 64.0, "hidden width = mult * dim"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Mlp> {
                 return std::make_shared<Relu2Mlp>(cfg, ctx);
               },
               "ReLU squared MLP");

}  // namespace
}  // namespace pgolf
