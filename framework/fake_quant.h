// Straight-through fake quantisation of weight rows (late QAT, spec training §3.7): the forward sees the
// weight rounded to signed `bits`-bit integers with one scale per row, the backward passes the gradient
// through unchanged. Layers that can train this way implement FakeQuantTarget; a component (optim/late_qat)
// switches them on through it, so optim/ never needs to know a layer type.
#pragma once

#include <torch/torch.h>

namespace pgolf {

// w (rows, cols) -> w + (q·s − w).detach(), where per row s = max(max|w_row| / qmax, 1/qmax),
// q = clamp(round(w / s), −qmax−1, qmax), qmax = 2^(bits−1) − 1 (int6: s = max(rowmax/31, 1/31), [−32, 31]).
// Computed in fp32; returned in w's dtype.
torch::Tensor fake_quantize_rows(const torch::Tensor& w, int bits);

struct FakeQuantTarget {
  virtual ~FakeQuantTarget() = default;
  // 0 = off; otherwise every forward in train mode uses fake_quantize_rows(weight, bits).
  virtual void set_fake_quant_bits(int bits) = 0;
};

}  // namespace pgolf
