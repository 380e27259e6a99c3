// Post-training stage "evaluate": scores the context's current model (the trained one, or the one rebuilt
// from the artifact's bytes after reload_artifact) with the stage's own evaluator, so an expensive evaluator
// (sliding windows, test-time training) runs only where the recipe puts it. Writes <label>_val_loss and
// <label>_val_bpb to the summary; val_loss / val_bpb are the last evaluate stage's (the headline figures).
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "framework/log.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

class Evaluate : public PipelineStage {
 public:
  explicit Evaluate(const Config& c) : label_(c.s("label")), evaluator_(EvaluatorRegistry::get().build(c.sub("evaluator"))) {}

  void run(PipelineContext& ctx) override {
    EvalContext ectx = ctx.eval;
    ectx.stage = label_;
    if (ctx.device.is_cuda()) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    EvalResult r = evaluator_->evaluate(*ctx.scored, ctx.val, ctx.bytes, ectx);
    if (const char* nan = std::getenv("PGOLF_INJECT_NAN_EVAL"); nan && label_ == nan) r.loss_sum = NAN;  // tests' fault
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info(strf("%s: val_loss %.4f val_bpb %.4f (%lld tokens, %.1fs)", label_.c_str(), r.val_loss(), r.val_bpb(),
                   (long long)r.tokens, seconds));
    record_score(ctx, label_, r, seconds);
    Json& s = ctx.summary;  // the headline: the last evaluate stage's
    s["val_tokens"] = r.tokens;
    s["val_bytes"] = r.bytes;
    s["val_loss"] = r.val_loss();
    s["val_bpb"] = r.val_bpb();
  }

 private:
  std::string label_;
  std::shared_ptr<Evaluator> evaluator_;
};

PGOLF_REGISTER(StageRegistry, "evaluate",
               Schema()
                   .string("label", "pre_quant", "names the figures: <label>_val_bpb in summary.json, the metrics' stage")
                   .component("evaluator", "evaluator", "full", "how this stage scores the model"),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<Evaluate>(c); },
               "scores the current model (trained, or rebuilt from the artifact) with its own evaluator");

}  // namespace
}  // namespace pgolf
