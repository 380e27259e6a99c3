#include "framework/profiler.h"

#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
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

StepProfiler::StepProfiler(std::string trace_path, int64_t first, int64_t count, c10::Device device)
    : path_(std::move(trace_path)), first_(first), count_(count), device_(device) {}

StepProfiler::~StepProfiler() {
  if (active_) prof::disableProfiler();
}

void StepProfiler::before_step(int64_t step) {
  if (!done_ && !active_ && step == first_) {
    ProfilerConfig cfg(ProfilerState::KINETO);
    prof::prepareProfiler(cfg, activities());
    prof::enableProfiler(cfg, activities());
    active_ = true;
  }
  mark("");
}

void StepProfiler::mark(const std::string& name) {
  if (!active_) return;
  Mark m{name, nullptr, std::chrono::steady_clock::now()};
  if (device_.is_cuda()) {  // BACKEND_DEFAULT: an event with timing, recorded on the current stream
    m.event = std::make_shared<c10::Event>(c10::DeviceType::CUDA, c10::EventFlag::BACKEND_DEFAULT);
    c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
    m.event->record(impl.getStream(device_));
  }
  marks_.push_back(std::move(m));
}

void StepProfiler::phase_table() {
  // Each named mark closes the interval since the previous mark; intervals that start a step are the gaps
  // between steps (logging, averaging, guards) and are reported as such.
  std::vector<std::pair<std::string, double>> rows;
  double total = 0;
  for (size_t i = 1; i < marks_.size(); ++i) {
    const auto& a = marks_[i - 1];
    const auto& b = marks_[i];
    const double ms = a.event ? a.event->elapsedTime(*b.event)
                              : std::chrono::duration<double, std::milli>(b.wall - a.wall).count();
    const std::string name = b.name.empty() ? "between steps" : b.name;
    auto it = std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.first == name; });
    if (it == rows.end()) rows.emplace_back(name, ms);
    else it->second += ms;
    total += ms;
  }
  if (rows.empty()) return;
  log::info(strf("profile: step phases (%s time), %.1f ms per step", device_.is_cuda() ? "device" : "wall",
                 total / count_));
  for (const auto& [name, ms] : rows)
    log::info(strf("  %8.2f ms/step %5.1f%%  %s", ms / count_, 100.0 * ms / std::max(total, 1e-9), name.c_str()));
}
void StepProfiler::after_step(int64_t step) {
  if (active_ && step >= first_ + count_ - 1) {
    mark("");
    finish();
  }
}

void StepProfiler::finish() {
  if (torch::cuda::is_available()) torch::cuda::synchronize();
  auto result = prof::disableProfiler();
  active_ = false;
  done_ = true;
  // Through a temporary name: Kineto's save reports no failure, so the trace is claimed only once it is there.
  const std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
  result->save(tmp);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(tmp, ec) || std::filesystem::file_size(tmp, ec) == 0 || ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("--profile " + path_ + ": the trace could not be written");
  }
  std::filesystem::rename(tmp, path_, ec);
  if (ec) throw std::runtime_error("--profile " + path_ + ": the trace could not be written (" + ec.message() + ")");
  phase_table();
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
