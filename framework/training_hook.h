// Training hooks: what acts on the training state around the optimizer steps besides the update itself —
// weight averaging (EMA, SWA), late QAT, pruning before export. The recipe lists them under train.hooks;
// every one is called, in list order, at:
//   begin         training starts, after the warmup rollback (EMA takes its initial shadow here)
//   before_step   before each step's forward, with that step's LR scale (late QAT switches on)
//   after_step    after each optimizer step: the step's (pre-step) LR scale and the step count after it
//   finish        training is over (post-training stage apply_averaging): the averaged weights go into the model
//   before_export just before quantisation (post-training stage prune)
// and each saves/restores its state with the checkpoint (tensors + meta), so a resumed run continues exactly.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "framework/model.h"
#include "framework/named_state.h"
#include "framework/registry.h"

namespace pgolf {

struct TrainingHook {
  static constexpr const char* kKind = "training_hook";
  virtual ~TrainingHook() = default;
  virtual void begin(LanguageModel& /*model*/) {}
  virtual void before_step(LanguageModel& /*model*/, double /*lr_scale*/, int64_t /*step*/) {}
  virtual void after_step(LanguageModel& /*model*/, double /*lr_scale*/, int64_t /*step*/) {}
  virtual void finish(LanguageModel& /*model*/) {}
  virtual void before_export(LanguageModel& /*model*/) {}
  // Checkpoint: tensors by stable names, plus small JSON state (counters, switches).
  virtual std::map<std::string, torch::Tensor> state() const { return {}; }
  virtual Json meta() const { return nullptr; }
  virtual void load_state(const std::map<std::string, torch::Tensor>& /*state*/, const Json& /*meta*/) {}
};

using TrainingHookRegistry = Registry<TrainingHook>;
using TrainingHooks = std::vector<std::shared_ptr<TrainingHook>>;

}  // namespace pgolf
