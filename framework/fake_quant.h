// Straight-through fake quantisation of weight rows (late QAT, spec training §3.7): the forward sees the
// weight rounded to signed `bits`-bit integers with one scale per row, the backward passes the gradient
// through unchanged. Late QAT (optim/late_qat.cpp) installs FakeQuantTap on the model's linear tap sites
// (framework/tap.h), so optim/ never needs to know a layer type.
#pragma once

#include <torch/torch.h>

#include "framework/tap.h"

namespace pgolf {

// w (rows, cols) -> w + (q·s − w).detach(), where per row s = max(max|w_row| / qmax, 1/qmax),
// q = clamp(round(w / s), −qmax−1, qmax), qmax = 2^(bits−1) − 1 (int6: s = max(rowmax/31, 1/31), [−32, 31]).
// Computed in fp32; returned in w's dtype.
torch::Tensor fake_quantize_rows(const torch::Tensor& w, int bits);

// The tap late QAT installs: every 2-D linear weight is fake-quantised in train-mode forwards; evaluation
// sees the fp32 weights.
class FakeQuantTap : public Tap {
 public:
  explicit FakeQuantTap(int bits) : bits_(bits) {}
  torch::Tensor weight(const TapSite&, const torch::Tensor& w, bool training) override {
    return training && w.dim() == 2 ? fake_quantize_rows(w, bits_) : w;
  }

 private:
  int bits_;
};

}  // namespace pgolf
