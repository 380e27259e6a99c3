// The GPTQ kernel with SD-clip scales (spec posttrain §4.2), in one batched form: n matrices of the same
// shape at once (all c_q of the model, all mlp.fc, ...), on whatever device the tensors are on. n = 1 is
// the single-matrix form. Works in the dtype of W (fp32 in the quantiser; the tests also run fp64).
#pragma once

#include <torch/torch.h>

namespace pgolf::quant {

// cr = 2^(bits−1) − 1: int5 ±15, int6 ±31, int7 ±63, int8 ±127.
inline int64_t clip_range(int bits) { return (int64_t{1} << (bits - 1)) - 1; }

// SD-clip row scales, fixed before any error propagation: s_r = fp16(max(k·std_r/cr, 1e-10)), std_r the
// unbiased standard deviation of the original row r. w (..., rows, cols) -> fp16 (..., rows).
torch::Tensor sdclip_scales(const torch::Tensor& w, double k, int bits);

struct GptqOptions {
  int bits = 6;
  int64_t block = 128;     // columns per lazy-update block
  double damping = 0.01;   // H += damping·mean(diag H)·I
  bool act_order = true;   // columns in descending diag(H) order
};

// w (n, rows, cols), h (n, cols, cols) input Hessians, s16 (n, rows) fp16 scales -> int8 codes (n, rows, cols)
// in the original column order, symmetric in [−cr, cr]. Dead columns (H_jj = 0) get code 0.
torch::Tensor gptq_codes(const torch::Tensor& w, const torch::Tensor& h, const torch::Tensor& s16, const GptqOptions& o);

}  // namespace pgolf::quant
