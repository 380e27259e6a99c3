#include "framework/calibration.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "framework/device.h"

namespace pgolf {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool selected(const TapSite& s, const std::map<std::string, int64_t>& numel, const CalibrationSites& p) {
  auto it = numel.find(s.weight);
  if (s.weight.empty() || it == numel.end()) return false;
  if (!s.linear) return true;  // the head: the tied embedding's input
  if (p.policy == "block_taps")
    return std::any_of(p.roles.begin(), p.roles.end(), [&](const std::string& r) { return ends_with(s.name, "." + r); });
  if (p.policy != "module_inputs")
    throw std::invalid_argument("calibration: unknown tap policy '" + p.policy + "' (module_inputs | block_taps)");
  return it->second > p.min_numel && std::any_of(p.patterns.begin(), p.patterns.end(), [&](const std::string& q) {
           return s.name.find(q) != std::string::npos;
         });
}

}  // namespace

std::set<std::string> calibration_sites(LanguageModel& model, const CalibrationSites& policy) {
  std::map<std::string, int64_t> numel;
  for (const auto& p : model.named_parameters()) numel[p.key()] = p.value().numel();
  std::set<std::string> out;
  for (const auto& s : model.tap_sites())
    if (selected(s, numel, policy)) out.insert(s.name);
  return out;
}

void HessianTap::observe(const TapSite& site, const torch::Tensor& x) {
  if (!sites_.count(site.name)) return;
  if (!last_x_.defined() || !x.is_same(last_x_)) {
    const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).to(torch::kFloat32);
    last_xtx_ = torch::mm(x2.t(), x2);
    last_x_ = x;
  }
  auto it = h_.find(site.weight);
  if (it == h_.end())
    h_.emplace(site.weight, last_xtx_.clone());
  else
    it->second.add_(last_xtx_);
}

CalibrationResult collect_hessians(LanguageModel& model, const std::function<Batch()>& next, int64_t batches,
                                   const CalibrationSites& policy, Communicator& comm, const torch::Device& device,
                                   const std::function<bool(double)>& keep_going) {
  auto tap = std::make_shared<HessianTap>(calibration_sites(model, policy));
  const bool was_training = model.is_training();
  model.eval();
  CalibrationResult r;
  {
    torch::NoGradGuard no_grad;
    ScopedTap on(model.taps(), tap);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < batches; ++b) {
      if (b > 0 && keep_going) {
        sync_device(device);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (agree_any(comm, !keep_going(ms / static_cast<double>(b)), device)) break;
      }
      const Batch batch = next();
      model.token_nll(batch.x.to(device), batch.y.to(device));  // dense: no cu_seqlens
      ++r.batches;
    }
  }
  model.train(was_training);
  torch::Tensor total = torch::full({1}, static_cast<double>(r.batches), torch::TensorOptions(device).dtype(torch::kFloat64));
  comm.all_reduce_sum(total);
  const double all = std::max(1.0, total.item<double>());
  for (auto& [name, h] : tap->sums()) {  // map order: the same collectives in the same order on every rank
    comm.all_reduce_sum(h);
    r.hessians[name] = h / all;
  }
  return r;
}

}  // namespace pgolf
