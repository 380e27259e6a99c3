// SWA (#461, spec training §3.7): once the step's (pre-step) LR scale is below scale_below, every `every`
// steps (post-increment count) a snapshot of the weights is added to a running sum; at the end the plain
// mean of the snapshots replaces the weights. No snapshot, no change.
#include "framework/training_hook.h"
#include "framework/log.h"

namespace pgolf {
namespace {

class Swa : public TrainingHook {
 public:
  Swa(double scale_below, int64_t every) : scale_below_(scale_below), every_(every) {}

  void begin(LanguageModel& model) override {
    names_.clear();
    sums_.clear();
    count_ = 0;
    for (const auto& [name, t] : named_state(model, /*floating_only=*/true)) {
      names_.push_back(name);
      sums_.push_back(torch::zeros_like(t, t.options().dtype(torch::kFloat32)));
    }
  }

  void after_step(LanguageModel& model, double lr_scale, int64_t step) override {
    if (!(lr_scale < scale_below_) || step % every_ != 0) return;
    torch::NoGradGuard g;
    auto live = named_state(model, /*floating_only=*/true);
    if (live.size() != sums_.size()) throw std::runtime_error("swa: the model's tensors changed since begin()");
    for (size_t i = 0; i < live.size(); ++i) sums_[i].add_(live[i].second.detach().to(torch::kFloat32));
    ++count_;
  }

  void finish(LanguageModel& model) override {
    if (count_ == 0) {
      log::warn(strf("swa: no snapshot was taken (LR scale never below %g at a multiple of %lld steps); the weights "
                     "stay the final ones", scale_below_, (long long)every_));
      return;
    }
    torch::NoGradGuard g;
    auto live = named_state(model, /*floating_only=*/true);
    for (size_t i = 0; i < live.size(); ++i) live[i].second.copy_(sums_[i] / static_cast<double>(count_));
    log::info(strf("swa: weights = mean of %lld snapshots", (long long)count_));
  }

  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < names_.size(); ++i) out[names_[i]] = sums_[i].clone();
    return out;
  }
  Json meta() const override { return Json{{"count", count_}}; }

  void load_state(const std::map<std::string, torch::Tensor>& state, const Json& meta) override {
    if (state.size() != names_.size())
      throw std::runtime_error("swa: got " + std::to_string(state.size()) + " sums, the model has " + std::to_string(names_.size()));
    torch::NoGradGuard g;
    for (size_t i = 0; i < names_.size(); ++i) {
      auto it = state.find(names_[i]);
      if (it == state.end() || !it->second.sizes().equals(sums_[i].sizes()))
        throw std::runtime_error("swa: no sum of the right shape for '" + names_[i] + "'");
      sums_[i].copy_(it->second);
    }
    count_ = meta.at("count").get<int64_t>();
  }

 private:
  double scale_below_;
  int64_t every_;
  int64_t count_ = 0;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> sums_;
};

PGOLF_REGISTER(TrainingHookRegistry, "swa",
               Schema()
                   .number("scale_below", 0.2, 0.0, 1e9, "take snapshots once the step's LR scale is below this")
                   .integer("every", 50, 1, 1e12, "snapshot when the step count (after the step) is a multiple of this"),
               [](const Config& c) -> std::shared_ptr<TrainingHook> { return std::make_shared<Swa>(c.f("scale_below"), c.i("every")); },
               "stochastic weight averaging (#461): plain mean of periodic snapshots late in the warmdown");

}  // namespace
}  // namespace pgolf
