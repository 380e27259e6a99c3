#include "models/layers.h"

#include <cmath>
#include <stdexcept>

namespace pgolf {

CastedLinearImpl::CastedLinearImpl(int64_t in, int64_t out) {
  weight = register_parameter("weight", torch::empty({out, in}, torch::kFloat32));
  initialize("default");
}

const torch::Tensor& CastedLinearImpl::cast_weight(torch::ScalarType dtype) {
  if (dtype == weight.scalar_type()) return weight;
  const auto version = static_cast<int64_t>(weight._version());
  const bool grad = torch::GradMode::is_enabled() && weight.requires_grad();
  if (!cast_.defined() || cast_version_ != version || cast_grad_ != grad || cast_.scalar_type() != dtype ||
      cast_.device() != weight.device()) {
    cast_ = weight.to(dtype);
    cast_version_ = version;
    cast_grad_ = grad;
  }
  return cast_;
}

void CastedLinearImpl::initialize(const std::string& init) {
  torch::NoGradGuard g;
  if (init == "zeros") {
    weight.zero_();
  } else if (init == "default") {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
    weight.uniform_(-bound, bound);
  } else if (init == "orthogonal") {
    torch::nn::init::orthogonal_(weight, 1.0);
  } else {
    throw std::invalid_argument("unknown linear init '" + init + "' (expected zeros, default or orthogonal)");
  }
}

Rotary::Rotary(int64_t head_dim, int64_t rope_dims, double base, int64_t ntk_train_seq_len)
    : head_dim_(head_dim), rope_dims_(rope_dims == 0 ? head_dim : rope_dims), ntk_train_seq_len_(ntk_train_seq_len),
      base_(base) {
  if (rope_dims_ % 2 != 0 || rope_dims_ > head_dim_)
    throw std::invalid_argument("rope_dims must be even and at most the head dim " + std::to_string(head_dim_));
  if (ntk_train_seq_len_ > 0 && rope_dims_ <= 2)
    throw std::invalid_argument("the NTK rescale needs rope_dims > 2 (its exponent is rope_dims/(rope_dims-2))");
}

double Rotary::base_for(int64_t T) const {
  if (ntk_train_seq_len_ <= 0 || T <= ntk_train_seq_len_) return base_;
  const double rd = static_cast<double>(rope_dims_);
  return base_ * std::pow(static_cast<double>(T) / static_cast<double>(ntk_train_seq_len_), rd / (rd - 2.0));
}

void Rotary::ensure(int64_t T, const torch::Device& device, torch::ScalarType dtype) {
  if (cos_.defined() && cos_.size(1) == T && cos_.device() == device && cos_.scalar_type() == dtype) return;
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto inv_freq = 1.0 / torch::pow(base_for(T), torch::arange(0, rope_dims_, 2, f32) / static_cast<double>(rope_dims_));
  auto freqs = torch::outer(torch::arange(T, f32), inv_freq);
  cos_ = freqs.cos().to(dtype).view({1, T, 1, rope_dims_ / 2});
  sin_ = freqs.sin().to(dtype).view({1, T, 1, rope_dims_ / 2});
}

std::pair<torch::Tensor, torch::Tensor> Rotary::tables(int64_t T, const torch::Device& device) {
  if (!cos32_.defined() || cos32_.size(0) != T || cos32_.device() != device) {
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    auto inv_freq = 1.0 / torch::pow(base_for(T), torch::arange(0, rope_dims_, 2, f32) / static_cast<double>(rope_dims_));
    auto freqs = torch::outer(torch::arange(T, f32), inv_freq);
    cos32_ = freqs.cos();
    sin32_ = freqs.sin();
  }
  return {cos32_, sin32_};
}

torch::Tensor Rotary::apply(const torch::Tensor& x) {
  ensure(x.size(1), x.device(), x.scalar_type());
  const int64_t half = rope_dims_ / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({x1 * cos_ + x2 * sin_, x2 * cos_ - x1 * sin_}, -1);
  if (rope_dims_ == head_dim_) return rotated;
  return torch::cat({rotated, x.narrow(-1, rope_dims_, head_dim_ - rope_dims_)}, -1);
}

}  // namespace pgolf
