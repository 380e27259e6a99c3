// One optimizer step (also what the warmup runs): for each of this rank's micro-batches, loader → forward
// (compute dtype) → loss → backward; then clipping (local before the cross-rank average, or global after),
// the gradient average across ranks, and every optimizer group with the scheduled LR. Nothing is read back
// to the host: the loss and the gradient norm come back as 0-d device tensors.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "framework/grad_sync.h"
#include "framework/profiler.h"
#include "framework/run.h"

namespace pgolf {

struct StepResult {
  torch::Tensor loss;       // mean training loss over the step's micro-batches
  torch::Tensor grad_norm;  // global gradient norm before clipping (for the non-finite guard)
  torch::Tensor max_id;     // largest token id of the step's batches, 0-d int64 (for the same guard)
};

class TrainStep {
 public:
  explicit TrainStep(Run& run);
  // `step` counts the optimizer steps done before this one (momentum warmups read it); `poison` makes the
  // loss NaN (fault injection for the guard's tests: PGOLF_INJECT_NAN_AT_STEP).
  StepResult run(double lr_scale, int64_t step, bool poison = false);
  // --profile: mark the step's phases on this profiler (null: none).
  void set_profiler(StepProfiler* p) { profiler_ = p; }

 private:
  torch::Tensor micro_batch_loss(torch::Tensor& max_id);
  void mark(const std::string& phase) {
    if (profiler_) profiler_->mark(phase);
  }
  Run& run_;
  std::vector<torch::Tensor> params_;
  GradientReducer reducer_;
  std::vector<std::string> optimizer_phases_;
  int64_t vocab_;
  double clip_;
  bool clip_local_;
  StepProfiler* profiler_ = nullptr;
};

}  // namespace pgolf
