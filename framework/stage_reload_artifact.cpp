// Post-training stage "reload_artifact": the artifact is the truth — a fresh model is built from the
// recipe and loaded from the artifact file's bytes alone (decompress → deserialise → dequantise), and every
// later stage scores that model, exactly as the challenge scores a submission.
#include "framework/io.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

struct ReloadArtifact : PipelineStage {
  void run(PipelineContext& ctx) override {
    const ArtifactDraft& a = ctx.artifact;
    const std::string blob = read_file(a.path);
    auto model = ctx.fresh_model();
    load_named_state(*model, a.quantizer->dequantize(deserialize_state(a.compressor->decompress(blob), a.path)), a.path);
    ctx.scored = model;
  }
  std::vector<std::string> needs() const override { return {"artifact_file"}; }
};

PGOLF_REGISTER(StageRegistry, "reload_artifact", Schema(),
               [](const Config&) -> std::shared_ptr<PipelineStage> { return std::make_shared<ReloadArtifact>(); },
               "rebuilds the model from the artifact file's bytes alone; later stages score it");

}  // namespace
}  // namespace pgolf
