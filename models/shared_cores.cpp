// #461's shared cores (spec §2.10): `cores` attention+MLP cores serve the L blocks, block i running on core
// i mod cores (with 10 cores and 11 blocks, block 10 reuses core 0); each block keeps its own norms,
// scales, resid_mix and f_ℓ. The model scales the gradient of a core used k times by 1/k.
#include "models/components.h"

namespace pgolf {
namespace {

struct SharedCores : Recurrence {
  SharedCores(const Config& cfg, const LayerContext& ctx) : Recurrence(ctx.num_layers), cores_(cfg.i("cores")) {
    cfg.check(cores_ <= ctx.num_layers, "cores", "at most model.layers (" + std::to_string(ctx.num_layers) + ")");
  }
  int64_t num_cores() const override { return cores_; }
  int64_t core_of(int64_t layer) const override { return layer % cores_; }
  int64_t cores_;
};

PGOLF_REGISTER(RecurrenceRegistry, "shared_cores",
               Schema().integer("cores", 10, 1, 4096, "distinct attention+MLP cores; block i uses core i mod cores"),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Recurrence> {
                 return std::make_shared<SharedCores>(cfg, ctx);
               },
               "blocks share attention+MLP cores round-robin, gradients scaled by 1/uses (#461)");

}  // namespace
}  // namespace pgolf
