// Device helpers shared by the kernels: bf16 vectors of VEC elements (VEC = 8: one 16-byte access) loaded
// to and stored from fp32, warp sums, and the per-channel tile reduction of the scale gradients.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pgolf::kernels::cuda {

using bf16 = __nv_bfloat16;
constexpr unsigned kFull = 0xffffffffu;

template <int VEC>
__device__ __forceinline__ void load(const bf16* p, float (&v)[VEC]) {
  if constexpr (VEC == 8) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = __bfloat162float(p[i]);
  }
}

template <int VEC>
__device__ __forceinline__ void store(bf16* p, const float (&v)[VEC]) {
  if constexpr (VEC == 8) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) p[i] = __float2bfloat16_rn(v[i]);
  }
}

// E contiguous channels (E a multiple of 8) as E/8 16-byte accesses.
template <int E>
__device__ __forceinline__ void load_e(const bf16* p, float (&v)[E]) {
#pragma unroll
  for (int k = 0; k < E / 8; ++k) load<8>(p + 8 * k, *reinterpret_cast<float(*)[8]>(v + 8 * k));
}

template <int E>
__device__ __forceinline__ void store_e(bf16* p, const float (&v)[E]) {
#pragma unroll
  for (int k = 0; k < E / 8; ++k) store<8>(p + 8 * k, *reinterpret_cast<const float(*)[8]>(v + 8 * k));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Channel tiles: a block of (32, kTileRows) threads covers 32 channel vectors (32·VEC channels) of every
// kTileRows-th row; gridDim.y blocks split the rows. Each thread sums its channels over its rows in
// registers; tile_reduce adds the kTileRows partials of a block and writes one row of `partial`
// (gridDim.y × D), which one ATen sum over dim 0 finishes (deterministic, no atomics).
constexpr int kTileRows = 8;

template <int VEC>
__device__ __forceinline__ void tile_reduce(const float (&acc)[VEC], float* partial_row, int64_t cv, int64_t Dv) {
  __shared__ float sm[kTileRows][32 * VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) sm[threadIdx.y][threadIdx.x * VEC + i] = acc[i];
  __syncthreads();
  if (threadIdx.y == 0 && cv < Dv) {
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      float s = 0.f;
#pragma unroll
      for (int r = 0; r < kTileRows; ++r) s += sm[r][threadIdx.x * VEC + i];
      partial_row[cv * VEC + i] = s;
    }
  }
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace pgolf::kernels::cuda
