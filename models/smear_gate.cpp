// The scalar-gated SmearGate (spec §2.6), driven by the current token's first `window` channels:
//   x_t ← x_t + λ · σ(w · x_t[:window]) · x_{t−1} · 𝟙[tok_t ≠ BOS]     (t ≥ 1; position 0 unchanged)
// with w = 0 and λ = 0 at init (the identity). Two registered forms:
//   "scalar"    (#1693): no BOS mask, after the embedding norm; w is `smear_w` (window).
//   "bos_fixed" (#1855): BOS mask (so a document's first token takes nothing from the previous document),
//                        before the embedding norm; w is the 1×window `smear_gate` linear layer.
#include "models/components.h"
#include "models/layers.h"
#include "framework/shard.h"

namespace pgolf {
namespace {

struct ScalarSmearGate : Smear {
  ScalarSmearGate(const Config& cfg, const LayerContext& ctx, bool bos_mask)
      : window_(cfg.i("window")), before_norm_(cfg.s("placement") == "before_norm"), bos_mask_(bos_mask),
        bos_id_(bos_mask ? cfg.i("bos_id") : -1) {
    cfg.check(window_ <= ctx.dim, "window", "at most model.dim (" + std::to_string(ctx.dim) + ")");
    if (bos_mask_) {
      smear_gate = register_module("smear_gate", CastedLinear(window_, 1));
      smear_gate->initialize("zeros");
    } else {
      smear_w = register_parameter("smear_w", torch::zeros({window_}));
    }
    smear_lambda = register_parameter("smear_lambda", torch::zeros({1}));
  }

  bool before_norm() const override { return before_norm_; }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& ids) override {
    const int64_t T = x.size(1);
    if (T < 2) return x;
    const auto dt = x.scalar_type();
    auto cur = x.narrow(1, 1, T - 1), prev = x.narrow(1, 0, T - 1);
    auto u = cur.narrow(-1, 0, window_);
    auto z = bos_mask_ ? smear_gate(u) : torch::matmul(u, smear_w.to(dt)).unsqueeze(-1);  // (B, T-1, 1)
    auto g = smear_lambda.to(dt) * torch::sigmoid(z);
    if (bos_mask_) g = g * ids.narrow(1, 1, T - 1).ne(bos_id_).unsqueeze(-1).to(dt);
    return torch::cat({x.narrow(1, 0, 1), cur + g * prev}, 1);
  }

  int64_t window_;
  bool before_norm_, bos_mask_;
  int64_t bos_id_;
  CastedLinear smear_gate{nullptr};
  torch::Tensor smear_w, smear_lambda;
};

Schema scalar_schema() {
  return Schema()
      .integer("window", 12, 1, 1 << 20, "leading channels of the current position that drive the gate")
      .choice("placement", "after_norm", {"before_norm", "after_norm"},
              "apply to the raw embedding or to the RMS-normalised one");
}

Schema bos_schema() {
  return Schema()
      .integer("window", 12, 1, 1 << 20, "leading channels of the current position that drive the gate")
      .choice("placement", "before_norm", {"before_norm", "after_norm"},
              "apply to the raw embedding or to the RMS-normalised one")
      .integer("bos_id", kBosId, 0, 1 << 30, "the document-start token; positions holding it take nothing from before");
}

PGOLF_REGISTER(SmearRegistry, "scalar", scalar_schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Smear> {
                 return std::make_shared<ScalarSmearGate>(cfg, ctx, /*bos_mask=*/false);
               },
               "x_t += lambda * sigmoid(w . x_t[:window]) * x_{t-1}, identity at init (#1693)");
PGOLF_REGISTER(SmearRegistry, "bos_fixed", bos_schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Smear> {
                 return std::make_shared<ScalarSmearGate>(cfg, ctx, /*bos_mask=*/true);
               },
               "the scalar SmearGate masked at BOS, on the raw embedding, identity at init (#1855)");

}  // namespace
}  // namespace pgolf
