// EMA (family A, spec training §3.7): an fp32 shadow of every floating state_dict entry, taken after the
// warmup rollback and updated after every step from step 0: e ← d·e + (1 − d)·θ. At the end the shadow
// replaces the weights, so the evaluated and exported model is the EMA.
#include "framework/training_hook.h"

namespace pgolf {
namespace {

class Ema : public TrainingHook {
 public:
  explicit Ema(double decay) : decay_(decay) {}

  void begin(LanguageModel& model) override {
    names_.clear();
    shadow_.clear();
    for (const auto& [name, t] : named_state(model, /*floating_only=*/true)) {
      names_.push_back(name);
      shadow_.push_back(t.detach().to(torch::kFloat32).clone());
    }
  }

  void after_step(LanguageModel& model, double, int64_t) override {
    torch::NoGradGuard g;
    std::vector<torch::Tensor> live;
    for (const auto& [name, t] : named_state(model, /*floating_only=*/true)) live.push_back(t.scalar_type() == torch::kFloat32 ? t : t.to(torch::kFloat32));
    check(live.size());
    at::_foreach_mul_(shadow_, decay_);
    at::_foreach_add_(shadow_, live, 1.0 - decay_);
  }

  void finish(LanguageModel& model) override {
    torch::NoGradGuard g;
    auto live = named_state(model, /*floating_only=*/true);
    check(live.size());
    for (size_t i = 0; i < live.size(); ++i) live[i].second.copy_(shadow_[i]);
  }

  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < names_.size(); ++i) out[names_[i]] = shadow_[i].clone();
    return out;
  }

  void load_state(const std::map<std::string, torch::Tensor>& state, const Json&) override {
    if (state.size() != names_.size())
      throw std::runtime_error("ema: got " + std::to_string(state.size()) + " shadow tensors, the model has " +
                               std::to_string(names_.size()));
    torch::NoGradGuard g;
    for (size_t i = 0; i < names_.size(); ++i) {
      auto it = state.find(names_[i]);
      if (it == state.end()) throw std::runtime_error("ema: no shadow for '" + names_[i] + "'");
      if (!it->second.sizes().equals(shadow_[i].sizes())) throw std::runtime_error("ema: '" + names_[i] + "' has the wrong shape");
      shadow_[i].copy_(it->second);
    }
  }

 private:
  void check(size_t n) const {
    if (n != shadow_.size())
      throw std::runtime_error("ema: the model has " + std::to_string(n) + " tensors but the shadow " +
                               std::to_string(shadow_.size()) + " (begin() was not called?)");
  }

  double decay_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> shadow_;
};

PGOLF_REGISTER(
    TrainingHookRegistry, "ema", Schema().number("decay", 0.9965, 0.0, 1.0, "e <- decay*e + (1-decay)*theta after every step"),
    [](const Config& c) -> std::shared_ptr<TrainingHook> { return std::make_shared<Ema>(c.f("decay")); },
    "exponential moving average of the weights (fp32 shadow); the evaluated and exported weights are the EMA");

}  // namespace
}  // namespace pgolf
