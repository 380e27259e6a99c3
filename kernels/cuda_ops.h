// Host launchers of the fused CUDA kernels (kernels/*.cu), on raw pointers of contiguous tensors and the
// caller's stream; bf16 tensors are passed as void*. Built and declared only in CUDA builds. Each launcher
// takes the 16-byte vector path when the channel count is a multiple of 8 and every pointer is 16-byte
// aligned, the scalar path otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>

namespace pgolf::kernels::cuda {

// Softcapped CE over rows of z (n, V) bf16: nll[r] = logsumexp(l_r) − l_r[y_r], l = C·tanh(z/C). With
// write_grad, z is overwritten by grad_scale · ∂nll_r/∂z_r = grad_scale · (softmax(l_r) − onehot(y_r)) ⊙ (1 − tanh²).
void ce_rows(void* z, const int64_t* y, float* nll, int64_t n, int64_t V, float softcap, bool write_grad,
             float grad_scale, cudaStream_t stream);

// Norm + partial RoPE + gain over rows of D channels (row r at position (r / H) % T, head r % H). out and g are
// dense (rows × D); x and dx hold position p's H heads at p·x_stride (0 = dense, H·D; a multiple of 8 for the
// vector paths), so q and k can be read from and their gradients written into a joint projection buffer.
// cos/sin: (T, R/2) fp32 or null when R = 0; gain (H) fp32 or null.
void norm_rope_fwd(const void* x, const float* cos, const float* sin, const float* gain, void* out, int64_t rows,
                   int64_t T, int64_t H, int64_t D, int64_t R, bool norm, float factor, int64_t x_stride,
                   cudaStream_t stream);
// The number of row groups the backward runs on these pointers (a multiple of H): dgain_partial holds one value
// per group.
int64_t norm_rope_bwd_partials(int64_t rows, int64_t H, int64_t D, int64_t R, const void* x, const void* g,
                               const void* dx, int64_t x_stride);
void norm_rope_bwd(const void* x, const void* g, const float* cos, const float* sin, const float* gain, void* dx,
                   float* dgain_partial, int64_t rows, int64_t T, int64_t H, int64_t D, int64_t R, bool norm,
                   float factor, int64_t x_stride, cudaStream_t stream);
// The largest D the norm kernels take (their shared-memory rows).
constexpr int64_t kMaxNormDim = 1024;

// Row groups of the per-channel reductions (partial buffers have this many rows).
int64_t reduce_groups(int64_t rows, int64_t D);
// out = mix[0] ⊙ x + mix[1] ⊙ x0; backward dx = mix[0] ⊙ g, dx0 = mix[1] ⊙ g, partial (groups × 2D) of
// [Σ g ⊙ x, Σ g ⊙ x0].
void resid_mix_fwd(const void* x, const void* x0, const float* mix, void* out, int64_t rows, int64_t D,
                   cudaStream_t stream);
void resid_mix_bwd(const void* g, const void* x, const void* x0, const float* mix, void* dx, void* dx0,
                   float* partial, int64_t rows, int64_t D, cudaStream_t stream);
// out = x + s ⊙ y; backward dy = s ⊙ g, partial (groups × D) of Σ g ⊙ y (dx = g needs no kernel).
void scale_add_fwd(const void* x, const float* s, const void* y, void* out, int64_t rows, int64_t D,
                   cudaStream_t stream);
void scale_add_bwd(const void* g, const void* y, const float* s, void* dy, float* partial, int64_t rows, int64_t D,
                   cudaStream_t stream);

// A residual op and the RMSNorm × factor of its result, rows × D with D ∈ {256, 512, 768, 1024}
// (residual_norm_applies): mix_norm out = mix[0] ⊙ x + mix[1] ⊙ x0, scale_add_norm out = x + s ⊙ y; both
// n = factor · out · rsqrt(mean(out²) + eps) of the stored (bf16) out. The backward takes out's own gradient
// g_out (null = 0) and n's g_n, and writes dx, dx0 (mix) or dx, dy (scale_add) and partial
// (residual_norm_blocks(rows) × 2D for mix, × D for scale_add) of the coefficient gradients.
bool residual_norm_applies(int64_t D, std::initializer_list<const void*> ps);
int64_t residual_norm_blocks(int64_t rows);
void mix_norm_fwd(const void* x, const void* x0, const float* mix, void* out, void* n, int64_t rows, int64_t D,
                  float factor, cudaStream_t stream);
void mix_norm_bwd(const void* g_out, const void* g_n, const void* out, const void* x, const void* x0, const float* mix,
                  void* dx, void* dx0, float* partial, int64_t rows, int64_t D, float factor, cudaStream_t stream);
void scale_add_norm_fwd(const void* x, const float* s, const void* y, void* out, void* n, int64_t rows, int64_t D,
                        float factor, cudaStream_t stream);
void scale_add_norm_bwd(const void* g_out, const void* g_n, const void* out, const void* y, const float* s, void* dx,
                        void* dy, float* partial, int64_t rows, int64_t D, float factor, cudaStream_t stream);

// LeakyReLU(z, slope)² and its backward dz = g · (z > 0 ? 2z : 2·slope²·z), over n elements.
void leaky_relu2_fwd(const void* z, void* out, int64_t n, float slope, cudaStream_t stream);
void leaky_relu2_bwd(const void* z, const void* g, void* dz, int64_t n, float slope, cudaStream_t stream);

// XSA + per-head gate over rows = B·T·Hkv (position, kv head) rows of d channels, each read by G = H/Hkv query
// heads: out_h = g_h · (y_h − (y_h·v̂) v̂), v̂ = v / max(‖v‖, 1e-12); y, out (B, T, H, d), v (B, T, Hkv, d), gate
// (B, T, H) bf16 or null (g = 1); without xsa v is not read (v̂ = 0). The backward writes dy, dv (xsa) and
// dgate (gate). d at most kMaxXsaDim.
void xsa_gate_fwd(const void* y, const void* v, const void* gate, void* out, int64_t rows, int64_t G, int64_t d,
                  bool xsa, cudaStream_t stream);
void xsa_gate_bwd(const void* dout, const void* y, const void* v, const void* gate, void* dy, void* dv, void* dgate,
                  int64_t rows, int64_t G, int64_t d, bool xsa, cudaStream_t stream);
constexpr int64_t kMaxXsaDim = 256;

}  // namespace pgolf::kernels::cuda
