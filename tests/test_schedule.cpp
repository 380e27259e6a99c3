// LR schedules and Progress::fraction at chosen points, values worked out by hand from the formulas.
#include <gtest/gtest.h>

#include "framework/optimizer.h"

namespace pgolf {
namespace {

std::shared_ptr<Schedule> make_schedule(const Json& j) {
  Schema s;
  s.component("schedule", "schedule", "", "under test");
  const Json v = s.validate(Json{{"schedule", j}}, "", "test");
  return ScheduleRegistry::get().build(Config(v["schedule"], "schedule"));
}

Progress by_steps(int64_t step, int64_t iterations) { return Progress{step, iterations, 0.0, 0.0}; }
Progress by_time(int64_t step, double elapsed_ms, double budget_ms) { return Progress{step, 20000, elapsed_ms, budget_ms}; }

TEST(Schedule, ProgressFraction) {
  EXPECT_DOUBLE_EQ(by_time(10, 150000, 600000).fraction(), 0.25);  // time wins when capped
  EXPECT_DOUBLE_EQ(by_steps(300, 1000).fraction(), 0.3);
  EXPECT_DOUBLE_EQ(by_time(10, 700000, 600000).fraction(), 1.0);  // clamped
  EXPECT_DOUBLE_EQ(by_steps(5, 0).fraction(), 0.0);
}

TEST(Schedule, LinearWarmdownBySteps) {
  auto s = make_schedule({{"name", "linear_warmdown"}});  // W = 1200 by default
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(0, 20000)), 1.0);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(18799, 20000)), 1.0);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(18800, 20000)), 1.0);  // (20000 − 18800)/1200
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(19400, 20000)), 0.5);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(19999, 20000)), 1.0 / 1200);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(20000, 20000)), 1.0);  // the baseline's formula: outside [start, iterations)
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(40, 100)), 60.0 / 1200);  // W > iterations: decaying from step 0
  auto off = make_schedule({{"name", "linear_warmdown"}, {"warmdown_iters", 0}});
  EXPECT_DOUBLE_EQ(off->lr_scale(by_steps(99, 100)), 1.0);
}

TEST(Schedule, LinearWarmdownEstimatedFromWallclock) {
  auto s = make_schedule({{"name", "linear_warmdown"}, {"warmdown_iters", 1200}});
  // step_ms = 599000/1000 = 599, warmdown_ms = 718800, remaining = 1000 -> 1000/718800
  EXPECT_NEAR(s->lr_scale(by_time(1000, 599000, 600000)), 0.0013912075681691708, 1e-15);
  // step_ms 100 -> warmdown 120000 ms; 500000 ms remain -> not yet decaying
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(1000, 100000, 600000)), 1.0);
  // step_ms 200 -> warmdown 240000 ms; 120000 remain -> 0.5
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(2400, 480000, 600000)), 0.5);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(0, 50, 600000)), 1.0);  // step 0 counts as 1 step
  // step 0 counts as 1 step: step_ms 599500, warmdown 1200·599500 ms, 500 ms remain
  EXPECT_NEAR(s->lr_scale(by_time(0, 599500, 600000)), 500.0 / 719400000.0, 1e-18);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(3000, 600500, 600000)), 0.0);  // past the budget
}

TEST(Schedule, FractionWarmdown) {
  auto s = make_schedule({{"name", "fraction_warmdown"}});  // W 0.72, min_lr 0
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(5, 100000, 600000)), 1.0);   // frac 1/6 < 0.28
  EXPECT_NEAR(s->lr_scale(by_time(5, 168000, 600000)), 1.0, 1e-12);  // frac 0.28 = 1 − W: 0.72/0.72
  EXPECT_NEAR(s->lr_scale(by_time(5, 300000, 600000)), 0.6944444444444444, 1e-12);  // 0.5/0.72
  EXPECT_DOUBLE_EQ(s->lr_scale(by_time(5, 600000, 600000)), 0.0);
  EXPECT_NEAR(s->lr_scale(by_steps(900, 1000)), 0.1388888888888889, 1e-12);  // no cap: frac = step/iterations
  auto floored = make_schedule({{"name", "fraction_warmdown"}, {"warmdown_frac", 0.85}, {"min_lr", 0.1}});
  EXPECT_NEAR(floored->lr_scale(by_time(5, 300000, 600000)), 0.5 / 0.85, 1e-12);
  EXPECT_DOUBLE_EQ(floored->lr_scale(by_time(5, 590000, 600000)), 0.1);  // 0.0196 floored to 0.1
}

TEST(Schedule, StepWarmdown) {
  auto s = make_schedule({{"name", "step_warmdown"}});  // #461: 3000 of 5200
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(0, 5200)), 1.0);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(2199, 5200)), 1.0);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(2200, 5200)), 1.0);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(3700, 5200)), 0.5);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(4901, 5200)), 299.0 / 3000);
  EXPECT_DOUBLE_EQ(s->lr_scale(by_steps(6000, 5200)), 0.0);
  auto from_iters = make_schedule({{"name", "step_warmdown"}, {"warmdown_steps", 50}, {"total_steps", 0}});
  EXPECT_DOUBLE_EQ(from_iters->lr_scale(by_steps(75, 100)), 0.5);
}

TEST(Schedule, ConstantAndUnknown) {
  EXPECT_DOUBLE_EQ(make_schedule({{"name", "constant"}})->lr_scale(by_time(19999, 599999, 600000)), 1.0);
  EXPECT_THROW(make_schedule({{"name", "cosine_typo"}}), ConfigError);
}

}  // namespace
}  // namespace pgolf
