// Post-training stages that hand the trained model to the training hooks (framework/training_hook.h):
//   apply_averaging  every hook's finish(): EMA/SWA put the averaged weights in, late QAT switches off
//   prune            every hook's before_export(): magnitude pruning (#461)
#include "framework/pipeline.h"

namespace pgolf {
namespace {

struct ApplyAveraging : PipelineStage {
  void run(PipelineContext& ctx) override {
    for (auto& h : ctx.hooks) h->finish(*ctx.trained);
  }
};

struct Prune : PipelineStage {
  void run(PipelineContext& ctx) override {
    for (auto& h : ctx.hooks) h->before_export(*ctx.trained);
  }
};

PGOLF_REGISTER(StageRegistry, "apply_averaging", Schema(),
               [](const Config&) -> std::shared_ptr<PipelineStage> { return std::make_shared<ApplyAveraging>(); },
               "training hooks' finish: the averaged weights (EMA, SWA) replace the trained ones");
PGOLF_REGISTER(StageRegistry, "prune", Schema(),
               [](const Config&) -> std::shared_ptr<PipelineStage> { return std::make_shared<Prune>(); },
               "training hooks' before_export: pruning before quantisation (magnitude_prune)");

}  // namespace
}  // namespace pgolf
