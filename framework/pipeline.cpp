#include "framework/pipeline.h"

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
  return out;
}

void run_pipeline(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx) {
  for (const auto& s : stages) s->run(ctx);
}

}  // namespace pgolf
