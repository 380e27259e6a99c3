#include "framework/warmup.h"

namespace pgolf {

void warmup_and_rollback(const TrainingParts& parts, int64_t steps, int64_t late_steps, const std::function<void()>& step) {
  if (steps <= 0 && late_steps <= 0) return;
  const TrainingState before = capture_state(parts);
  parts.model.on_train_progress(0.0);
  for (int64_t i = 0; i < steps; ++i) step();
  parts.model.on_train_progress(1.0);
  for (int64_t i = 0; i < late_steps; ++i) step();
  restore_state(parts, before, "warmup rollback");
  parts.model.reset_train_progress();
}

}  // namespace pgolf
