// XSA and the per-head attention gate (kernels/cuda_ops.h). One group of L lanes takes one (position, kv head)
// row: its v and the G query heads that read it, so v and its norm are loaded and computed once per group.
// Each lane holds K chunks of VEC channels (vector path: VEC 8, one chunk, L = d/8; scalar path: VEC 1,
// L 32, up to 8 channels a lane); every dot product is an fp32 sum over the group's lanes.
#include <algorithm>

#include "kernels/common.cuh"
#include "kernels/cuda_ops.h"

namespace pgolf::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kNormFloor = 1e-12f;  // the composition's clamp_min of ‖v‖

template <int L>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// A lane's channels of one d-channel row: chunk k holds channels (lane + L k)·VEC ... + VEC − 1.
template <int VEC, int L, int K>
struct Row {
  float x[K][VEC];

  __device__ __forceinline__ void load(const bf16* p, int lane, int d, bool live) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = (lane + L * k) * VEC;
      if (live && c < d) {
        pgolf::kernels::cuda::load<VEC>(p + c, x[k]);
      } else {
#pragma unroll
        for (int i = 0; i < VEC; ++i) x[k][i] = 0.f;
      }
    }
  }
  __device__ __forceinline__ void store(bf16* p, int lane, int d, bool live) const {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = (lane + L * k) * VEC;
      if (live && c < d) pgolf::kernels::cuda::store<VEC>(p + c, x[k]);
    }
  }
  __device__ __forceinline__ float dot(const Row& o) const {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int i = 0; i < VEC; ++i) s += x[k][i] * o.x[k][i];
    return group_sum<L>(s);
  }
};

// v̂ = v / max(‖v‖, floor) of one row; returns 1 / max(‖v‖, floor) and whether ‖v‖ passed the floor.
template <int VEC, int L, int K>
__device__ __forceinline__ float unit(Row<VEC, L, K>& v, bool& above) {
  const float n = sqrtf(v.dot(v));
  above = n > kNormFloor;
  const float inv = 1.f / fmaxf(n, kNormFloor);
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int i = 0; i < VEC; ++i) v.x[k][i] *= inv;
  return inv;
}

// out_h = g_h · (y_h − (y_h·v̂) v̂) for the G query heads h of each kv row (no XSA: v̂ = 0; no gate: g = 1).
template <int VEC, int L, int K>
__global__ void fwd(const bf16* y, const bf16* v, const bf16* gate, bf16* out, int64_t rows, int G, int d, bool xsa) {
  const int lane = threadIdx.x % L;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / L;
  const bool live = row < rows;
  Row<VEC, L, K> vn, yh;
  if (xsa) {
    vn.load(v + row * d, lane, d, live);
    bool above;
    unit(vn, above);
  }
  for (int g = 0; g < G; ++g) {
    const int64_t h = row * G + g;  // (position, query head) of the (B, T, H, d) rows
    yh.load(y + h * d, lane, d, live);
    const float a = xsa ? yh.dot(vn) : 0.f;
    const float s = gate && live ? __bfloat162float(gate[h]) : 1.f;
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int i = 0; i < VEC; ++i) yh.x[k][i] = s * (yh.x[k][i] - a * (xsa ? vn.x[k][i] : 0.f));
    yh.store(out + h * d, lane, d, live);
  }
}

