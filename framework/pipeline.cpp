#include "framework/pipeline.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "framework/log.h"
#include "framework/signals.h"

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

void record_score(PipelineContext& ctx, const std::string& label, const EvalResult& r, double seconds) {
  ctx.dir.metric({{"type", "eval"}, {"step", ctx.step}, {"stage", label}, {"val_loss", r.val_loss()},
                  {"val_bpb", r.val_bpb()}, {"eval_seconds", seconds}});
  require_finite(r, "stage '" + label + "'");
  ctx.summary[label + "_val_loss"] = r.val_loss();
  ctx.summary[label + "_val_bpb"] = r.val_bpb();
  ctx.summary["eval_seconds"][label] = seconds;
}

namespace {

// A stop signal during the pipeline: every rank agrees at the stage boundary (one all-reduce when there are
// several) and the run ends before stage i, naming it; a stage itself is never cut short.
void stop_if_signalled(PipelineContext& ctx, size_t i) {
  if (const char* k = std::getenv("PGOLF_INJECT_SIGNAL_BEFORE_STAGE"); k && std::to_string(i) == k) {
    std::raise(SIGTERM);  // tests' fault: twice, as `timeout` sends it (to the process, then to its group)
    std::raise(SIGTERM);
  }
  int sig = stop_signal();
  if (ctx.comm.world() > 1) {
    torch::Tensor f = torch::full({1}, static_cast<double>(sig), torch::TensorOptions().dtype(torch::kFloat64).device(ctx.device));
    ctx.comm.all_reduce_async(f, ReduceOp::Max)->wait();
    sig = static_cast<int>(f.item<double>());
  }
  if (sig == 0) return;
  const Json& st = ctx.recipe.resolved["pipeline"][i];
  const std::string stage = st.value("name", "?") + (st.contains("label") ? " '" + st["label"].get<std::string>() + "'" : "");
  const std::string ckpt = ctx.dir.file("checkpoint.bin");
  const std::string how = std::filesystem::exists(ckpt)
                              ? "`trainer --resume " + ctx.dir.path() + "` continues from " + ckpt + " and runs the pipeline again"
                              : "no checkpoint holds the trained weights (set train.checkpoint_every to keep one)";
  throw Interrupted(strf("interrupted by %s in the post-training pipeline, before stage pipeline[%zu] (%s), after "
                         "training's %lld steps; no summary.json; %s",
                         signal_name(sig).c_str(), i, stage.c_str(), (long long)ctx.step, how.c_str()),
                    128 + sig);
}

}  // namespace

void run_pipeline(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx) {
  for (size_t i = 0; i < stages.size(); ++i) {
    stop_if_signalled(ctx, i);
    stages[i]->run(ctx);
  }
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
