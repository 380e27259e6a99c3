// The step loop: schedule → training hooks → one step → guard → log / validate / checkpoint, until
// train.iterations or the wallclock stop. Every cross-rank decision (the wallclock stop, the non-finite
// guard) is a collective made by all ranks at the same step; validation and checkpoints fall on step
// numbers, the same on every rank. Evaluation and checkpoint writes pause the training clock.
#pragma once

#include <memory>

#include <c10/core/Event.h>

#include "framework/checkpointer.h"
#include "framework/guards.h"
#include "framework/profiler.h"
#include "framework/run.h"
#include "framework/rundir.h"
#include "framework/train_step.h"

namespace pgolf {

class TrainLoop {
 public:
  TrainLoop(Run& run, RunDir& dir, TrainStep& step, Checkpointer& checkpointer, std::string profile_path);
  // Trains from `st` (a fresh or resumed state) to the end; leaves the final state in `st`.
  void run(LoopState& st);

 private:
  void validate(const LoopState& st);
  void log_step(LoopState& st, const torch::Tensor& loss, double scale, double now_ms);
  void check_finite(const LoopState& st);
  void check_learning(const LoopState& st);
  struct StopVote {
    bool wallclock = false;  // the training-time cap was reached
    int signal = 0;          // SIGTERM/SIGINT received (by any rank)
  };
  StopVote agreed_stop(double now_ms);
  void write_checkpoint(LoopState& st);
  [[noreturn]] void interrupt(LoopState& st, int sig);
  Run& run_;
  RunDir& dir_;
  TrainStep& step_;
  Checkpointer& checkpointer_;
  TrainingParts parts_;
  NonFiniteGuard guard_;
  std::string profile_path_;
  std::unique_ptr<StepProfiler> profiler_;
  int64_t iterations_, log_every_, val_every_, nan_check_every_, inject_nan_at_, inject_kill_after_;
  int64_t stuck_steps_, stuck_since_ = -1;  // train.stuck_loss_steps; first logged step of the current stretch at ln(vocab)
  bool stuck_warned_ = false;
  double budget_ms_;
  WorkHandle stop_work_;
  torch::Tensor stop_flag_;  // multi-rank: (cap reached, signal) of the previous step, all-reduced max
  torch::Tensor stop_host_;  // CUDA: the pinned copy of the previous step's stop_flag_, complete once stop_event_ is
  std::unique_ptr<c10::Event> stop_event_;
  double logged_flops_ = 0, logged_ms_ = 0;  // at the previous log line (the interval's MFU)
};

// Model FLOPs utilisation of `flops` done in `ms` by every rank, per GPU: flops / (s · world · peak);
// NaN where the device's peak is unknown (the CPU).
double mfu(const Run& run, double flops, double ms);

// The training-time cap minus the reserve (train.max_wallclock_seconds − wallclock_reserve_seconds), in ms;
// 0 = no cap.
double training_budget_ms(const Config& train);

}  // namespace pgolf
