// Optimizers and LR schedules as the Trainer sees them.
//
// A recipe lists parameter groups under optim.groups; each is an optimizer section whose "params" key
// selects parameters by name pattern, rank and control pattern (first group that matches wins; a
// parameter no group takes is an error). The optimizer is built over its group's parameters.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "framework/comm.h"
#include "framework/registry.h"

namespace pgolf {

struct NamedParam {
  std::string name;
  torch::Tensor param;
};

// What an optimizer is built over: its group's parameters, and the communicator (an optimizer may split
// work across ranks — sharded Muon — as long as every rank ends with the same update).
struct OptimizerContext {
  std::vector<NamedParam> params;
  Communicator* comm = nullptr;  // null: a single process
};

struct Optimizer {
  static constexpr const char* kKind = "optimizer";
  virtual ~Optimizer() = default;
  // One update with lr = base_lr * lr_scale; `step` counts completed optimizer steps (momentum warmup).
  virtual void step(double lr_scale, int64_t step) = 0;
  virtual double base_lr() const = 0;
  const std::vector<NamedParam>& params() const { return params_; }
  // Everything needed to continue exactly: moment buffers, step counters (by stable names).
  virtual std::map<std::string, torch::Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, torch::Tensor>& state) = 0;

 protected:
  std::vector<NamedParam> params_;
  Communicator* comm_ = nullptr;
};

using OptimizerRegistry = Registry<Optimizer, const OptimizerContext&>;

// Keys every optimizer section has: the parameter selection and the base learning rate.
Schema optimizer_common_schema(double default_lr);

// Splits `all` into the recipe's groups (optim.groups) and builds one optimizer per group.
std::vector<std::shared_ptr<Optimizer>> build_optimizers(const Config& optim, const std::vector<NamedParam>& all,
                                                         Communicator* comm = nullptr);

struct Progress {
  int64_t step = 0;           // optimizer steps done
  int64_t iterations = 0;     // step budget
  double elapsed_ms = 0;      // training time so far (evaluation excluded)
  double budget_ms = 0;       // wallclock budget minus reserve; 0 = no wallclock cap
  // The fraction of training done: by time when there is a wallclock cap, else by steps.
  double fraction() const;
};

struct Schedule {
  static constexpr const char* kKind = "schedule";
  virtual ~Schedule() = default;
  virtual double lr_scale(const Progress& p) const = 0;
};

using ScheduleRegistry = Registry<Schedule>;

}  // namespace pgolf
