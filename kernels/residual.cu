// resid_mix and scale-and-add (kernels/cuda_ops.h): per-channel fp32 coefficients broadcast over rows;
// the backward writes the input gradients and sums the coefficient gradients per channel in registers over
// each block's rows (common.cuh tile_reduce), leaving one partial row per block row-group.
#include <algorithm>
#include <initializer_list>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

constexpr int kThreads = 256;

unsigned flat_blocks(int64_t n_vec) { return static_cast<unsigned>(std::clamp<int64_t>((n_vec + kThreads - 1) / kThreads, 1, 8192)); }

template <int VEC>
__global__ void mix_fwd(const bf16* x, const bf16* x0, const float* mix, bf16* out, int64_t n_vec, int64_t Dv,
                        int64_t D) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i % Dv) * VEC;
    float a[VEC], b[VEC], o[VEC];
    load<VEC>(x + i * VEC, a);
    load<VEC>(x0 + i * VEC, b);
#pragma unroll
    for (int k = 0; k < VEC; ++k) o[k] = mix[c + k] * a[k] + mix[D + c + k] * b[k];
    store<VEC>(out + i * VEC, o);
  }
}

template <int VEC>
__global__ void mix_bwd(const bf16* g, const bf16* x, const bf16* x0, const float* mix, bf16* dx, bf16* dx0,
                        float* partial, int64_t rows, int64_t Dv, int64_t D) {
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float acc0[VEC] = {}, acc1[VEC] = {};
  if (cv < Dv) {
    float m0[VEC], m1[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      m0[k] = mix[cv * VEC + k];
      m1[k] = mix[D + cv * VEC + k];
    }
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * kTileRows + threadIdx.y; r < rows;
         r += static_cast<int64_t>(gridDim.y) * kTileRows) {
      const int64_t off = r * D + cv * VEC;
      float gv[VEC], a[VEC], b[VEC], da[VEC], db[VEC];
      load<VEC>(g + off, gv);
      load<VEC>(x + off, a);
      load<VEC>(x0 + off, b);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        da[k] = m0[k] * gv[k];
        db[k] = m1[k] * gv[k];
        acc0[k] += gv[k] * a[k];
        acc1[k] += gv[k] * b[k];
      }
      store<VEC>(dx + off, da);
      store<VEC>(dx0 + off, db);
    }
  }
  float* prow = partial + static_cast<int64_t>(blockIdx.y) * 2 * D;
  tile_reduce<VEC>(acc0, prow, cv, Dv);
  __syncthreads();  // tile_reduce's shared tile is reused
  tile_reduce<VEC>(acc1, prow + D, cv, Dv);
}

template <int VEC>
__global__ void sadd_fwd(const bf16* x, const float* s, const bf16* y, bf16* out, int64_t n_vec, int64_t Dv) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i % Dv) * VEC;
    float a[VEC], b[VEC], o[VEC];
    load<VEC>(x + i * VEC, a);
    load<VEC>(y + i * VEC, b);
#pragma unroll
    for (int k = 0; k < VEC; ++k) o[k] = a[k] + s[c + k] * b[k];
    store<VEC>(out + i * VEC, o);
  }
}

template <int VEC>
__global__ void sadd_bwd(const bf16* g, const bf16* y, const float* s, bf16* dy, float* partial, int64_t rows,
                         int64_t Dv, int64_t D) {
  const int64_t cv = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float acc[VEC] = {};
  if (cv < Dv) {
    float sv[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) sv[k] = s[cv * VEC + k];
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * kTileRows + threadIdx.y; r < rows;
         r += static_cast<int64_t>(gridDim.y) * kTileRows) {
      const int64_t off = r * D + cv * VEC;
      float gv[VEC], b[VEC], d[VEC];
      load<VEC>(g + off, gv);
      load<VEC>(y + off, b);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        d[k] = sv[k] * gv[k];
        acc[k] += gv[k] * b[k];
      }
      store<VEC>(dy + off, d);
    }
  }
  tile_reduce<VEC>(acc, partial + static_cast<int64_t>(blockIdx.y) * D, cv, Dv);
}

