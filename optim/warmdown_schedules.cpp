// Learning-rate schedules: multipliers of every group's base lr. No PR warms the lr up (spec §3.3); they
// differ in how the final linear decay ("warmdown") is placed: by steps, by estimated time, or by fraction.
#include <algorithm>

#include "framework/optimizer.h"

namespace pgolf {
namespace {

// The challenge baseline: the last W steps decay linearly to 0. With a wallclock cap, W steps are converted
// to time with the mean step time so far, and the decay runs over the remaining time.
class LinearWarmdown : public Schedule {
 public:
  explicit LinearWarmdown(int64_t w) : w_(w) {}
  double lr_scale(const Progress& p) const override {
    if (w_ <= 0) return 1.0;
    const double w = static_cast<double>(w_);
    if (p.budget_ms <= 0) {
      const int64_t start = std::max<int64_t>(p.iterations - w_, 0);
      if (p.step >= start && p.step < p.iterations)
        return std::max(static_cast<double>(p.iterations - p.step) / std::max(w, 1.0), 0.0);
      return 1.0;
    }
    const double step_ms = p.elapsed_ms / static_cast<double>(std::max<int64_t>(p.step, 1));
    const double warmdown_ms = w * step_ms;
    const double remaining_ms = std::max(p.budget_ms - p.elapsed_ms, 0.0);
    return remaining_ms <= warmdown_ms ? remaining_ms / std::max(warmdown_ms, 1e-9) : 1.0;
  }

 private:
  int64_t w_;
};

// Family A (spec §3.4): constant, then linear to 0 over the last warmdown_frac of training (by time with a
// cap, else by steps), floored at min_lr.
class FractionWarmdown : public Schedule {
 public:
  FractionWarmdown(double w, double min_lr) : w_(w), min_lr_(min_lr) {}
  double lr_scale(const Progress& p) const override {
    if (w_ <= 0) return 1.0;
    const double frac = p.fraction();
    if (frac < 1.0 - w_) return 1.0;
    return std::max((1.0 - frac) / w_, min_lr_);
  }

 private:
  double w_, min_lr_;
};

// #461: linear to 0 over the last warmdown_steps of a fixed total_steps.
class StepWarmdown : public Schedule {
 public:
  StepWarmdown(int64_t w, int64_t total) : w_(w), total_(total) {}
  double lr_scale(const Progress& p) const override {
    if (w_ <= 0) return 1.0;
    const int64_t total = total_ > 0 ? total_ : p.iterations;
    if (p.step < total - w_) return 1.0;
    return std::max(static_cast<double>(total - p.step) / static_cast<double>(w_), 0.0);
  }

 private:
  int64_t w_, total_;
};

class Constant : public Schedule {
 public:
  double lr_scale(const Progress&) const override { return 1.0; }
};

Schema linear_warmdown_schema() {
  Schema s;
  s.integer("warmdown_iters", 1200, 0, 1e12,
            "decay linearly to 0 over the last this many steps (time-estimated under a wallclock cap; 0 = constant)");
  return s;
}

Schema fraction_warmdown_schema() {
  Schema s;
  s.number("warmdown_frac", 0.72, 0.0, 1.0, "fraction of training (time with a cap, else steps) spent decaying (0 = constant)")
      .number("min_lr", 0.0, 0.0, 1.0, "floor of the multiplier during the decay");
  return s;
}

Schema step_warmdown_schema() {
  Schema s;
  s.integer("warmdown_steps", 3000, 0, 1e12, "steps of the linear decay to 0 (0 = constant)")
      .integer("total_steps", 5200, 0, 1e12, "the step where the multiplier reaches 0 (0 = train.iterations)");
  return s;
}

PGOLF_REGISTER(
    ScheduleRegistry, "linear_warmdown", linear_warmdown_schema(),
    [](const Config& c) -> std::shared_ptr<Schedule> { return std::make_shared<LinearWarmdown>(c.i("warmdown_iters")); },
    "challenge baseline: linear decay over the last warmdown_iters steps, estimated in time under a wallclock cap");

PGOLF_REGISTER(
    ScheduleRegistry, "fraction_warmdown", fraction_warmdown_schema(),
    [](const Config& c) -> std::shared_ptr<Schedule> {
      return std::make_shared<FractionWarmdown>(c.f("warmdown_frac"), c.f("min_lr"));
    },
    "family A: linear decay over the last warmdown_frac of training time (steps without a cap), floored at min_lr");

PGOLF_REGISTER(
    ScheduleRegistry, "step_warmdown", step_warmdown_schema(),
    [](const Config& c) -> std::shared_ptr<Schedule> {
      return std::make_shared<StepWarmdown>(c.i("warmdown_steps"), c.i("total_steps"));
    },
    "#461: linear decay to 0 over the last warmdown_steps of total_steps");

PGOLF_REGISTER(
    ScheduleRegistry, "constant", Schema(),
    [](const Config&) -> std::shared_ptr<Schedule> { return std::make_shared<Constant>(); },
    "multiplier 1 throughout");

}  // namespace
}  // namespace pgolf
