// The non-finite guard: notices a NaN/Inf training loss or gradient norm without reading anything back to
// the host per step. observe() folds each step into a device-side "first bad step" (-1 while all is well);
// first_bad_step() is the one host sync, which the Trainer does only at its log, checkpoint and
// train.nan_check_every boundaries and at the end of training. A divergence is therefore reported at most
// that many steps late, and never after a checkpoint that holds it (every checkpoint is checked first).
// The same flag covers the batch's token ids: a step whose largest id is outside the vocabulary is bad too,
// and the guard keeps that id so the report can say which (the loader's data is never read back per step).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace pgolf {

class NonFiniteGuard {
 public:
  // `id_limit`: token ids must be below it (the model's vocabulary); 0 = ids are not checked.
  explicit NonFiniteGuard(torch::Device device, int64_t id_limit = 0);
  // `loss` and `grad_norm` are 0-d tensors of step `step` (either may be undefined to skip it); `max_id`,
  // a 0-d int64 tensor, the largest token id of the step's batches (undefined: not checked).
  void observe(const torch::Tensor& loss, const torch::Tensor& grad_norm, int64_t step,
               const torch::Tensor& max_id = {});
  // The first step observed with a non-finite value, or -1: a 0-d int64 device tensor (no sync) ...
  const torch::Tensor& first_bad() const { return first_bad_; }
  // ... and read back to the host (a sync).
  int64_t first_bad_step() const;
  // The largest token id of the first bad step when it was out of range, else -1: 0-d int64 device tensor.
  const torch::Tensor& bad_id() const { return bad_id_; }

 private:
  torch::Tensor first_bad_;  // int64, 0-d, on the device
  torch::Tensor bad_id_;     // int64, 0-d, on the device
  int64_t id_limit_;
};

// ‖g‖₂ over every defined gradient, fp32 0-d device tensor, without a host sync (zero when none).
torch::Tensor global_grad_norm(const std::vector<torch::Tensor>& params);

}  // namespace pgolf
