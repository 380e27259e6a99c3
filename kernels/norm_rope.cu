// Norm + partial RoPE + gain (kernels/cuda_ops.h). The backward recomputes the normalised row from x (nothing
// but x is saved) and sums the gain gradient per row group; the group count is a multiple of H, so each group
// only ever sees one head. Two paths:
//  - registers (the seeds' shapes): a row of D = L·E channels lives in L lanes, E channels each (E/8 16-byte
//    accesses), 32/L rows per warp; sums by shuffles inside the L-lane segment; channel c's RoPE partner
//    c ± R/2 sits R/(2E) lanes away and comes by one shuffle per channel. Taken when D/8 is a
//    power of two ≤ 32 or D a multiple of 256, R/2 a multiple of E, and every pointer 16-byte aligned.
//  - shared memory (any D ≤ kMaxNormDim): one warp per row staged in shared memory.
#include <algorithm>
#include <cfloat>
#include <initializer_list>
#include <type_traits>

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
  int64_t xs;  // elements between positions of x and dx (H·D when dense; wider inside a joint q/k/v buffer)
  // Where row r = (position, head) starts in x and dx.
  __device__ int64_t x_at(int64_t r) const { return (r / H) * xs + (r % H) * D; }
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
    const float ss = warp_sum(load_row<VEC>(x + g.x_at(row), xb, D, lane));
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
    const float ss = warp_sum(load_row<VEC>(x + g.x_at(row), xb, D, lane));
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
      store<VEC>(dx + g.x_at(row) + c, v);
    }
    __syncwarp();
  }
  gacc = warp_sum(gacc);
  if (lane == 0 && dgain_partial) dgain_partial[w] = gacc;
}


// ---- register path ----

constexpr int kRegWarps = 8;  // warps per block

__device__ __forceinline__ float seg_sum(float v, int L) {  // sum over an aligned segment of L lanes
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Where a lane's E channels [c0, c0 + E) sit: 0 = first RoPE half, 1 = second half, 2 = not rotated; src =
// the lane holding their partners; col = their first column in the (T, R/2) tables.
struct Lane {
  int region, src, col;
  __device__ Lane(int sub, int E, int half) {
    const int c0 = sub * E, pl = half / E;
    region = c0 < half ? 0 : (c0 < 2 * half ? 1 : 2);
    src = region == 0 ? sub + pl : (region == 1 ? sub - pl : sub);
    col = region == 0 ? c0 : c0 - half;
  }
};

// o = rotate(n) (sign = +1) or its transpose (sign = −1) on this lane's channels; every lane of the warp calls it.
template <int E>
__device__ __forceinline__ void rotate_e(const float (&n)[E], float (&o)[E], const Lane& ln, int L, float sign,
                                         const float* ct, const float* st) {
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const float p = __shfl_sync(kFull, n[i], ln.src, L);
    if (ln.region == 2) o[i] = n[i];
    else {
      const float c = __ldg(ct + ln.col + i), s = __ldg(st + ln.col + i) * sign;
      o[i] = ln.region == 0 ? n[i] * c + p * s : n[i] * c - p * s;
    }
  }
}

template <int E>
__global__ void __launch_bounds__(kRegWarps * 32) fwd_reg_kernel(const bf16* x, const float* cos, const float* sin,
                                                                 const float* gain, bf16* out, int64_t rows,
                                                                 RowGeom g, int L) {
  const int lane = threadIdx.x & 31, sub = lane % L, G = 32 / L, D = g.D, half = g.R / 2;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kRegWarps + threadIdx.x / 32) * G + lane / L;
  const int64_t S = static_cast<int64_t>(gridDim.x) * kRegWarps * G;
  const Lane ln(sub, E, half);
  const float scale = g.factor * (gain ? gain[first % g.H] : 1.f);  // S is a multiple of H: one head per group
  for (int64_t row = first; row - lane / L < rows; row += S) {  // warp-uniform trip count: shuffles below
    const bool valid = row < rows;
    float v[E], o[E];
    if (valid) load_e<E>(x + g.x_at(row) + sub * E, v);
    else
#pragma unroll
      for (int i = 0; i < E; ++i) v[i] = 0.f;
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < E; ++i) ss += v[i] * v[i];
    ss = seg_sum(ss, L);
    const float r = g.norm ? rsqrtf(ss / static_cast<float>(D) + FLT_EPSILON) : 1.f;
