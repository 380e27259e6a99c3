// Additive U-Net skips (challenge baseline, #461): before decoder entry j, x ← x + w_j ⊙ skip,
// w ∈ R^{count×d} initialised to 1.
#include "models/components.h"

namespace pgolf {
namespace {

struct UnetAdditiveSkip : SkipConnection {
  explicit UnetAdditiveSkip(const SkipContext& ctx) {
    skip_weights = register_parameter("skip_weights", torch::ones({ctx.count, ctx.dim}));
  }
  torch::Tensor merge(const torch::Tensor& x, const torch::Tensor& skip, int64_t j) override {
    return x + skip_weights[j].to(x.scalar_type()) * skip;
  }
  torch::Tensor skip_weights;
};

PGOLF_REGISTER(SkipRegistry, "unet_additive", Schema(),
               [](const Config&, const SkipContext& ctx) -> std::shared_ptr<SkipConnection> {
                 return std::make_shared<UnetAdditiveSkip>(ctx);
               },
               "x + w_j * encoder output, w initialised to 1");

}  // namespace
}  // namespace pgolf
