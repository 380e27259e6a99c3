// Small building blocks shared by model components: weightless RMSNorm, the fp32-master linear layer
// that computes in the activation dtype, and rotary position embeddings.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

#include "framework/tap.h"

namespace pgolf {

// RMSNorm over the last dim, no weight, eps = the dtype's machine epsilon (F.rms_norm with eps=None).
inline torch::Tensor rms_norm(const torch::Tensor& x) {
  return at::rms_norm(x, {x.size(-1)}, std::nullopt, std::nullopt);
}

// A bias-free linear layer whose fp32 master weight is cast to the input's dtype at use, so the matmul
// runs in bf16 on the GPU while the optimizer updates fp32. It is a tap site (framework/tap.h): late QAT
// swaps its weight, calibration sees its input, TTT adds LoRA deltas to its output.
struct CastedLinearImpl : torch::nn::Module, Tappable {
  CastedLinearImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x) {
    if (!tapped()) return torch::nn::functional::linear(x, cast_weight(x.scalar_type()));
    taps_->observe(site_, x);
    const torch::Tensor w = taps_->weight(site_, weight, is_training());
    return taps_->output(site_, x, torch::nn::functional::linear(x, w.to(x.scalar_type())));
  }
  // The master cast to `dtype`, made once while the master is unchanged: its version counter (every optimizer
  // step and in-place load bumps it), device and the grad mode key the cache. So the micro-batches of a step
  // share one cast, and each one's backward runs through that cast node into the fp32 gradient.
  const torch::Tensor& cast_weight(torch::ScalarType dtype);
  TapSite site_at(const std::string& module) const override { return TapSite{module, module + ".weight", true}; }
  // init: "zeros", "default" (PyTorch nn.Linear: U(±1/sqrt(in))) or "orthogonal" (gain 1).
  void initialize(const std::string& init);
  torch::Tensor weight;

 private:
  torch::Tensor cast_;
  int64_t cast_version_ = -1;
  bool cast_grad_ = false;
};
TORCH_MODULE(CastedLinear);

// Rotary embedding on the first `rope_dims` channels of each head, half-split pairs (c, c + rope_dims/2)
// with ω_c = base^(−2c/rope_dims); channels ≥ rope_dims pass through (partial RoPE, spec §2.3.3).
// NTK rescale (§2.3.4): with ntk_train_seq_len > 0 and a row longer than it, the base becomes
// base·(T/ntk_train_seq_len)^(rope_dims/(rope_dims−2)).
class Rotary {
 public:
  Rotary(int64_t head_dim, int64_t rope_dims, double base, int64_t ntk_train_seq_len = 0);
  // x: (B, T, H, d_h) -> same, positions 0..T-1 (the layout the linears produce and flash reads).
  torch::Tensor apply(const torch::Tensor& x);
  int64_t rope_dims() const { return rope_dims_; }
  // The base used for rows of T positions.
  double base_for(int64_t T) const;
  // cos and sin of every (position, pair), (T, rope_dims/2) fp32 on `device` (the fused op's tables).
  std::pair<torch::Tensor, torch::Tensor> tables(int64_t T, const torch::Device& device);

 private:
  void ensure(int64_t T, const torch::Device& device, torch::ScalarType dtype);
  int64_t head_dim_, rope_dims_, ntk_train_seq_len_;
  double base_;
  torch::Tensor cos_, sin_;  // (1, T, 1, rope_dims/2) in the activation dtype
  torch::Tensor cos32_, sin32_;  // (T, rope_dims/2) fp32
};

}  // namespace pgolf