#pragma unroll
    for (int i = 0; i < E; ++i) v[i] *= r;
    if (half) {
      const int64_t t = valid ? (row / g.H) % g.T : 0;
      rotate_e<E>(v, o, ln, L, 1.f, cos + t * half, sin + t * half);
    } else {
#pragma unroll
      for (int i = 0; i < E; ++i) o[i] = v[i];
    }
#pragma unroll
    for (int i = 0; i < E; ++i) o[i] *= scale;
    if (valid) store_e<E>(out + row * D + sub * E, o);
  }
}

template <int E>
__global__ void __launch_bounds__(kRegWarps * 32) bwd_reg_kernel(const bf16* x, const bf16* gout, const float* cos,
                                                                 const float* sin, const float* gain, bf16* dx,
                                                                 float* dgain_partial, int64_t rows, RowGeom g,
                                                                 int L) {
  const int lane = threadIdx.x & 31, sub = lane % L, G = 32 / L, D = g.D, half = g.R / 2;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kRegWarps + threadIdx.x / 32) * G + lane / L;
  const int64_t S = static_cast<int64_t>(gridDim.x) * kRegWarps * G;
  const Lane ln(sub, E, half);
  const float scale = g.factor * (gain ? gain[first % g.H] : 1.f);
  float gacc = 0.f;  // Σ g · factor · rope(n) over this group's rows (all of head first % H)
  for (int64_t row = first; row - lane / L < rows; row += S) {
    const bool valid = row < rows;
    float n[E], gs[E], gn[E];
    if (valid) {
      load_e<E>(x + g.x_at(row) + sub * E, n);
      load_e<E>(gout + row * D + sub * E, gs);
    } else {
#pragma unroll
      for (int i = 0; i < E; ++i) n[i] = gs[i] = 0.f;
    }
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < E; ++i) ss += n[i] * n[i];
    ss = seg_sum(ss, L);
    const float r = g.norm ? rsqrtf(ss / static_cast<float>(D) + FLT_EPSILON) : 1.f;
#pragma unroll
    for (int i = 0; i < E; ++i) n[i] *= r;
    const int64_t t = valid ? (row / g.H) % g.T : 0;
    const float* ct = half ? cos + t * half : nullptr;
    const float* st = half ? sin + t * half : nullptr;
    if (gain) {  // the gain gradient needs the rotated row itself
      if (half) rotate_e<E>(n, gn, ln, L, 1.f, ct, st);
      else
#pragma unroll
        for (int i = 0; i < E; ++i) gn[i] = n[i];
#pragma unroll
      for (int i = 0; i < E; ++i) gacc += gs[i] * g.factor * gn[i];
    }
#pragma unroll
    for (int i = 0; i < E; ++i) gs[i] *= scale;
    if (half) rotate_e<E>(gs, gn, ln, L, -1.f, ct, st);  // ∂L/∂n: the transposed rotation of g · scale
    else
#pragma unroll
      for (int i = 0; i < E; ++i) gn[i] = gs[i];
    if (g.norm) {
      float dot = 0.f;  // Σ ∂L/∂n · n
#pragma unroll
      for (int i = 0; i < E; ++i) dot += gn[i] * n[i];
      dot = seg_sum(dot, L) / static_cast<float>(D);
#pragma unroll
      for (int i = 0; i < E; ++i) gn[i] = r * (gn[i] - n[i] * dot);
    }
    if (valid) store_e<E>(dx + g.x_at(row) + sub * E, gn);
  }
  gacc = seg_sum(gacc, L);
  if (sub == 0 && dgain_partial) dgain_partial[first] = gacc;
}

// The register path's E (channels per lane), or 0 when the shared-memory path must run.
int reg_channels(int64_t D, int64_t R, std::initializer_list<const void*> ps) {
  int E = 0;
  if (D % 8 == 0 && D <= 256 && ((D / 8) & (D / 8 - 1)) == 0) E = 8;
  else if (D % 256 == 0 && D <= kMaxNormDim) E = static_cast<int>(D / 32);
  if (E == 0 || (R / 2) % E != 0) return 0;
  for (const void* p : ps)
    if (p && !aligned16(p)) return 0;
  return E;
}

template <typename Launch>
void dispatch_e(int E, Launch&& launch) {
  switch (E) {
    case 8: launch(std::integral_constant<int, 8>{}); break;
    case 16: launch(std::integral_constant<int, 16>{}); break;
    case 24: launch(std::integral_constant<int, 24>{}); break;
    default: launch(std::integral_constant<int, 32>{}); break;
  }
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

// The register path's grid: blocks · kRegWarps · (32 / L) groups, a multiple of H.
int64_t reg_blocks(int64_t rows, int64_t H, int L) {
  const int64_t per_block = kRegWarps * (32 / L);
  int64_t blocks = std::min<int64_t>((rows + per_block - 1) / per_block, 2048);
  const int64_t m = H / gcd64(per_block, H);
  return std::max<int64_t>(1, (blocks + m - 1) / m) * m;
}

int lanes_per_row(int64_t D, int E) { return static_cast<int>(D / E); }

}  // namespace

