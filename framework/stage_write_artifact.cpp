// Post-training stage "write_artifact": packs the quantised state with the recipe's container (posttrain §7),
// writes RUN_DIR/artifact.bin (rank 0, atomically), counts the code (§7.4, framework/code_size.h), and checks
// model + code bytes against the decimal budget. The byte count is that of the file written.
#include <chrono>
#include <filesystem>

#include "framework/code_size.h"
#include "framework/io.h"
#include "framework/log.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

class WriteArtifact : public PipelineStage {
 public:
  // The container is built here, so what it needs (lrzip for pergroup) is checked before training.
  explicit WriteArtifact(const Config& c)
      : container_(ContainerRegistry::get().build(c.sub("container"))),
        name_(c.sub("container").name()),
        budget_(c.i("budget_bytes")),
        code_(c.sub("code")) {}

  void check(const Json& recipe) const override { check_code_sources(code_, recipe); }

  void run(PipelineContext& ctx) override {
    const std::string path = ctx.dir.file("artifact.bin");
    const auto t0 = std::chrono::steady_clock::now();
    if (ctx.comm.rank() == 0) write_file_atomic(path, container_->pack(ctx.artifact.state));
    ctx.comm.barrier();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ctx.summary["artifact_pack_seconds"] = secs;
    ctx.artifact.path = path;
    account(ctx, strf("packed in %.1fs", secs));
  }

  // An existing artifact (ctx.artifact.path) is accounted for as if this stage had written it.
  void adopt(PipelineContext& ctx) override { account(ctx, "existing file"); }

  std::vector<std::string> needs() const override { return {"quantized_state"}; }
  std::vector<std::string> makes() const override { return {"artifact_file"}; }

 private:
  void account(PipelineContext& ctx, const std::string& how) {
    const int64_t model = static_cast<int64_t>(std::filesystem::file_size(ctx.artifact.path));
    const CodeCount code = count_code(code_, ctx.recipe.resolved);
    const Json s = budget_summary(model, code, budget_);
    const int64_t total = s["artifact_bytes"].get<int64_t>();
    log::info(strf("artifact: %lld bytes model (%s, %s) + %lld bytes code = %lld bytes (budget %lld: %s)",
                   (long long)model, name_.c_str(), how.c_str(), (long long)code.bytes, (long long)total,
                   (long long)budget_, s["within_budget"].get<bool>() ? "within" : "OVER"));
    log::info("code counted: " + code.how);
    ctx.artifact.container = container_;
    ctx.artifact.model_bytes = model;
    ctx.artifact.code_bytes = code.bytes;
    for (const auto& [k, v] : s.items()) ctx.summary[k] = v;
    ctx.summary["artifact_container"] = name_;
    ctx.summary["artifact"] = ctx.artifact.path;
  }

  std::shared_ptr<Container> container_;
  std::string name_;
  int64_t budget_;
  Config code_;
};

PGOLF_REGISTER(StageRegistry, "write_artifact",
               Schema()
                   .component("container", "container", "archive",
                              "artifact format: archive (+ compressor), standard, zstd22, pergroup (posttrain 7)")
                   .integer("budget_bytes", 16000000, 0, 1e12, "decimal byte budget for weights + code")
                   .section("code", code_count_schema(), "code-size accounting"),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<WriteArtifact>(c); },
               "packs the quantised state with the container and writes artifact.bin; counts the code; checks the budget");

}  // namespace
}  // namespace pgolf
