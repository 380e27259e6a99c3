// Adam with decoupled weight decay (AdamW; wd 0 = plain Adam), bias-corrected, as torch.optim.AdamW.
// The step counter is a device tensor so no step reads anything back to the host.
#include <cmath>

#include "framework/optimizer.h"

namespace pgolf {
namespace {

class Adam : public Optimizer {
 public:
  Adam(const Config& c, const OptimizerContext& ctx)
      : lr_(c.f("lr")),
        beta1_(c.f("beta1")),
        beta2_(c.f("beta2")),
        eps_(c.f("eps")),
        weight_decay_(c.f("weight_decay")) {
    params_ = ctx.params;
    comm_ = ctx.comm;
    bool all_cuda = !params_.empty();
    for (const auto& p : params_) {
      exp_avg_.push_back(torch::zeros_like(p.param));  // moments in the parameter's dtype, as torch keeps them
      exp_avg_sq_.push_back(torch::zeros_like(p.param));
      all_cuda = all_cuda && p.param.is_cuda();
    }
    const std::string fused = c.s("fused");
    fused_ = fused == "on" || (fused == "auto" && all_cuda);
    // fp32, on the parameters' device: what the fused kernel reads.
    step_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(
                                 params_.empty() ? torch::Device(torch::kCPU) : params_[0].param.device()));
  }

  void step(double lr_scale, int64_t /*step*/) override {
    torch::NoGradGuard no_grad;
    const double lr = lr_ * lr_scale;
    step_.add_(1);
    if (fused_) step_fused(lr);
    else step_plain(lr);
  }

  double base_lr() const override { return lr_; }

  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < params_.size(); ++i) {
      out[params_[i].name + ".exp_avg"] = exp_avg_[i].detach().clone();
      out[params_[i].name + ".exp_avg_sq"] = exp_avg_sq_[i].detach().clone();
    }
    out["step"] = step_.detach().clone();
    return out;
  }

  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    if (state.size() != 2 * params_.size() + 1)
      throw std::runtime_error("adam load_state: got " + std::to_string(state.size()) + " tensors, expected " +
                               std::to_string(2 * params_.size() + 1) + " (exp_avg, exp_avg_sq per parameter, step)");
    torch::NoGradGuard no_grad;
    auto load = [&](const std::string& key, torch::Tensor& into) {
      auto it = state.find(key);
      if (it == state.end()) throw std::runtime_error("adam load_state: missing '" + key + "'");
      if (!it->second.sizes().equals(into.sizes()))
        throw std::runtime_error("adam load_state: '" + key + "' has the wrong shape");
      into.copy_(it->second);
    };
    for (size_t i = 0; i < params_.size(); ++i) {
      load(params_[i].name + ".exp_avg", exp_avg_[i]);
      load(params_[i].name + ".exp_avg_sq", exp_avg_sq_[i]);
    }
    load("step", step_);
  }

 private:
  // ATen's fused AdamW over every parameter that has a gradient, one call per dtype (its kernels want one).
  void step_fused(double lr) {
    std::map<torch::ScalarType, std::vector<size_t>> by_dtype;
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].param.grad().defined()) by_dtype[params_[i].param.scalar_type()].push_back(i);
    for (const auto& [dtype, idx] : by_dtype) {
      std::vector<torch::Tensor> p, g, m, v, steps;
      for (size_t i : idx) {
        p.push_back(params_[i].param);
        g.push_back(params_[i].param.grad());
        m.push_back(exp_avg_[i]);
        v.push_back(exp_avg_sq_[i]);
        steps.push_back(step_);  // read-only in the kernel: one shared counter serves every tensor
      }
      at::_fused_adamw_(p, g, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, beta1_, beta2_, weight_decay_, eps_,
                        /*amsgrad=*/false, /*maximize=*/false);
      // The fused kernel leaves the version counters as they were; bump them as any in-place update would, so
      // what is keyed on them (CastedLinear's bf16 cast, models/layers.h) sees the new values.
      for (const auto& t : p) torch::autograd::impl::bump_version(t);
    }
  }

  // The same math per tensor: θ ← θ(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
  // θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε), with t read from the device counter as a tensor.
  void step_plain(double lr) {
    const torch::Tensor t = step_.to(torch::kFloat64);
    const torch::Tensor bc1 = 1.0 - torch::pow(beta1_, t);
    const torch::Tensor bc2_sqrt = (1.0 - torch::pow(beta2_, t)).sqrt();
    const torch::Tensor step_size = lr / bc1;
    for (size_t i = 0; i < params_.size(); ++i) {
      torch::Tensor p = params_[i].param;
      const torch::Tensor g = p.grad();
      if (!g.defined()) continue;
      if (weight_decay_ != 0) p.mul_(1.0 - lr * weight_decay_);
      exp_avg_[i].lerp_(g, 1.0 - beta1_);
      exp_avg_sq_[i].mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
      const torch::Tensor denom = exp_avg_sq_[i].sqrt() / bc2_sqrt + eps_;
      p.sub_(exp_avg_[i] / denom * step_size);
    }
  }

  double lr_, beta1_, beta2_, eps_, weight_decay_;
  bool fused_ = false;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  torch::Tensor step_;
};

Schema adam_schema() {
  Schema s = optimizer_common_schema(0.04);
  s.number("beta1", 0.9, 0.0, 1.0, "first-moment decay")
      .number("beta2", 0.95, 0.0, 1.0, "second-moment decay")
      .number("eps", 1e-8, 0.0, 1.0, "added to the bias-corrected sqrt of the second moment")
      .number("weight_decay", 0.0, 0.0, 1e6, "decoupled weight decay (AdamW): theta *= 1 - lr*wd before the update")
      .choice("fused", "auto", {"auto", "on", "off"},
              "ATen's fused AdamW kernel: auto = when every parameter is on CUDA, on = always, off = per-tensor ops");
  return s;
}

PGOLF_REGISTER(
    OptimizerRegistry, "adam", adam_schema(),
    [](const Config& c, const OptimizerContext& ctx) -> std::shared_ptr<Optimizer> {
      return std::make_shared<Adam>(c, ctx);
    },
    "Adam/AdamW (decoupled weight decay), bias-corrected; fused ATen kernel on CUDA");

}  // namespace
}  // namespace pgolf
