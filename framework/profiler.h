// Step profiling (`trainer --profile FILE`): records a few training steps with the Kineto profiler
// (CPU ops and CUDA kernels), writes a Chrome trace to FILE and prints the kernels that took the most
// device time, so a performance change can be aimed at what costs most.
#pragma once

#include <memory>
#include <string>

namespace pgolf {

class StepProfiler {
 public:
  // Profiles the steps [first, first + count) (1-based step numbers as they complete).
  StepProfiler(std::string trace_path, int64_t first, int64_t count);
  ~StepProfiler();
  // Called before each step with the number of the step about to run.
  void before_step(int64_t step);
  // Called after each step; stops, saves and summarises after the last profiled one.
  void after_step(int64_t step);

 private:
  void finish();
  std::string path_;
  int64_t first_, count_;
  bool active_ = false, done_ = false;
};

}  // namespace pgolf
