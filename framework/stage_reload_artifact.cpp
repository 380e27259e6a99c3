// Post-training stage "reload_artifact": the artifact is the truth — a fresh model is built from the
// recipe and loaded from the artifact file's bytes alone (container unpack → dequantise), and every later
// stage scores that model, exactly as the challenge scores a submission.
#include <chrono>

#include "framework/io.h"
#include "framework/log.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

struct ReloadArtifact : PipelineStage {
  void run(PipelineContext& ctx) override {
    const ArtifactDraft& a = ctx.artifact;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string blob = read_file(a.path);
    const QuantizedState q = a.container->unpack(blob, a.path);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto model = ctx.fresh_model();
    try {
      load_named_state(*model, a.quantizer->dequantize(q), a.path);
    } catch (const std::exception& e) {  // a foreign state in an intact container
      if (std::string(e.what()).find(a.path) == 0) throw;
      throw std::runtime_error(a.path + ": does not fit the recipe's quantiser and model: " + e.what());
    }
    log::info(strf("artifact reloaded from %s (%zu bytes, unpacked in %.1fs)", a.path.c_str(), blob.size(), secs));
    ctx.summary["artifact_unpack_seconds"] = secs;
    ctx.scored = model;
  }
  std::vector<std::string> needs() const override { return {"artifact_file"}; }
};

PGOLF_REGISTER(StageRegistry, "reload_artifact", Schema(),
               [](const Config&) -> std::shared_ptr<PipelineStage> { return std::make_shared<ReloadArtifact>(); },
               "rebuilds the model from the artifact file's bytes alone; later stages score it");

}  // namespace
}  // namespace pgolf
