// Everything a run is made of, built from the resolved recipe before anything is written: the build phase
// of the Trainer. A bad recipe fails here, with the file and key named.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "framework/comm.h"
#include "framework/eval.h"
#include "framework/loader.h"
#include "framework/model.h"
#include "framework/optimizer.h"
#include "framework/pipeline.h"
#include "framework/recipe.h"
#include "framework/training_hook.h"

namespace pgolf {

// How one optimizer step's tokens split over ranks and micro-batches.
struct BatchPlan {
  int64_t seq_len = 0;       // T
  int64_t batch_tokens = 0;  // tokens per optimizer step, all ranks
  int64_t accum = 0;         // micro-batches per step on this rank
  int64_t local_tokens = 0;  // tokens per micro-batch on this rank (B*T)
};

struct Run {
  Recipe recipe;
  Communicator* comm = nullptr;
  torch::Device device = torch::kCPU;
  std::shared_ptr<LanguageModel> model;
  std::vector<std::shared_ptr<Optimizer>> optimizers;
  TrainingHooks hooks;
  std::shared_ptr<Schedule> schedule;
  std::shared_ptr<Evaluator> evaluator;  // validation during training (train.val_every)
  std::vector<std::shared_ptr<PipelineStage>> pipeline;
  BatchPlan batch;
  int64_t params = 0;
  // The data (build_data): read from disk, still before the run directory exists.
  LoaderContext train_data;
  std::shared_ptr<TrainLoader> loader;
  ValStream val;
  std::shared_ptr<ByteCounter> bytes;
  EvalContext eval;
};

// A fresh model of the recipe on `device`, in the device's compute dtype. A model whose weights would not fit
// the memory available (a third of it with `for_training` on the CPU: gradients and optimizer state come
// on top) stops with a ConfigError naming its size before the allocation is made.
std::shared_ptr<LanguageModel> build_model(const Recipe& recipe, const torch::Device& device, bool for_training = false);
// Seeds torch, picks the device, builds the model, optimizers, hooks, schedule, evaluator and pipeline.
Run build_run(Recipe recipe, Communicator& comm);
// Opens the training shards (loader), the validation stream and the byte counter; checks the tokenizer.
void build_data(Run& run);
// The run's description lines in the log (recipe, model, device, optimizer groups, data).
void log_run(const Run& run);

}  // namespace pgolf
