// A residual op and the RMSNorm of its result in one pass (kernels/cuda_ops.h): resid_mix + norm and
// scale_add + norm. One warp per row of D = 32·E channels, lane l holding channels [l·E, l·E + E) of every row
// it visits, so the per-channel coefficient gradients accumulate in registers across rows; each block then
// adds its warps' sums and writes one partial row (blocks × D), which one ATen sum finishes.
#include <algorithm>
#include <cfloat>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

constexpr int kWarps = 8;

template <int E>
__device__ __forceinline__ void round_bf16(float (&v)[E]) {  // the stored value the norm must see
#pragma unroll
  for (int i = 0; i < E; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i]));
}

// n = factor · v · rsqrt(mean(v²) + eps) of a row held across the warp; returns rsqrt(...).
template <int E>
__device__ __forceinline__ float norm_row(const float (&v)[E], float (&n)[E], int D, float factor) {
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < E; ++i) ss += v[i] * v[i];
  const float r = rsqrtf(warp_sum(ss) / static_cast<float>(D) + FLT_EPSILON);
#pragma unroll
  for (int i = 0; i < E; ++i) n[i] = v[i] * r * factor;
  return r;
}

// g += ∂L/∂v through n = factor · v · r, given gn = ∂L/∂n: r · (factor·gn − v̂ · mean(factor·gn · v̂)), v̂ = v·r.
template <int E>
__device__ __forceinline__ void add_norm_grad(const float (&v)[E], const float (&gn)[E], float (&g)[E], int D,
                                              float factor) {
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < E; ++i) ss += v[i] * v[i];
  const float r = rsqrtf(warp_sum(ss) / static_cast<float>(D) + FLT_EPSILON);
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < E; ++i) dot += gn[i] * factor * v[i] * r;
  dot = warp_sum(dot) / static_cast<float>(D);
#pragma unroll
  for (int i = 0; i < E; ++i) g[i] += r * (gn[i] * factor - v[i] * r * dot);
}

// g = ∂L/∂out of row element range [off, off + E): out's own gradient (g_out; null = 0) plus the norm's, from
// n's gradient g_n and the stored out (returned in v).
template <int E>
__device__ __forceinline__ void residual_grad(const bf16* g_out, const bf16* g_n, const bf16* out, int64_t off, int D,
                                              float factor, float (&g)[E], float (&v)[E]) {
  float gn[E];
  if (g_out) load_e<E>(g_out + off, g);
  else
#pragma unroll
    for (int i = 0; i < E; ++i) g[i] = 0.f;
  load_e<E>(g_n + off, gn);
  load_e<E>(out + off, v);
  add_norm_grad<E>(v, gn, g, D, factor);
}

// Adds the block's warps' channel sums acc (this lane's E channels) and writes them to partial_row.
template <int E>
__device__ void block_channel_sum(const float (&acc)[E], float* partial_row, float* sm, int D) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < E; ++i) sm[warp * D + lane * E + i] = acc[i];
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < kWarps; ++w) s += sm[w * D + c];
    partial_row[c] = s;
  }
  __syncthreads();
}

// Both forward ops: out = α·x + β·y per channel (α null: 1), rounded to bf16, then n = its norm.
template <int E>
__global__ void __launch_bounds__(kWarps * 32) combine_norm_fwd(const bf16* x, const float* alpha, const bf16* y,
                                                                const float* beta, bf16* out, bf16* n_out,
                                                                int64_t rows, float factor) {
  constexpr int D = 32 * E;
  const int lane = threadIdx.x % 32, c = lane * E;
  float al[E], be[E];
#pragma unroll
  for (int i = 0; i < E; ++i) al[i] = alpha ? alpha[c + i] : 1.f, be[i] = beta[c + i];
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    float a[E], b[E], n[E];
    load_e<E>(x + row * D + c, a);
    load_e<E>(y + row * D + c, b);
#pragma unroll
    for (int i = 0; i < E; ++i) a[i] = al[i] * a[i] + be[i] * b[i];
    round_bf16<E>(a);
    norm_row<E>(a, n, D, factor);
    store_e<E>(out + row * D + c, a);
    store_e<E>(n_out + row * D + c, n);
  }
}

template <int E>
__global__ void __launch_bounds__(kWarps * 32) mix_norm_bwd(const bf16* g_out, const bf16* g_n, const bf16* out,
                                                            const bf16* x, const bf16* x0, const float* mix, bf16* dx,
                                                            bf16* dx0, float* partial, int64_t rows, float factor) {
  constexpr int D = 32 * E;
  __shared__ float sm[kWarps * D];
  const int lane = threadIdx.x % 32, c = lane * E;
  float m0[E], m1[E], acc0[E] = {}, acc1[E] = {};
#pragma unroll
  for (int i = 0; i < E; ++i) m0[i] = mix[c + i], m1[i] = mix[D + c + i];
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t off = row * D + c;
    float g[E], v[E], a[E], b[E];
    residual_grad<E>(g_out, g_n, out, off, D, factor, g, v);
    load_e<E>(x + off, a);
    load_e<E>(x0 + off, b);
#pragma unroll
    for (int i = 0; i < E; ++i) {
      acc0[i] += g[i] * a[i];
      acc1[i] += g[i] * b[i];
      a[i] = m0[i] * g[i];
      b[i] = m1[i] * g[i];
    }
    store_e<E>(dx + off, a);
    store_e<E>(dx0 + off, b);
  }
  block_channel_sum<E>(acc0, partial + static_cast<int64_t>(blockIdx.x) * 2 * D, sm, D);
  block_channel_sum<E>(acc1, partial + static_cast<int64_t>(blockIdx.x) * 2 * D + D, sm, D);
}

