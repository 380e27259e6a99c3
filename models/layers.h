// Small building blocks shared by model components: weightless RMSNorm, the fp32-master linear layer
// that computes in the activation dtype, and rotary position embeddings.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace pgolf {

// RMSNorm over the last dim, no weight, eps = the dtype's machine epsilon (F.rms_norm with eps=None).
inline torch::Tensor rms_norm(const torch::Tensor& x) {
  return at::rms_norm(x, {x.size(-1)}, std::nullopt, std::nullopt);
}

// A bias-free linear layer whose fp32 master weight is cast to the input's dtype at use, so the matmul
// runs in bf16 on the GPU while the optimizer updates fp32.
struct CastedLinearImpl : torch::nn::Module {
  CastedLinearImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight.to(x.scalar_type())); }
  // init: "zeros", "default" (PyTorch nn.Linear: U(±1/sqrt(in))) or "orthogonal" (gain 1).
  void initialize(const std::string& init);
  torch::Tensor weight;
};
TORCH_MODULE(CastedLinear);

// Rotary embedding on the first `rope_dims` channels of each head, half-split pairs (c, c + rope_dims/2)
// with ω_c = base^(−2c/rope_dims); channels ≥ rope_dims pass through (partial RoPE, spec §2.3.3).
class Rotary {
 public:
  Rotary(int64_t head_dim, int64_t rope_dims, double base);
  // x: (B, H, T, head_dim) -> same, positions 0..T-1.
  torch::Tensor apply(const torch::Tensor& x);
  int64_t rope_dims() const { return rope_dims_; }

 private:
  void ensure(int64_t T, const torch::Device& device, torch::ScalarType dtype);
  int64_t head_dim_, rope_dims_;
  double base_;
  torch::Tensor cos_, sin_;  // (1, 1, T, rope_dims/2) in the activation dtype
};

}  // namespace pgolf
