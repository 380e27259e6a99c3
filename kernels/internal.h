// What the op files share: whether the CUDA kernels are compiled in, the current stream of a tensor's
// device, and raw pointers of the right kinds.
#pragma once

#include <torch/torch.h>

#ifdef PGOLF_KERNELS_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda_ops.h"
#endif

namespace pgolf::kernels::detail {

#ifdef PGOLF_KERNELS_CUDA
inline cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }
inline const float* f32(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
// An optional fp32 input of a Function (absent ones travel as empty tensors): its data, or null.
inline const float* f32_or_null(const torch::Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<float>() : nullptr;
}
#endif

// The accumulation dtype of an activation dtype: fp32, or fp64 for fp64 inputs (the CPU tests).
inline torch::ScalarType acc_dtype(torch::ScalarType t) { return torch::promote_types(t, torch::kFloat32); }

// The per-channel coefficient gradient Σ over every dim but the last, in the coefficient's dtype.
inline torch::Tensor channel_sum(const torch::Tensor& t, torch::ScalarType dtype) {
  return t.to(acc_dtype(t.scalar_type())).reshape({-1, t.size(-1)}).sum(0).to(dtype);
}

}  // namespace pgolf::kernels::detail
