// Norm + partial RoPE + gain (kernels/cuda_ops.h). One warp per row of D channels: 16-byte loads into a
// shared-memory row, the sum of squares by warp shuffle, the per-channel math on all 32 lanes, 16-byte
// stores. The backward recomputes the normalised row from x (nothing but x is saved) and sums the gain
// gradient per warp; the warp count is a multiple of H, so each warp only ever sees one head.
#include <algorithm>
#include <cfloat>
#include <initializer_list>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

int warps_per_block(int64_t D) { return D <= 256 ? 8 : (D <= 512 ? 4 : 2); }  // ≤ 24 KiB of shared rows

struct RowGeom {
  int64_t T, H;
  int D, R;
  bool norm;
  float factor;
};

// The rotated (pre-scale) value of channel j of a normalised row xb·r.
__device__ __forceinline__ float rope_at(const float* xb, float r, int j, int half, int R, const float* ct,
                                         const float* st) {
  const float a = xb[j] * r;
  if (j < half) return a * ct[j] + xb[j + half] * r * st[j];
  if (j < R) return a * ct[j - half] - xb[j - half] * r * st[j - half];
  return a;
}

template <int VEC>
__device__ __forceinline__ float load_row(const bf16* src, float* dst, int D, int lane) {
  float ss = 0.f;
  for (int c = lane * VEC; c < D; c += 32 * VEC) {
    float v[VEC];
    load<VEC>(src + c, v);
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      dst[c + i] = v[i];
      ss += v[i] * v[i];
    }
  }
  return ss;
}

template <int VEC>
__global__ void fwd_kernel(const bf16* x, const float* cos, const float* sin, const float* gain, bf16* out,
                           int64_t rows, RowGeom g) {
  extern __shared__ float smem[];
  const int wpb = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32, D = g.D, half = g.R / 2;
  float* xb = smem + warp * 2 * D;
  float* ob = xb + D;
  const int64_t W = static_cast<int64_t>(gridDim.x) * wpb;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * wpb + warp; row < rows; row += W) {
    const float ss = warp_sum(load_row<VEC>(x + row * D, xb, D, lane));
    __syncwarp();
    const float r = g.norm ? rsqrtf(ss / static_cast<float>(D) + FLT_EPSILON) : 1.f;
    const int64_t t = (row / g.H) % g.T;
    const float scale = g.factor * (gain ? gain[row % g.H] : 1.f);
    const float* ct = half ? cos + t * half : nullptr;
    const float* st = half ? sin + t * half : nullptr;
    for (int j = lane; j < D; j += 32) ob[j] = rope_at(xb, r, j, half, g.R, ct, st) * scale;
    __syncwarp();
    for (int c = lane * VEC; c < D; c += 32 * VEC) {
      float v[VEC];
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] = ob[c + i];
      store<VEC>(out + row * D + c, v);
    }
    __syncwarp();
  }
}

template <int VEC>
__global__ void bwd_kernel(const bf16* x, const bf16* gout, const float* cos, const float* sin, const float* gain,
                           bf16* dx, float* dgain_partial, int64_t rows, RowGeom g) {
  extern __shared__ float smem[];
  const int wpb = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32, D = g.D, half = g.R / 2;
  float* xb = smem + warp * 3 * D;
  float* gb = xb + D;
  float* gx = gb + D;
  const int64_t W = static_cast<int64_t>(gridDim.x) * wpb, w = static_cast<int64_t>(blockIdx.x) * wpb + warp;
  float gacc = 0.f;  // Σ g · factor · rope(n) of this warp's rows (all of head w % H)
  for (int64_t row = w; row < rows; row += W) {
    const float ss = warp_sum(load_row<VEC>(x + row * D, xb, D, lane));
    load_row<VEC>(gout + row * D, gb, D, lane);
    __syncwarp();
    const float r = g.norm ? rsqrtf(ss / static_cast<float>(D) + FLT_EPSILON) : 1.f;
    const int64_t t = (row / g.H) % g.T;
    const float scale = g.factor * (gain ? gain[row % g.H] : 1.f);
    const float* ct = half ? cos + t * half : nullptr;
    const float* st = half ? sin + t * half : nullptr;
    float dot = 0.f;  // Σ ∂L/∂n · n
    for (int j = lane; j < D; j += 32) {
      gacc += gb[j] * g.factor * rope_at(xb, r, j, half, g.R, ct, st);
      float gn;  // the transposed rotation of ∂L/∂rope = g · scale
      if (j < half) gn = (gb[j] * ct[j] - gb[j + half] * st[j]) * scale;
      else if (j < g.R) gn = (gb[j - half] * st[j - half] + gb[j] * ct[j - half]) * scale;
      else gn = gb[j] * scale;
      gx[j] = gn;
      dot += gn * xb[j] * r;
    }
    dot = warp_sum(dot) / static_cast<float>(D);
    __syncwarp();
    for (int c = lane * VEC; c < D; c += 32 * VEC) {
      float v[VEC];
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] = g.norm ? r * (gx[c + i] - xb[c + i] * r * dot) : gx[c + i];
      store<VEC>(dx + row * D + c, v);
    }
    __syncwarp();
  }
  gacc = warp_sum(gacc);
  if (lane == 0 && dgain_partial) dgain_partial[w] = gacc;
}

