#include "framework/profiler.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <map>

#include "framework/log.h"

namespace pgolf {

namespace prof = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

namespace {
std::set<ActivityType> activities() {
  std::set<ActivityType> a{ActivityType::CPU};
  if (torch::cuda::is_available()) a.insert(ActivityType::CUDA);
  return a;
}
}  // namespace

StepProfiler::StepProfiler(std::string trace_path, int64_t first, int64_t count)
    : path_(std::move(trace_path)), first_(first), count_(count) {}

StepProfiler::~StepProfiler() {
  if (active_) prof::disableProfiler();
}

void StepProfiler::before_step(int64_t step) {
  if (done_ || active_ || step != first_) return;
  ProfilerConfig cfg(ProfilerState::KINETO);
  prof::prepareProfiler(cfg, activities());
  prof::enableProfiler(cfg, activities());
  active_ = true;
}

void StepProfiler::after_step(int64_t step) {
  if (active_ && step >= first_ + count_ - 1) finish();
}

void StepProfiler::finish() {
  if (torch::cuda::is_available()) torch::cuda::synchronize();
  auto result = prof::disableProfiler();
  active_ = false;
  done_ = true;
  result->save(path_);
  // Device time by kernel name (CUDA events), else CPU op time: the top of the bill.
  const bool cuda = torch::cuda::is_available();
  std::map<std::string, std::pair<double, int64_t>> by_name;
  double total = 0;
  for (const auto& e : result->events()) {
    const bool is_device = e.deviceType() == c10::DeviceType::CUDA;
    if (is_device != cuda) continue;
    auto& slot = by_name[e.name()];
    slot.first += e.durationNs() / 1e6;
    slot.second += 1;
    total += e.durationNs() / 1e6;
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  log::info(strf("profile: %lld steps, %s time %.1f ms per step; trace %s", (long long)count_, cuda ? "kernel" : "op",
                 total / count_, path_.c_str()));
  for (size_t i = 0; i < rows.size() && i < 30; ++i)
    log::info(strf("  %8.2f ms/step %5.1f%% %6lld calls  %s", rows[i].second.first / count_,
                   100.0 * rows[i].second.first / std::max(total, 1e-9), (long long)(rows[i].second.second / count_),
                   rows[i].first.substr(0, 110).c_str()));
}

}  // namespace pgolf
