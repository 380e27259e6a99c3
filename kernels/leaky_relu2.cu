// LeakyReLU² (kernels/cuda_ops.h): elementwise, 16-byte vectors, grid-stride; the backward reads only z.
#include <algorithm>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <int VEC>
__global__ void fwd(const bf16* z, bf16* out, int64_t n_vec, float slope) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[VEC];
    load<VEC>(z + i * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float a = v[k] > 0.f ? v[k] : slope * v[k];
      v[k] = a * a;
    }
    store<VEC>(out + i * VEC, v);
  }
}

template <int VEC>
__global__ void bwd(const bf16* z, const bf16* g, bf16* dz, int64_t n_vec, float slope) {
  const float s2 = 2.f * slope * slope;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[VEC], gv[VEC];
    load<VEC>(z + i * VEC, v);
    load<VEC>(g + i * VEC, gv);
#pragma unroll
    for (int k = 0; k < VEC; ++k) v[k] = gv[k] * (v[k] > 0.f ? 2.f * v[k] : s2 * v[k]);
    store<VEC>(dz + i * VEC, v);
  }
}

unsigned blocks(int64_t n_vec) { return static_cast<unsigned>(std::clamp<int64_t>((n_vec + kThreads - 1) / kThreads, 1, 8192)); }

}  // namespace

void leaky_relu2_fwd(const void* z, void* out, int64_t n, float slope, cudaStream_t stream) {
  if (n == 0) return;
  auto a = static_cast<const bf16*>(z);
  auto o = static_cast<bf16*>(out);
  if (n % 8 == 0 && aligned16(z) && aligned16(out))
    fwd<8><<<blocks(n / 8), kThreads, 0, stream>>>(a, o, n / 8, slope);
  else
    fwd<1><<<blocks(n), kThreads, 0, stream>>>(a, o, n, slope);
}

void leaky_relu2_bwd(const void* z, const void* g, void* dz, int64_t n, float slope, cudaStream_t stream) {
  if (n == 0) return;
  auto a = static_cast<const bf16*>(z), gb = static_cast<const bf16*>(g);
  auto d = static_cast<bf16*>(dz);
  if (n % 8 == 0 && aligned16(z) && aligned16(g) && aligned16(dz))
    bwd<8><<<blocks(n / 8), kThreads, 0, stream>>>(a, gb, d, n / 8, slope);
  else
    bwd<1><<<blocks(n), kThreads, 0, stream>>>(a, gb, d, n, slope);
}

}  // namespace pgolf::kernels::cuda