int64_t gcd64(int64_t a, int64_t b) { return b == 0 ? a : gcd64(b, a % b); }

int64_t blocks_for(int64_t rows, int64_t H, int wpb) {
  int64_t blocks = std::min<int64_t>((rows + wpb - 1) / wpb, 4096);
  const int64_t m = H / gcd64(wpb, H);  // blocks·wpb must be a multiple of H
  return std::max<int64_t>(1, (blocks + m - 1) / m) * m;
}

bool vec_ok(int64_t D, std::initializer_list<const void*> ps) {
  if (D % 8 != 0) return false;
  for (const void* p : ps)
    if (p && !aligned16(p)) return false;
  return true;
}

}  // namespace

void norm_rope_fwd(const void* x, const float* cos, const float* sin, const float* gain, void* out, int64_t rows,
                   int64_t T, int64_t H, int64_t D, int64_t R, bool norm, float factor, cudaStream_t stream) {
  if (rows == 0) return;
  const int wpb = warps_per_block(D);
  const RowGeom g{T, H, static_cast<int>(D), static_cast<int>(R), norm, factor};
  const auto blocks = static_cast<unsigned>(blocks_for(rows, H, wpb));
  const size_t shm = static_cast<size_t>(wpb) * 2 * D * sizeof(float);
  auto xb = static_cast<const bf16*>(x);
  auto ob = static_cast<bf16*>(out);
  if (vec_ok(D, {x, out}))
    fwd_kernel<8><<<blocks, wpb * 32, shm, stream>>>(xb, cos, sin, gain, ob, rows, g);
  else
    fwd_kernel<1><<<blocks, wpb * 32, shm, stream>>>(xb, cos, sin, gain, ob, rows, g);
}

int64_t norm_rope_bwd_warps(int64_t rows, int64_t H, int64_t D) {
  const int wpb = warps_per_block(D);
  return blocks_for(rows, H, wpb) * wpb;
}

void norm_rope_bwd(const void* x, const void* g, const float* cos, const float* sin, const float* gain, void* dx,
                   float* dgain_partial, int64_t rows, int64_t T, int64_t H, int64_t D, int64_t R, bool norm,
                   float factor, cudaStream_t stream) {
  if (rows == 0) return;
  const int wpb = warps_per_block(D);
  const RowGeom geom{T, H, static_cast<int>(D), static_cast<int>(R), norm, factor};
  const auto blocks = static_cast<unsigned>(blocks_for(rows, H, wpb));
  const size_t shm = static_cast<size_t>(wpb) * 3 * D * sizeof(float);
  auto xb = static_cast<const bf16*>(x);
  auto gb = static_cast<const bf16*>(g);
  auto db = static_cast<bf16*>(dx);
  if (vec_ok(D, {x, g, dx}))
    bwd_kernel<8><<<blocks, wpb * 32, shm, stream>>>(xb, gb, cos, sin, gain, db, dgain_partial, rows, geom);
  else
    bwd_kernel<1><<<blocks, wpb * 32, shm, stream>>>(xb, gb, cos, sin, gain, db, dgain_partial, rows, geom);
}

}  // namespace pgolf::kernels::cuda
