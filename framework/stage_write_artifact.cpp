// Post-training stage "write_artifact": serialises the quantised state, compresses it, writes
// RUN_DIR/artifact.bin (rank 0, atomically), counts the code, and checks model + code bytes against the
// decimal budget. The byte count is that of the file written.
#include <filesystem>

#include "framework/code_size.h"
#include "framework/io.h"
#include "framework/log.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

class WriteArtifact : public PipelineStage {
 public:
  explicit WriteArtifact(const Config& c)
      : compressor_(CompressorRegistry::get().build(c.sub("compressor"))), budget_(c.i("budget_bytes")), code_(c.sub("code")) {}

  void run(PipelineContext& ctx) override {
    const std::string path = ctx.dir.file("artifact.bin");
    if (ctx.comm.rank() == 0) write_file_atomic(path, compressor_->compress(serialize_state(ctx.artifact.state)));
    ctx.comm.barrier();
    const int64_t model = static_cast<int64_t>(std::filesystem::file_size(path));
    const int64_t code = count_code_bytes(code_, *compressor_);
    const int64_t total = model + code;
    log::info(strf("artifact: %lld bytes model + %lld bytes code = %lld bytes (budget %lld: %s)", (long long)model,
                   (long long)code, (long long)total, (long long)budget_, total <= budget_ ? "within" : "OVER"));
    ctx.artifact.compressor = compressor_;
    ctx.artifact.path = path;
    ctx.artifact.model_bytes = model;
    ctx.artifact.code_bytes = code;
    Json& s = ctx.summary;
    s["artifact_bytes"] = total;
    s["artifact_model_bytes"] = model;
    s["artifact_code_bytes"] = code;
    s["within_budget"] = total <= budget_;
    s["artifact"] = path;
  }

  std::vector<std::string> needs() const override { return {"quantized_state"}; }
  std::vector<std::string> makes() const override { return {"artifact_file"}; }

 private:
  std::shared_ptr<Compressor> compressor_;
  int64_t budget_;
  Config code_;
};

PGOLF_REGISTER(StageRegistry, "write_artifact",
               Schema()
                   .component("compressor", "compressor", "zlib", "byte compressor of the serialised weights")
                   .integer("budget_bytes", 16000000, 0, 1e12, "decimal byte budget for weights + code")
                   .section("code", code_count_schema(), "code-size accounting"),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<WriteArtifact>(c); },
               "serialises, compresses and writes artifact.bin; counts the code; checks the budget");

}  // namespace
}  // namespace pgolf
