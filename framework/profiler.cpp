#include "framework/profiler.h"

#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <map>
#include <sstream>
#include <unordered_map>

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
    ProfilerConfig cfg(ProfilerState::KINETO, /*report_input_shapes=*/true);
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


namespace {

std::string shapes_of(const prof::KinetoEvent& e) {
  std::ostringstream o;
  const auto sh = e.shapes();
  for (size_t i = 0; i < sh.size() && i < 3; ++i) {
    if (sh[i].empty()) continue;
    o << (o.tellp() > 0 ? " " : "") << "(";
    for (size_t j = 0; j < sh[i].size(); ++j) o << (j ? "," : "") << sh[i][j];
    o << ")";
  }
  return o.str();
}

// Device time by the CPU op that launched each kernel (Kineto links a kernel to the innermost op on the
// stack), with the autograd node that ran it in the backward and the op's input shapes: which layer code
// the unfused elementwise kernels come from.
void op_table(const std::vector<prof::KinetoEvent>& events, int64_t steps) {
  struct Span { uint64_t start, end; std::string name; };
  std::unordered_map<uint64_t, const prof::KinetoEvent*> ops;  // correlation id -> CPU op
  std::map<uint64_t, std::vector<Span>> nodes;                   // thread -> autograd node spans, by start
  for (const auto& e : events) {
    if (e.deviceType() == c10::DeviceType::CUDA) continue;
    if (e.correlationId() > 0) ops[e.correlationId()] = &e;
    const std::string& n = e.name();
    if (n.rfind("autograd::engine::evaluate_function: ", 0) == 0)
      nodes[e.startThreadId()].push_back({e.startNs(), e.endNs(), n.substr(37)});
  }
  for (auto& [t, v] : nodes) std::sort(v.begin(), v.end(), [](const Span& a, const Span& b) { return a.start < b.start; });
  std::map<std::string, std::pair<double, int64_t>> by_op;
  double total = 0;
  for (const auto& e : events) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    const double ms = e.durationNs() / 1e6;
    total += ms;
    auto it = ops.find(e.linkedCorrelationId());
    std::string key = "(no op)";
    if (it != ops.end()) {
      const auto& op = *it->second;
      std::string node = "forward";
      auto& v = nodes[op.startThreadId()];
      auto n = std::upper_bound(v.begin(), v.end(), op.startNs(), [](uint64_t s, const Span& sp) { return s < sp.start; });
      while (n != v.begin()) {  // the innermost node that encloses the op
        --n;
        if (n->end >= op.endNs()) { node = n->name; break; }
      }
      key = node + " / " + op.name() + " " + shapes_of(op);
    }
    auto& slot = by_op[key];
    slot.first += ms;
    slot.second += 1;
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  log::info("profile: kernel time by launching op (autograd node / op input shapes)");
  for (size_t i = 0; i < rows.size() && i < 40; ++i)
    log::info(strf("  %8.2f ms/step %5.1f%% %6lld calls  %s", rows[i].second.first / steps,
                   100.0 * rows[i].second.first / std::max(total, 1e-9), (long long)(rows[i].second.second / steps),
                   rows[i].first.substr(0, 150).c_str()));
}

}  // namespace

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
  if (cuda) op_table(result->events(), count_);
}

}  // namespace pgolf
