// Post-training stage "quantize": the recipe's quantiser turns the trained model's state (after averaging
// and pruning) into the QuantizedState the artifact stores, with the Hessians any calibration stage collected.
#include "framework/pipeline.h"

namespace pgolf {
namespace {

class Quantize : public PipelineStage {
 public:
  explicit Quantize(const Config& c) : quantizer_(QuantizerRegistry::get().build(c.sub("quantizer"))) {}

  void run(PipelineContext& ctx) override {
    const QuantizerContext q{ctx.trained.get(), named_state(*ctx.trained), ctx.hessians, ctx.device, ctx.comm};
    ctx.artifact.state = quantizer_->quantize(q);
    ctx.artifact.quantizer = quantizer_;
  }

  std::vector<std::string> makes() const override { return {"quantized_state"}; }
  void adopt(PipelineContext& ctx) override { ctx.artifact.quantizer = quantizer_; }

 private:
  std::shared_ptr<Quantizer> quantizer_;
};

PGOLF_REGISTER(StageRegistry, "quantize", Schema().component("quantizer", "quantizer", "int8_row", "weight quantiser"),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<Quantize>(c); },
               "quantises the trained weights into the state the artifact stores");

}  // namespace
}  // namespace pgolf