void norm_rope_fwd(const void* x, const float* cos, const float* sin, const float* gain, void* out, int64_t rows,
                   int64_t T, int64_t H, int64_t D, int64_t R, bool norm, float factor, int64_t x_stride,
                   cudaStream_t stream) {
  if (rows == 0) return;
  const RowGeom g{T, H, static_cast<int>(D), static_cast<int>(R), norm, factor, x_stride ? x_stride : H * D};
  auto xb = static_cast<const bf16*>(x);
  auto ob = static_cast<bf16*>(out);
  if (const int E = g.xs % 8 == 0 ? reg_channels(D, R, {x, out}) : 0) {
    const int L = lanes_per_row(D, E);
    const auto blocks = static_cast<unsigned>(reg_blocks(rows, H, L));
    dispatch_e(E, [&](auto e) {
      fwd_reg_kernel<decltype(e)::value><<<blocks, kRegWarps * 32, 0, stream>>>(xb, cos, sin, gain, ob, rows, g, L);
    });
    return;
  }
  const int wpb = warps_per_block(D);
  const auto blocks = static_cast<unsigned>(blocks_for(rows, H, wpb));
  const size_t shm = static_cast<size_t>(wpb) * 2 * D * sizeof(float);
  if (g.xs % 8 == 0 && vec_ok(D, {x, out}))
    fwd_kernel<8><<<blocks, wpb * 32, shm, stream>>>(xb, cos, sin, gain, ob, rows, g);
  else
    fwd_kernel<1><<<blocks, wpb * 32, shm, stream>>>(xb, cos, sin, gain, ob, rows, g);
}

int64_t norm_rope_bwd_partials(int64_t rows, int64_t H, int64_t D, int64_t R, const void* x, const void* g,
                               const void* dx, int64_t x_stride) {
  const int64_t xs = x_stride ? x_stride : H * D;
  if (const int E = xs % 8 == 0 ? reg_channels(D, R, {x, g, dx}) : 0) {
    const int L = lanes_per_row(D, E);
    return reg_blocks(rows, H, L) * kRegWarps * (32 / L);
  }
  const int wpb = warps_per_block(D);
  return blocks_for(rows, H, wpb) * wpb;
}

void norm_rope_bwd(const void* x, const void* g, const float* cos, const float* sin, const float* gain, void* dx,
                   float* dgain_partial, int64_t rows, int64_t T, int64_t H, int64_t D, int64_t R, bool norm,
                   float factor, int64_t x_stride, cudaStream_t stream) {
  if (rows == 0) return;
  const RowGeom geom{T, H, static_cast<int>(D), static_cast<int>(R), norm, factor, x_stride ? x_stride : H * D};
  auto xb = static_cast<const bf16*>(x);
  auto gb = static_cast<const bf16*>(g);
  auto db = static_cast<bf16*>(dx);
  if (const int E = geom.xs % 8 == 0 ? reg_channels(D, R, {x, g, dx}) : 0) {
    const int L = lanes_per_row(D, E);
    const auto blocks = static_cast<unsigned>(reg_blocks(rows, H, L));
    dispatch_e(E, [&](auto e) {
      bwd_reg_kernel<decltype(e)::value>
          <<<blocks, kRegWarps * 32, 0, stream>>>(xb, gb, cos, sin, gain, db, dgain_partial, rows, geom, L);
    });
    return;
  }
  const int wpb = warps_per_block(D);
  const auto blocks = static_cast<unsigned>(blocks_for(rows, H, wpb));
  const size_t shm = static_cast<size_t>(wpb) * 3 * D * sizeof(float);
  if (geom.xs % 8 == 0 && vec_ok(D, {x, g, dx}))
    bwd_kernel<8><<<blocks, wpb * 32, shm, stream>>>(xb, gb, cos, sin, gain, db, dgain_partial, rows, geom);
  else
    bwd_kernel<1><<<blocks, wpb * 32, shm, stream>>>(xb, gb, cos, sin, gain, db, dgain_partial, rows, geom);
}

}  // namespace pgolf::kernels::cuda
