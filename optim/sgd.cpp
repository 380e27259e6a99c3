// SGD with optional (Nesterov) momentum, torch.optim.SGD semantics (no dampening): d = g + wd·θ (coupled
// L2, as torch's SGD), buf = d on the first step then μ·buf + d, update d + μ·buf (Nesterov) or buf.
#include "framework/optimizer.h"

namespace pgolf {
namespace {

class Sgd : public Optimizer {
 public:
  Sgd(const Config& c, const OptimizerContext& ctx)
      : lr_(c.f("lr")), momentum_(c.f("momentum")), nesterov_(c.b("nesterov")), weight_decay_(c.f("weight_decay")) {
    if (nesterov_ && momentum_ <= 0)
      throw ConfigError(c.key_path("nesterov") + ": Nesterov needs momentum > 0 (got momentum " +
                        std::to_string(momentum_) + ")");
    params_ = ctx.params;
    comm_ = ctx.comm;
    bufs_.resize(params_.size());  // undefined until a parameter's first step, which copies its gradient in
  }

  void step(double lr_scale, int64_t /*step*/) override {
    torch::NoGradGuard no_grad;
    const double lr = lr_ * lr_scale;
    for (size_t i = 0; i < params_.size(); ++i) {
      torch::Tensor p = params_[i].param;
      torch::Tensor d = p.grad();
      if (!d.defined()) continue;
      if (weight_decay_ != 0) d = d.add(p, weight_decay_);
      if (momentum_ != 0) {
        torch::Tensor& buf = bufs_[i];
        if (!buf.defined()) buf = d.detach().clone();
        else buf.mul_(momentum_).add_(d);
        d = nesterov_ ? d.add(buf, momentum_) : buf;
      }
      p.add_(d, -lr);
    }
  }

  double base_lr() const override { return lr_; }

  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < params_.size(); ++i)
      if (bufs_[i].defined()) out[key(i)] = bufs_[i].detach().clone();
    return out;
  }

  // Buffers absent from `state` are reset (that parameter's next step starts its momentum afresh).
  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    size_t used = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto it = state.find(key(i));
      bufs_[i] = torch::Tensor();
      if (it == state.end()) continue;
      if (!it->second.sizes().equals(params_[i].param.sizes()))
        throw std::runtime_error("sgd load_state: '" + key(i) + "' has the wrong shape");
      bufs_[i] = it->second.detach().to(params_[i].param.options()).clone();
      ++used;
    }
    if (used != state.size())
      throw std::runtime_error("sgd load_state: " + std::to_string(state.size() - used) +
                               " tensor(s) name no parameter of this group (expected <param>.momentum_buffer keys)");
  }

 private:
  std::string key(size_t i) const { return params_[i].name + ".momentum_buffer"; }

  double lr_, momentum_;
  bool nesterov_;
  double weight_decay_;
  std::vector<torch::Tensor> bufs_;
};

Schema sgd_schema() {
  Schema s = optimizer_common_schema(0.01);
  s.number("momentum", 0.0, 0.0, 1.0, "momentum (0 = plain SGD)")
      .boolean("nesterov", false, "Nesterov momentum (needs momentum > 0)")
      .number("weight_decay", 0.0, 0.0, 1e6, "L2 penalty added to the gradient (coupled, as torch.optim.SGD)");
  return s;
}

PGOLF_REGISTER(
    OptimizerRegistry, "sgd", sgd_schema(),
    [](const Config& c, const OptimizerContext& ctx) -> std::shared_ptr<Optimizer> {
      return std::make_shared<Sgd>(c, ctx);
    },
    "SGD with optional (Nesterov) momentum, torch.optim.SGD semantics");

}  // namespace
}  // namespace pgolf