// With z_h = y_h − a_h v̂ (a_h = y_h·v̂), dz_h = g_h dO_h, b_h = dz_h·v̂:
//   dy_h = dz_h − b_h v̂,   dg_h = dO_h·z_h,   dv̂ = −Σ_h (a_h dz_h + b_h y_h),
//   dv = (dv̂ − (dv̂·v̂) v̂) / ‖v‖ above the floor, dv̂ / floor below it (the clamp passes no gradient to ‖v‖).
template <int VEC, int L, int K>
__global__ void bwd(const bf16* dout, const bf16* y, const bf16* v, const bf16* gate, bf16* dy, bf16* dv, bf16* dgate,
                    int64_t rows, int G, int d, bool xsa) {
  const int lane = threadIdx.x % L;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / L;
  const bool live = row < rows;
  Row<VEC, L, K> vn, yh, gh, dvn;
  bool above = true;
  float inv = 0.f;
  if (xsa) {
    vn.load(v + row * d, lane, d, live);
    inv = unit(vn, above);
  }
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int i = 0; i < VEC; ++i) dvn.x[k][i] = 0.f;
  for (int g = 0; g < G; ++g) {
    const int64_t h = row * G + g;
    yh.load(y + h * d, lane, d, live);
    gh.load(dout + h * d, lane, d, live);
    const float a = xsa ? yh.dot(vn) : 0.f;
    if (gate) {
      float zg = 0.f;  // dO·z
#pragma unroll
      for (int k = 0; k < K; ++k)
#pragma unroll
        for (int i = 0; i < VEC; ++i) zg += gh.x[k][i] * (yh.x[k][i] - a * (xsa ? vn.x[k][i] : 0.f));
      zg = group_sum<L>(zg);
      const float s = live ? __bfloat162float(gate[h]) : 0.f;
      if (live && lane == 0) dgate[h] = __float2bfloat16_rn(zg);
#pragma unroll
      for (int k = 0; k < K; ++k)
#pragma unroll
        for (int i = 0; i < VEC; ++i) gh.x[k][i] *= s;  // now dz
    }
    if (xsa) {
      const float b = gh.dot(vn);
#pragma unroll
      for (int k = 0; k < K; ++k)
#pragma unroll
        for (int i = 0; i < VEC; ++i) {
          dvn.x[k][i] -= a * gh.x[k][i] + b * yh.x[k][i];
          gh.x[k][i] -= b * vn.x[k][i];  // now dy
        }
    }
    gh.store(dy + h * d, lane, d, live);
  }
  if (!xsa) return;
  const float c = above ? dvn.dot(vn) : 0.f;
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int i = 0; i < VEC; ++i) dvn.x[k][i] = (dvn.x[k][i] - c * vn.x[k][i]) * inv;
  dvn.store(dv + row * d, lane, d, live);
}

template <int VEC, int L, int K>
unsigned blocks(int64_t rows) {
  return static_cast<unsigned>(std::max<int64_t>(1, (rows * L + kThreads - 1) / kThreads));
}

// The vector path when d/8 is a power of two up to 32 lanes and every pointer is 16-byte aligned.
int vector_lanes(int d, std::initializer_list<const void*> ptrs) {
  if (d % 8 != 0 || d / 8 > 32 || ((d / 8) & (d / 8 - 1)) != 0) return 0;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return 0;
  return d / 8;
}

}  // namespace

#define PGOLF_XSA_DISPATCH(KERNEL, ROWS, ...)                                                         \
  switch (lanes) {                                                                                   \
    case 1: KERNEL<8, 1, 1><<<blocks<8, 1, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;      \
    case 2: KERNEL<8, 2, 1><<<blocks<8, 2, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;      \
    case 4: KERNEL<8, 4, 1><<<blocks<8, 4, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;      \
    case 8: KERNEL<8, 8, 1><<<blocks<8, 8, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;      \
    case 16: KERNEL<8, 16, 1><<<blocks<8, 16, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;   \
    case 32: KERNEL<8, 32, 1><<<blocks<8, 32, 1>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;   \
    default: KERNEL<1, 32, 8><<<blocks<1, 32, 8>(ROWS), kThreads, 0, stream>>>(__VA_ARGS__); break;   \
  }

void xsa_gate_fwd(const void* y, const void* v, const void* gate, void* out, int64_t rows, int64_t G, int64_t d,
                  bool xsa, cudaStream_t stream) {
  if (rows == 0) return;
  const int lanes = vector_lanes(static_cast<int>(d), {y, xsa ? v : nullptr, out});
  auto yb = static_cast<const bf16*>(y), vb = static_cast<const bf16*>(v), gb = static_cast<const bf16*>(gate);
  auto ob = static_cast<bf16*>(out);
  PGOLF_XSA_DISPATCH(fwd, rows, yb, vb, gb, ob, rows, static_cast<int>(G), static_cast<int>(d), xsa)
}

void xsa_gate_bwd(const void* dout, const void* y, const void* v, const void* gate, void* dy, void* dv, void* dgate,
                  int64_t rows, int64_t G, int64_t d, bool xsa, cudaStream_t stream) {
  if (rows == 0) return;
  const int lanes = vector_lanes(static_cast<int>(d), {dout, y, xsa ? v : nullptr, dy, xsa ? dv : nullptr});
  auto ob = static_cast<const bf16*>(dout), yb = static_cast<const bf16*>(y), vb = static_cast<const bf16*>(v);
  auto gb = static_cast<const bf16*>(gate);
  auto dyb = static_cast<bf16*>(dy), dvb = static_cast<bf16*>(dv), dgb = static_cast<bf16*>(dgate);
  PGOLF_XSA_DISPATCH(bwd, rows, ob, yb, vb, gb, dyb, dvb, dgb, rows, static_cast<int>(G), static_cast<int>(d), xsa)
}

#undef PGOLF_XSA_DISPATCH

}  // namespace pgolf::kernels::cuda
