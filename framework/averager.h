// Averagers: what happens to the weights around the optimizer steps besides the update itself — weight
// averaging (EMA, SWA) and the #461 extras that hang on the same moments (late QAT, pruning before export).
// The recipe lists them under optim.averaging; the Trainer calls every one, in list order, at:
//   begin         training starts, after the warmup rollback (EMA takes its initial shadow here)
//   before_step   before each step's forward, with that step's LR scale (late QAT switches on)
//   after_step    after each optimizer step: the step's (pre-step) LR scale and the step count after it
//   finish        training is over, before the final evaluation: put the averaged weights in the model
//   before_export after the pre-quantisation evaluation, just before the quantiser (pruning)
// and saves/restores them with the checkpoint (state + meta), so a resumed run continues exactly.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "framework/model.h"
#include "framework/registry.h"

namespace pgolf {

struct Averager {
  static constexpr const char* kKind = "averager";
  virtual ~Averager() = default;
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

using AveragerRegistry = Registry<Averager>;

// Floating-point parameters and buffers of `model` by name (what EMA/SWA average): the state_dict entries.
std::vector<std::pair<std::string, torch::Tensor>> averaged_tensors(LanguageModel& model);

}  // namespace pgolf
