// Variable-length causal attention: document-isolated attention over a packed token axis (spec §3.2).
// Each segment [cu_seqlens[i], cu_seqlens[i+1]) attends causally to itself only.
#pragma once

#include <torch/torch.h>

namespace pgolf {

// q: (N, H, d_h); k, v: (N, Hkv, d_h) with H a multiple of Hkv (query head h reads kv head h / (H/Hkv));
// cu_seqlens: int32 (S+1) non-decreasing offsets from 0 to N (empty segments allowed, as from padding);
// max_seqlen ≥ the longest segment. Softmax scale 1/√d_h. Returns (N, H, d_h).
// On CUDA in bf16/fp16 this runs ATen's flash attention with cumulative sequence lengths (forward and
// backward as one autograd Function); elsewhere it runs varlen_causal_attention_reference.
torch::Tensor varlen_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& cu_seqlens, int64_t max_seqlen);

// The reference path: dense causal SDPA on each segment in turn (differentiable through ATen's SDPA).
torch::Tensor varlen_causal_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                const torch::Tensor& cu_seqlens);

// Whether varlen_causal_attention takes the fused flash path for these inputs.
bool varlen_uses_flash(const torch::Tensor& q);

}  // namespace pgolf