template <int E>
__global__ void __launch_bounds__(kWarps * 32) sadd_norm_bwd(const bf16* g_out, const bf16* g_n, const bf16* out,
                                                             const bf16* y, const float* s, bf16* dx, bf16* dy,
                                                             float* partial, int64_t rows, float factor) {
  constexpr int D = 32 * E;
  __shared__ float sm[kWarps * D];
  const int lane = threadIdx.x % 32, c = lane * E;
  float sv[E], acc[E] = {};
#pragma unroll
  for (int i = 0; i < E; ++i) sv[i] = s[c + i];
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t off = row * D + c;
    float g[E], v[E], b[E];
    residual_grad<E>(g_out, g_n, out, off, D, factor, g, v);
    load_e<E>(y + off, b);
    store_e<E>(dx + off, g);
#pragma unroll
    for (int i = 0; i < E; ++i) {
      acc[i] += g[i] * b[i];
      b[i] = sv[i] * g[i];
    }
    store_e<E>(dy + off, b);
  }
  block_channel_sum<E>(acc, partial + static_cast<int64_t>(blockIdx.x) * D, sm, D);
}

template <typename Launch>
void dispatch(int64_t D, Launch&& launch) {
  switch (D) {
    case 256: launch(std::integral_constant<int, 8>{}); break;
    case 512: launch(std::integral_constant<int, 16>{}); break;
    case 768: launch(std::integral_constant<int, 24>{}); break;
    default: launch(std::integral_constant<int, 32>{}); break;  // 1024
  }
}

}  // namespace

bool residual_norm_applies(int64_t D, std::initializer_list<const void*> ps) {
  if (D != 256 && D != 512 && D != 768 && D != 1024) return false;
  for (const void* p : ps)
    if (p && !aligned16(p)) return false;
  return true;
}

int64_t residual_norm_blocks(int64_t rows) {
  return std::clamp<int64_t>((rows + kWarps - 1) / kWarps, 1, 1024);
}

void mix_norm_fwd(const void* x, const void* x0, const float* mix, void* out, void* n, int64_t rows, int64_t D,
                  float factor, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(D, [&](auto e) {
    combine_norm_fwd<decltype(e)::value><<<residual_norm_blocks(rows), kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(x), mix, static_cast<const bf16*>(x0), mix + D, static_cast<bf16*>(out),
        static_cast<bf16*>(n), rows, factor);
  });
}

void mix_norm_bwd(const void* g_out, const void* g_n, const void* out, const void* x, const void* x0, const float* mix,
                  void* dx, void* dx0, float* partial, int64_t rows, int64_t D, float factor, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(D, [&](auto e) {
    mix_norm_bwd<decltype(e)::value><<<residual_norm_blocks(rows), kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(g_out), static_cast<const bf16*>(g_n), static_cast<const bf16*>(out),
        static_cast<const bf16*>(x), static_cast<const bf16*>(x0), mix, static_cast<bf16*>(dx), static_cast<bf16*>(dx0),
        partial, rows, factor);
  });
}

void scale_add_norm_fwd(const void* x, const float* s, const void* y, void* out, void* n, int64_t rows, int64_t D,
                        float factor, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(D, [&](auto e) {
    combine_norm_fwd<decltype(e)::value><<<residual_norm_blocks(rows), kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(x), nullptr, static_cast<const bf16*>(y), s, static_cast<bf16*>(out),
        static_cast<bf16*>(n), rows, factor);
  });
}

void scale_add_norm_bwd(const void* g_out, const void* g_n, const void* out, const void* y, const float* s, void* dx,
                        void* dy, float* partial, int64_t rows, int64_t D, float factor, cudaStream_t stream) {
  if (rows == 0) return;
  dispatch(D, [&](auto e) {
    sadd_norm_bwd<decltype(e)::value><<<residual_norm_blocks(rows), kWarps * 32, 0, stream>>>(
        static_cast<const bf16*>(g_out), static_cast<const bf16*>(g_n), static_cast<const bf16*>(out),
        static_cast<const bf16*>(y), s, static_cast<bf16*>(dx), static_cast<bf16*>(dy), partial, rows, factor);
  });
}

}  // namespace pgolf::kernels::cuda
