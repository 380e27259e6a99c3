#include "framework/pipeline.h"

#include <algorithm>
#include <set>

namespace pgolf {

std::vector<std::shared_ptr<PipelineStage>> build_pipeline(const Config& root) {
  std::vector<std::shared_ptr<PipelineStage>> out;
  std::set<std::string> made;
  for (const auto& s : root.list("pipeline")) {
    out.push_back(StageRegistry::get().build(s));
    for (const auto& need : out.back()->needs())
      if (!made.count(need))
        throw ConfigError(s.path() + " (" + s.name() + "): needs " + need + ", which no earlier stage makes; put the "
                          "stage that makes it (quantize: quantized_state, write_artifact: artifact_file) before it");
    for (const auto& m : out.back()->makes()) made.insert(m);
  }
  for (const auto& s : out) s->check(root.json());
  return out;
}

void run_pipeline(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx) {
  for (const auto& s : stages) s->run(ctx);
}

void run_pipeline_on_artifact(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx) {
  bool reached = false;
  for (const auto& s : stages) {
    const auto needs = s->needs();
    reached = reached || std::find(needs.begin(), needs.end(), "artifact_file") != needs.end();
    if (reached) s->run(ctx);
    else s->adopt(ctx);
  }
  if (!reached) throw ConfigError("pipeline: no stage reads the artifact (reload_artifact), so it cannot be scored");
}

}  // namespace pgolf
