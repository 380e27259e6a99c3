// Warmup with rollback (spec training §3.3): real optimizer steps that warm kernels, allocators and
// autotuners, after which the run starts from exactly where it was — weights, optimizer states, loader
// position and RNG states are restored bit for bit, and the model forgets what the training progress
// switched on. It is not an LR warmup: no PR has one.
#pragma once

#include <cstdint>
#include <functional>

#include "framework/checkpoint.h"

namespace pgolf {

// Runs `steps` calls of `step` with the model at training fraction 0, then `late_steps` more at fraction 1
// (on_train_progress(1.0): what switches on late in training, such as family A's depth loop, is warmed up
// too), then restores the state captured before the first call and calls model.reset_train_progress().
// The training hooks in `parts` are captured and restored like everything else (the Trainer begins them after).
void warmup_and_rollback(const TrainingParts& parts, int64_t steps, int64_t late_steps, const std::function<void()>& step);

}  // namespace pgolf
