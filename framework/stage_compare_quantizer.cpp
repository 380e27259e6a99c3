// Post-training stage "compare_quantizer": what another quantiser (and container) would give on the same
// trained weights — a copy is quantised, optionally packed, rebuilt from its dequantised state and scored,
// so one run reports e.g. the int6 RTN gap beside GPTQ's, or the bytes of a smaller bit allocation. The
// artifact, the scored model and the Hessians are left as they were. Writes <label>_val_bpb,
// <label>_model_bytes and their seconds to the summary (never val_bpb: the headline stays the artifact's).
#include <chrono>

#include "framework/log.h"
#include "framework/named_state.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class CompareQuantizer : public PipelineStage {
 public:
  explicit CompareQuantizer(const Config& c)
      : label_(c.s("label")),
        quantizer_(QuantizerRegistry::get().build(c.sub("quantizer"))),
        hessians_(c.b("hessians")),
        pack_(c.b("pack")),
        container_(pack_ ? ContainerRegistry::get().build(c.sub("container")) : nullptr),
        evaluator_(EvaluatorRegistry::get().build(c.sub("evaluator"))) {}

  void run(PipelineContext& ctx) override {
    const std::map<std::string, torch::Tensor> none;
    auto t0 = std::chrono::steady_clock::now();
    const QuantizerContext q{ctx.trained.get(), named_state(*ctx.trained), hessians_ ? ctx.hessians : none, ctx.device,
                             ctx.comm};
    const QuantizedState state = quantizer_->quantize(q);
    Json& s = ctx.summary;
    s[label_ + "_quantize_seconds"] = seconds_since(t0);
    if (pack_) {  // rank 0 packs (the bytes are only counted, never written) and tells the others
      t0 = std::chrono::steady_clock::now();
      torch::Tensor n = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat64).device(ctx.device));
      if (ctx.comm.rank() == 0) n.fill_(static_cast<double>(container_->pack(state).size()));
      if (ctx.comm.world() > 1) ctx.comm.broadcast(n, 0);
      s[label_ + "_model_bytes"] = static_cast<int64_t>(n.item<double>());
      s[label_ + "_pack_seconds"] = seconds_since(t0);
    }
    auto model = ctx.fresh_model();
    load_named_state(*model, quantizer_->dequantize(state), "stage '" + label_ + "'");
    EvalContext ectx = ctx.eval;
    ectx.stage = label_;
    t0 = std::chrono::steady_clock::now();
    const EvalResult r = evaluator_->evaluate(*model, ctx.val, ctx.bytes, ectx);
    log::info(strf("%s (compared quantiser): val_loss %.4f val_bpb %.4f%s", label_.c_str(), r.val_loss(), r.val_bpb(),
                   pack_ ? strf(", %lld model bytes", (long long)s[label_ + "_model_bytes"].get<int64_t>()).c_str() : ""));
    record_score(ctx, label_, r, seconds_since(t0));
  }

 private:
  std::string label_;
  std::shared_ptr<Quantizer> quantizer_;
  bool hessians_, pack_;
  std::shared_ptr<Container> container_;
  std::shared_ptr<Evaluator> evaluator_;
};

PGOLF_REGISTER(StageRegistry, "compare_quantizer",
               Schema()
                   .string("label", "rtn", "names the figures: <label>_val_bpb, <label>_model_bytes in summary.json")
                   .component("quantizer", "quantizer", "int8_row", "the quantiser compared with the artifact's")
                   .boolean("hessians", true, "give it the calibration's Hessians (false: GPTQ becomes SD-clip RTN)")
                   .boolean("pack", true, "pack the compared state with `container` and report its bytes")
                   .component("container", "container", "standard", "the format its bytes are counted in")
                   .component("evaluator", "evaluator", "full", "how the compared model is scored"),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<CompareQuantizer>(c); },
               "scores (and sizes) another quantiser on the trained weights; the artifact is untouched");

}  // namespace
}  // namespace pgolf
