// Step profiling (`trainer --profile FILE`): records a few training steps with the Kineto profiler
// (CPU ops and CUDA kernels), writes a Chrome trace to FILE and prints the kernels that took the most
// device time, so a performance change can be aimed at what costs most. The Trainer also marks the phases
// of each profiled step (forward+backward, clipping, each optimizer group); their device time comes from
// events recorded on the stream (no host synchronisation until the profile ends).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/Event.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace pgolf {

class StepProfiler {
 public:
  // Profiles the steps [first, first + count) (1-based step numbers as they complete).
  StepProfiler(std::string trace_path, int64_t first, int64_t count, c10::Device device);
  ~StepProfiler();
  // Called before each step with the number of the step about to run.
  void before_step(int64_t step);
  // Called after each step; stops, saves and summarises after the last profiled one.
  void after_step(int64_t step);
  // Ends the phase `name` of the step being profiled (it began at the previous mark or the step's start);
  // a no-op outside the profiled steps.
  void mark(const std::string& name);

 private:
  struct Mark {
    std::string name;  // empty: the start of a step
    std::shared_ptr<c10::Event> event;
    std::chrono::steady_clock::time_point wall;
  };
  void finish();
  void phase_table();
  std::string path_;
  int64_t first_, count_;
  c10::Device device_;
  bool active_ = false, done_ = false;
  std::vector<Mark> marks_;
};

}  // namespace pgolf
