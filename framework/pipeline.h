// The post-training pipeline: the stages the recipe lists under "pipeline", run in order after the last
// training step, on every rank, sharing one context. The framework default (the recipe schema's default
// list) is apply_averaging → evaluate (pre_quant) → prune → quantize → write_artifact → reload_artifact →
// evaluate (quantized). Each stage is a registered component in a file of its own; the Trainer knows none by
// name. Stages that write files do so on rank 0 and pass a barrier; every rank runs every stage (collectives
// inside a stage are made by all ranks).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "framework/artifact.h"
#include "framework/comm.h"
#include "framework/eval.h"
#include "framework/loader.h"
#include "framework/model.h"
#include "framework/recipe.h"
#include "framework/registry.h"
#include "framework/rundir.h"
#include "framework/training_hook.h"

namespace pgolf {

// The artifact as the stages build it up.
struct ArtifactDraft {
  std::shared_ptr<Quantizer> quantizer;  // set by a quantize stage: how the state was made (and is undone)
  QuantizedState state;
  std::shared_ptr<Container> container;  // set by write_artifact: how the bytes were packed
  std::string path;                        // the written artifact file ("" until written)
  int64_t model_bytes = -1, code_bytes = -1;
};

struct PipelineContext {
  const Recipe& recipe;
  Communicator& comm;
  torch::Device device;
  RunDir& dir;  // rank 0 writes into it
  // The model training produced (averaging and pruning act on it), and the one an evaluate stage scores:
  // the trained model, until reload_artifact replaces it by a model rebuilt from the artifact's bytes.
  std::shared_ptr<LanguageModel> trained;
  std::shared_ptr<LanguageModel> scored;
  // A new model of the recipe on the device, in the state of the end of training (the loop on).
  std::function<std::shared_ptr<LanguageModel>()> fresh_model;
  const TrainingHooks& hooks;
  // Calibration source: the training shards and this rank's batch geometry (calibration reads training
  // data, never validation data).
  LoaderContext train_data;
  // Validation: the stream, the byte counter, and the evaluation context (device, communicator, batch).
  const ValStream& val;
  const ByteCounter& bytes;
  EvalContext eval;
  // The training clock: calibration counts against the training wallclock, so a stage that reads training
  // data adds its time to train_ms and compares with budget_ms (0 = no cap).
  double train_ms = 0;
  double budget_ms = 0;
  int64_t step = 0;  // optimizer steps trained
  // Input-activation Hessians by parameter name (H = sum x^T x over calibration tokens), filled by a
  // calibration stage, read by the quantiser.
  std::map<std::string, torch::Tensor> hessians;
  ArtifactDraft artifact;
  Json summary = Json::object();  // summary.json being filled (the Trainer writes it at the end)
};

struct PipelineStage {
  static constexpr const char* kKind = "stage";
  virtual ~PipelineStage() = default;
  virtual void run(PipelineContext& ctx) = 0;
  // What the stage needs an earlier stage to have made, and what it makes ("quantized_state",
  // "artifact_file", ...): checked when the pipeline is built, before training.
  virtual std::vector<std::string> needs() const { return {}; }
  virtual std::vector<std::string> makes() const { return {}; }
  // Checks that need more than the stage's own section (the whole resolved recipe), when the pipeline is
  // built, before training: throws ConfigError naming the key.
  virtual void check(const Json& recipe) const {}
  // Scoring an existing artifact (trainer --eval-artifact): the stages before the first that needs
  // "artifact_file" do not run; each sets here what later stages need of it (the quantiser, the container).
  virtual void adopt(PipelineContext& ctx) {}
};
using StageRegistry = Registry<PipelineStage>;

// A stage's score: one eval line in metrics.jsonl, then (a NaN/Inf score stops the run naming the stage)
// <label>_val_loss, <label>_val_bpb and eval_seconds[label] in the summary.
void record_score(PipelineContext& ctx, const std::string& label, const EvalResult& r, double seconds);

// The recipe's stages, built (so a bad stage section fails before training).
std::vector<std::shared_ptr<PipelineStage>> build_pipeline(const Config& root);
// Runs them in order.
void run_pipeline(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx);
// Scores the artifact at ctx.artifact.path: adopt() up to the first stage that needs "artifact_file", run()
// from there on (reload_artifact, evaluate, ...).
void run_pipeline_on_artifact(const std::vector<std::shared_ptr<PipelineStage>>& stages, PipelineContext& ctx);

}  // namespace pgolf