bool vec_ok(int64_t D, std::initializer_list<const void*> ps) {
  if (D % 8 != 0) return false;
  for (const void* p : ps)
    if (!aligned16(p)) return false;
  return true;
}

template <int VEC>
dim3 tile_grid(int64_t rows, int64_t D) {
  return dim3(static_cast<unsigned>((D / VEC + 31) / 32), static_cast<unsigned>(reduce_groups(rows, D)));
}

}  // namespace

int64_t reduce_groups(int64_t rows, int64_t /*D*/) {
  return std::clamp<int64_t>((rows + kTileRows - 1) / kTileRows, 1, 512);
}

void resid_mix_fwd(const void* x, const void* x0, const float* mix, void* out, int64_t rows, int64_t D,
                   cudaStream_t stream) {
  if (rows == 0) return;
  auto a = static_cast<const bf16*>(x), b = static_cast<const bf16*>(x0);
  auto o = static_cast<bf16*>(out);
  if (vec_ok(D, {x, x0, out}))
    mix_fwd<8><<<flat_blocks(rows * D / 8), kThreads, 0, stream>>>(a, b, mix, o, rows * D / 8, D / 8, D);
  else
    mix_fwd<1><<<flat_blocks(rows * D), kThreads, 0, stream>>>(a, b, mix, o, rows * D, D, D);
}

void resid_mix_bwd(const void* g, const void* x, const void* x0, const float* mix, void* dx, void* dx0,
                   float* partial, int64_t rows, int64_t D, cudaStream_t stream) {
  if (rows == 0) return;
  auto gb = static_cast<const bf16*>(g), a = static_cast<const bf16*>(x), b = static_cast<const bf16*>(x0);
  auto da = static_cast<bf16*>(dx), db = static_cast<bf16*>(dx0);
  const dim3 block(32, kTileRows);
  if (vec_ok(D, {g, x, x0, dx, dx0}))
    mix_bwd<8><<<tile_grid<8>(rows, D), block, 0, stream>>>(gb, a, b, mix, da, db, partial, rows, D / 8, D);
  else
    mix_bwd<1><<<tile_grid<1>(rows, D), block, 0, stream>>>(gb, a, b, mix, da, db, partial, rows, D, D);
}

void scale_add_fwd(const void* x, const float* s, const void* y, void* out, int64_t rows, int64_t D,
                   cudaStream_t stream) {
  if (rows == 0) return;
  auto a = static_cast<const bf16*>(x), b = static_cast<const bf16*>(y);
  auto o = static_cast<bf16*>(out);
  if (vec_ok(D, {x, y, out}))
    sadd_fwd<8><<<flat_blocks(rows * D / 8), kThreads, 0, stream>>>(a, s, b, o, rows * D / 8, D / 8);
  else
    sadd_fwd<1><<<flat_blocks(rows * D), kThreads, 0, stream>>>(a, s, b, o, rows * D, D);
}

void scale_add_bwd(const void* g, const void* y, const float* s, void* dy, float* partial, int64_t rows, int64_t D,
                   cudaStream_t stream) {
  if (rows == 0) return;
  auto gb = static_cast<const bf16*>(g), b = static_cast<const bf16*>(y);
  auto d = static_cast<bf16*>(dy);
  const dim3 block(32, kTileRows);
  if (vec_ok(D, {g, y, dy}))
    sadd_bwd<8><<<tile_grid<8>(rows, D), block, 0, stream>>>(gb, b, s, d, partial, rows, D / 8, D);
  else
    sadd_bwd<1><<<tile_grid<1>(rows, D), block, 0, stream>>>(gb, b, s, d, partial, rows, D, D);
}

}  // namespace pgolf::kernels::cuda
