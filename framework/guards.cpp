#include "framework/guards.h"

namespace pgolf {

NonFiniteGuard::NonFiniteGuard(torch::Device device, int64_t id_limit)
    : first_bad_(torch::full({}, -1, torch::TensorOptions().dtype(torch::kInt64).device(device))),
      bad_id_(first_bad_.clone()), id_limit_(id_limit) {}

void NonFiniteGuard::observe(const torch::Tensor& loss, const torch::Tensor& grad_norm, int64_t step,
                             const torch::Tensor& max_id) {
  torch::NoGradGuard g;
  torch::Tensor ok;
  for (const auto* t : {&loss, &grad_norm}) {
    if (!t->defined()) continue;
    auto fin = torch::isfinite(t->detach()).all();
    ok = ok.defined() ? ok.logical_and(fin) : fin;
  }
  torch::Tensor id_bad, id;
  if (id_limit_ > 0 && max_id.defined()) {
    id = max_id.to(first_bad_.options());
    id_bad = id >= id_limit_;
    ok = ok.defined() ? ok.logical_and(id_bad.logical_not()) : id_bad.logical_not();
  }
  if (!ok.defined()) return;
  // first_bad stays put once set; the step goes in as a Scalar (a kernel argument, no host-to-device copy)
  const auto newly_bad = ok.logical_not().logical_and(first_bad_ < 0);
  if (id_bad.defined()) bad_id_.copy_(at::where(newly_bad.logical_and(id_bad), id, bad_id_));
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
