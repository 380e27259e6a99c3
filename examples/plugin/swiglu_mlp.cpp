// An out-of-tree pgolf component: the SwiGLU MLP (Shazeer 2020, "GLU Variants Improve Transformer"),
// out = W_down · (silu(W_gate · n) ⊙ (W_up · n)). Registered as mlp "swiglu_example"; a recipe selects it with
// "model": {"mlp": {"name": "swiglu_example", "mult": 2.0}} once the trainer is given --plugin libswiglu_mlp.so.
#include "models/components.h"
#include "models/layers.h"

namespace {

using namespace pgolf;

struct SwiGluMlp : Mlp {
  SwiGluMlp(const Config& cfg, const LayerContext& ctx) {
    const auto hidden = static_cast<int64_t>(cfg.f("mult") * static_cast<double>(ctx.dim));
    gate = register_module("gate", CastedLinear(ctx.dim, hidden));
    up = register_module("up", CastedLinear(ctx.dim, hidden));
    down = register_module("down", CastedLinear(hidden, ctx.dim));
    gate->initialize(ctx.linear_init);
    up->initialize(ctx.linear_init);
    down->initialize("zeros");  // the block starts as the identity, like the built-in MLPs
  }
  torch::Tensor forward(const torch::Tensor& x) override { return down(torch::silu(gate(x)) * up(x)); }
  CastedLinear gate{nullptr}, up{nullptr}, down{nullptr};
};

PGOLF_REGISTER(MlpRegistry, "swiglu_example",
               Schema().number("mult", 2.0, 0.0625, 64.0, "hidden width = mult * dim (3 matrices, not 2)"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Mlp> {
                 return std::make_shared<SwiGluMlp>(cfg, ctx);
               },
               "SwiGLU MLP (examples/plugin, out of tree)");

}  // namespace
