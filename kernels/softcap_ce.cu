// Softcapped cross-entropy rows (kernels/cuda_ops.h): one block per row of z; pass 1 an online
// (max, Σexp) of l = C·tanh(z/C) in fp32, one block reduction, the row's nll; pass 2 (with grad) the
// gradient written over z. The GEMMs around it (z = h·wᵀ, ∂h, ∂w) are cuBLAS calls of the caller.
#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  if (M == -INFINITY) return;  // both empty
  s = s * __expf(m - M) + s2 * __expf(m2 - M);
  m = M;
}

// The block's (max, Σ exp(l − max)) in every thread.
__device__ __forceinline__ void block_merge(float& m, float& s) {
  __shared__ float sm_m[32], sm_s[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) merge(m, s, __shfl_xor_sync(kFull, m, o), __shfl_xor_sync(kFull, s, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  if (lane == 0) {
    sm_m[warp] = m;
    sm_s[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? sm_m[lane] : -INFINITY;
    s = lane < warps ? sm_s[lane] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) merge(m, s, __shfl_xor_sync(kFull, m, o), __shfl_xor_sync(kFull, s, o));
    if (lane == 0) {
      sm_m[0] = m;
      sm_s[0] = s;
    }
  }
  __syncthreads();
  m = sm_m[0];
  s = sm_s[0];
}

template <int VEC>
__global__ void __launch_bounds__(kThreads) ce_rows_kernel(bf16* z, const int64_t* y, float* nll, int64_t V, float C,
                                                           bool write_grad, float grad_scale) {
  bf16* zr = z + static_cast<int64_t>(blockIdx.x) * V;
  const float inv_c = 1.f / C;
  float m = -INFINITY, s = 0.f;
  for (int64_t c = static_cast<int64_t>(threadIdx.x) * VEC; c < V; c += static_cast<int64_t>(blockDim.x) * VEC) {
    float v[VEC];
    load<VEC>(zr + c, v);
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      const float l = C * tanhf(v[i] * inv_c);
      if (l > m) {
        s = s * __expf(m - l) + 1.f;
        m = l;
      } else {
        s += __expf(l - m);
      }
    }
  }
  block_merge(m, s);
  const float lse = m + logf(s);
  const int64_t t = y[blockIdx.x];
  if (threadIdx.x == 0) nll[blockIdx.x] = lse - C * tanhf(__bfloat162float(zr[t]) * inv_c);
  if (!write_grad) return;
  __syncthreads();  // zr[t] is read above before any thread overwrites it
  for (int64_t c = static_cast<int64_t>(threadIdx.x) * VEC; c < V; c += static_cast<int64_t>(blockDim.x) * VEC) {
    float v[VEC];
    load<VEC>(zr + c, v);
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      const float th = tanhf(v[i] * inv_c);
      const float p = __expf(C * th - lse) - (c + i == t ? 1.f : 0.f);
      v[i] = grad_scale * p * (1.f - th * th);
    }
    store<VEC>(zr + c, v);
  }
}

}  // namespace

void ce_rows(void* z, const int64_t* y, float* nll, int64_t n, int64_t V, float softcap, bool write_grad,
             float grad_scale, cudaStream_t stream) {
  if (n == 0) return;
  auto* zb = static_cast<bf16*>(z);
  if (V % 8 == 0 && aligned16(z))
    ce_rows_kernel<8><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(zb, y, nll, V, softcap, write_grad, grad_scale);
  else
    ce_rows_kernel<1><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(zb, y, nll, V, softcap, write_grad, grad_scale);
}

}  // namespace pgolf::kernels::cuda
