#include "framework/guards.h"

namespace pgolf {

NonFiniteGuard::NonFiniteGuard(torch::Device device)
    : first_bad_(torch::full({}, -1, torch::TensorOptions().dtype(torch::kInt64).device(device))) {}

void NonFiniteGuard::observe(const torch::Tensor& loss, const torch::Tensor& grad_norm, int64_t step) {
  torch::NoGradGuard g;
  torch::Tensor ok;
  for (const auto* t : {&loss, &grad_norm}) {
    if (!t->defined()) continue;
    auto fin = torch::isfinite(t->detach()).all();
    ok = ok.defined() ? ok.logical_and(fin) : fin;
  }
  if (!ok.defined()) return;
  // first_bad stays put once set; the step goes in as a Scalar (a kernel argument, no host-to-device copy)
  const auto newly_bad = ok.logical_not().logical_and(first_bad_ < 0);
  first_bad_.copy_(at::where(newly_bad, c10::Scalar(step), first_bad_));
}

int64_t NonFiniteGuard::first_bad_step() const { return first_bad_.item<int64_t>(); }

torch::Tensor global_grad_norm(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  auto norms = at::_foreach_norm(grads, 2);
  return torch::stack(norms).to(torch::kFloat32).norm(2);
}

}  // namespace pgolf
