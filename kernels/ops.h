// Fused training ops (issue 13). Each op has two implementations with one meaning:
//   * an ATen composition (namespace compose): what the CPU build runs, bit for bit the models' former
//     code, and the oracle the kernel tests compare against;
//   * a torch::autograd::Function whose forward and backward call fused CUDA kernels (kernels/*.cu) on
//     contiguous bf16 CUDA tensors, and explicit ATen formulas of the same forward and backward elsewhere
//     (so the CPU tests check the backward math the kernels implement, in fp64).
// The public ops pick the Function when `fused` is set and the kernels apply (a CUDA build, a bf16 CUDA
// input), the composition otherwise. No op synchronises with the host.
#pragma once

#include <torch/torch.h>

namespace pgolf::kernels {

// True when this build has the CUDA kernels and `x` is a bf16 CUDA tensor they take.
bool applies(const torch::Tensor& x);

// (a) Softcapped cross-entropy of the tied head, mean over tokens:
//   z = h·wᵀ (in h's dtype), l = C·tanh(z/C) (fp32), nll_i = logsumexp(l_i) − l_i[y_i].
// h: (N, D) compute dtype, w: (V, D) (the fp32 master; its gradient comes back in its dtype), y: (N) int64.
// The fused form runs in chunks of `chunk` tokens: no N×V fp32 tensor exists; with grad enabled the forward
// already computes ∂/∂h and ∂/∂w (so the logits are made once) and the backward only scales them.
torch::Tensor softcap_ce_mean(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y, double softcap,
                              bool fused, int64_t chunk = 8192);
// Per-token nll (N) fp32; fused (chunked) only where no gradient is needed (evaluation).
torch::Tensor softcap_ce_tokens(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y, double softcap,
                                bool fused, int64_t chunk = 8192);

// (b, c) Per-row RMSNorm, partial half-split RoPE and a gain, on x (B, T, H, d) — a (N, D) block input is
// (N, 1, 1, D) with no RoPE:
//   n = x·rsqrt(mean(x²) + eps) (eps = the dtype's machine epsilon; skipped when !norm)
//   rope on channels [0, R): (n_c, n_{c+R/2}) → (n_c cos + n_{c+R/2} sin, n_{c+R/2} cos − n_c sin), θ = t·ω_c
//   out = factor · gain[h] · rope(n)       (gain: (H) or undefined = 1)
// cos, sin: (T, R/2) fp32 tables (undefined when R = 0).
torch::Tensor norm_rope_gain(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const torch::Tensor& gain, bool norm, double factor, bool fused);
// RMSNorm(x)·factor over the last dim of any shape (the block input).
torch::Tensor rms_norm_scaled(const torch::Tensor& x, double factor, bool fused);

// (d) resid_mix: mix[0] ⊙ x + mix[1] ⊙ x0, mix (2, D) fp32 master, x and x0 (..., D).
torch::Tensor resid_mix(const torch::Tensor& x, const torch::Tensor& x0, const torch::Tensor& mix, bool fused);
// x + s ⊙ y, s (D) fp32 master (the attention / MLP output scales).
torch::Tensor scale_add(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& y, bool fused);

// (d') A residual op and the block's next normalised input in one pass each way, {out, n}:
//   mix_norm:       out = resid_mix(x, x0, mix),  n = rms_norm_scaled(out, factor)
//   scale_add_norm: out = scale_add(x, s, y),     n = rms_norm_scaled(out, factor)
// Fused for bf16 CUDA rows of D ∈ {256, 512, 768, 1024}; otherwise the two ops above, one after the other.
std::pair<torch::Tensor, torch::Tensor> mix_norm(const torch::Tensor& x, const torch::Tensor& x0, const torch::Tensor& mix,
                                                 double factor, bool fused);
std::pair<torch::Tensor, torch::Tensor> scale_add_norm(const torch::Tensor& x, const torch::Tensor& s,
                                                       const torch::Tensor& y, double factor, bool fused);

// (e) LeakyReLU(z, slope)²; its backward gate is 2z for z > 0 and 2·slope²·z otherwise.
torch::Tensor leaky_relu2(const torch::Tensor& z, double slope, bool fused);

// (f) XSA then the attention's per-head output gate, on y (B, T, H, d_h) read from v (B, T, Hkv, d_h):
//   z_h = y_h − (y_h·v̂) v̂ with v̂ = v / max(‖v‖, 1e-12) the unit value of the kv head h reads (xsa), else y_h;
//   out_h = g_h · z_h with gate g (B, T, H) in y's dtype, or out = z when gate is undefined.
torch::Tensor xsa_gate(const torch::Tensor& y, const torch::Tensor& v, const torch::Tensor& gate, bool xsa, bool fused);

// (g) The attention's input projection split into heads: y = x·wᵀ (x (B, T, D), w (D + 2·Hkv·d + Z, D) in x's
// dtype: W_q, W_k, W_v and Z extra rows stacked), then
//   q = norm_rope_gain(y[..., :D] as (B, T, H, d), q_gain), k = norm_rope_gain(y[..., D : D+kv] as (B, T, Hkv, d)),
//   v = y[..., D+kv : D+2kv] as (B, T, Hkv, d), z = y[..., D+2kv :] (B, T, Z) (e.g. a gate's logits).
// The fused form reads q and k inside y and writes their gradients into one dy: no head tensor is copied.
struct QkvHeads {
  torch::Tensor q, k, v, z;
};
QkvHeads qkv_heads(const torch::Tensor& x, const torch::Tensor& w, int64_t H, int64_t Hkv, const torch::Tensor& cos,
                   const torch::Tensor& sin, const torch::Tensor& q_gain, bool norm, bool fused);

namespace compose {  // the ATen compositions (the models' code before fusion)
torch::Tensor softcap_ce(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y, double softcap, bool mean);
torch::Tensor norm_rope_gain(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const torch::Tensor& gain, bool norm, double factor);
torch::Tensor resid_mix(const torch::Tensor& x, const torch::Tensor& x0, const torch::Tensor& mix);
torch::Tensor scale_add(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& y);
torch::Tensor leaky_relu2(const torch::Tensor& z, double slope);
torch::Tensor exclusive_self_attention(const torch::Tensor& y, const torch::Tensor& v);
torch::Tensor xsa_gate(const torch::Tensor& y, const torch::Tensor& v, const torch::Tensor& gate, bool xsa);
QkvHeads qkv_heads(const torch::Tensor& x, const torch::Tensor& w, int64_t H, int64_t Hkv, const torch::Tensor& cos,
                   const torch::Tensor& sin, const torch::Tensor& q_gain, bool norm);
}  // namespace compose

namespace function {  // the autograd Functions, on any device (tests call them on the CPU in fp64)
torch::Tensor softcap_ce_mean(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y, double softcap,
                              int64_t chunk);
torch::Tensor softcap_ce_tokens_nograd(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& y,
                                       double softcap, int64_t chunk);
torch::Tensor norm_rope_gain(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const torch::Tensor& gain, bool norm, double factor);
torch::Tensor resid_mix(const torch::Tensor& x, const torch::Tensor& x0, const torch::Tensor& mix);
torch::Tensor scale_add(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& y);
torch::Tensor leaky_relu2(const torch::Tensor& z, double slope);
torch::Tensor xsa_gate(const torch::Tensor& y, const torch::Tensor& v, const torch::Tensor& gate, bool xsa);
}  // namespace function

}  // namespace pgolf::kernels
