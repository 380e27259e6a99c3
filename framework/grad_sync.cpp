#include "framework/grad_sync.h"

namespace pgolf {

void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params) {
  if (comm.world() == 1) return;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    comm.all_reduce(g, ReduceOp::Avg);
  }
}

GradientReducer::GradientReducer(Communicator& comm, std::vector<torch::Tensor> params, int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)), bucket_of_(params_.size()), slot_of_(params_.size()), has_grad_(params_.size()) {
  if (!comm_.collective()) return;
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    if (!p.requires_grad()) continue;
    const bool fits = !buckets_.empty() && bytes + static_cast<int64_t>(p.nbytes()) <= bucket_bytes &&
                      buckets_.back().flat.scalar_type() == p.scalar_type() && buckets_.back().flat.device() == p.device();
    if (!fits) {
      buckets_.emplace_back();
      buckets_.back().flat = torch::empty({0}, p.options().requires_grad(false));
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(b.flat.numel());
    b.members.push_back(k);
    b.flat = torch::empty({b.flat.numel() + p.numel()}, b.flat.options());
    bytes += static_cast<int64_t>(p.nbytes());
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.members.size() - 1;
    // The gradient arriving at the leaf, before it is accumulated into .grad (one call per backward).
    hooks_.emplace_back(k, const_cast<torch::Tensor&>(p).register_hook([this, k](const torch::Tensor& g) {
      on_grad(k, g);
      return torch::Tensor();
    }));
  }
}

GradientReducer::~GradientReducer() {
  for (const auto& [k, id] : hooks_) params_[k].remove_hook(id);  // the model may outlive this reducer
}

void GradientReducer::arm() {
  if (!comm_.collective()) return;
  armed_ = true;
  next_ = 0;
  for (auto& b : buckets_) b.ready = 0, b.launched = false;
  std::fill(has_grad_.begin(), has_grad_.end(), false);
}

void GradientReducer::on_grad(size_t i, const torch::Tensor& g) {
  if (!armed_) return;
  Bucket& b = buckets_[bucket_of_[i]];
  const size_t j = slot_of_[i];
  torch::NoGradGuard no_grad;
  torch::Tensor slot = b.flat.narrow(0, b.offsets[j], g.numel()).view_as(g);
  const torch::Tensor& old = params_[i].grad();
  if (old.defined()) torch::add_out(slot, old, g);  // what autograd is about to accumulate
  else slot.copy_(g);
  has_grad_[i] = true;
  if (++b.ready == b.members.size()) launch_ready();
}

void GradientReducer::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].members.size()) launch(buckets_[next_++]);
}

void GradientReducer::launch(Bucket& b) {
  b.work = comm_.all_reduce_async(b.flat, ReduceOp::Avg);
  b.launched = true;
}

void GradientReducer::finish() {
  if (!comm_.collective()) return;
  torch::NoGradGuard no_grad;
  if (!armed_) arm();  // nothing launched during backward: every bucket packs its gradients here
  armed_ = false;
  for (; next_ < buckets_.size(); ++next_) {
    Bucket& b = buckets_[next_];
    for (size_t j = 0; j < b.members.size(); ++j) {
      const size_t i = b.members[j];
      if (has_grad_[i]) continue;
      const torch::Tensor& g = params_[i].grad();
      torch::Tensor slot = b.flat.narrow(0, b.offsets[j], params_[i].numel());
      has_grad_[i] = g.defined();
      if (g.defined()) slot.copy_(g.reshape({-1}));
      else slot.zero_();
    }
    launch(b);
  }
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
    for (size_t j = 0; j < b.members.size(); ++j) {  // the gradients become views of the reduced buckets
      const size_t i = b.members[j];
      if (has_grad_[i]) params_[i].mutable_grad() = b.flat.narrow(0, b.offsets[j], params_[i].numel()).view_as(params_[i]);
    }
  }
}

}  // namespace pgolf
