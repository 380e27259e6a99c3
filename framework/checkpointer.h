// The checkpoint policy of a run: every train.checkpoint_every steps, RUN_DIR/checkpoint.bin holds the whole
// training state (framework/checkpoint.h) plus the loop's own (step, training time, stop step, losses, the
// length metrics.jsonl had, the world size and every rank's loader position); rank 0 writes it atomically,
// every rank waits for it. A resumed run loads it
// back into the same objects.
#pragma once

#include <string>

#include "framework/checkpoint.h"
#include "framework/resume.h"
#include "framework/rundir.h"
#include "framework/run.h"

namespace pgolf {

// What the step loop carries from step to step (and a checkpoint records).
struct LoopState {
  int64_t step = 0;               // optimizer steps done
  double train_ms = 0;            // training time (evaluation and checkpoint writes excluded)
  int64_t stop_after = -1;        // the step every rank agreed to stop after (wallclock cap); -1 = none yet
  int64_t last_checkpoint = -1;   // step of the last checkpoint written or resumed from
  double first_loss = NAN, last_loss = NAN;  // training losses read back at log steps
  double model_flops = 0;         // Σ over steps of flops_per_token × batch tokens (for the summary's MFU)
};

class Checkpointer {
 public:
  Checkpointer(const Run& run, RunDir& dir);
  bool due(int64_t step) const { return every_ > 0 && step % every_ == 0; }
  void write(const TrainingParts& parts, LoopState& st);
  // Loads `resume` into `parts` and returns the loop state it recorded.
  LoopState restore(const TrainingParts& parts, Resume& resume);
  // For error messages: where the last good checkpoint is and how to resume from it.
  std::string last_good(const LoopState& st) const;
  const std::string& file() const { return file_; }
  // The command that continues this run (with the launcher and world size it had).
  std::string resume_command() const;

 private:
  const Run& run_;
  RunDir& dir_;
  int64_t every_;
  std::string file_;
};

}  // namespace pgolf
