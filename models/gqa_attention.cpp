// Grouped-query causal self-attention (spec training §2.3), in order:
//   q = W_q n, k = W_k n, v = W_v n (+ value embedding)  → heads (H of d_h for q, Hkv for k and v)
//   QK RMSNorm per head → partial RoPE (optional NTK base rescale) → q ← q ⊙ q_gain
//   causal SDPA (varlen over cu_seqlens when the batch is packed) → XSA on the chosen layers
//   → output gate (attn_gate component) → out = W_o y
// The challenge baseline uses full RoPE and gain 1.5; family A partial RoPE (16 dims) and gain 5.0.
#include <algorithm>

#include "kernels/ops.h"
#include "models/components.h"
#include "models/layers.h"
#include "models/varlen_attention.h"

namespace pgolf {
namespace {

// The attention's cross-key checks, run (through head_dim_'s initialiser) before any member is built, so
// Rotary never sees a value it would refuse. Returns d_h.
int64_t checked_head_dim(const Config& cfg, const LayerContext& ctx) {
  const Config& model = ctx.model;
  model.check(ctx.heads > 0 && ctx.dim % ctx.heads == 0, "dim",
              "a multiple of model.heads (" + std::to_string(ctx.heads) + "): the head dim d_h is model.dim / model.heads");
  model.check(ctx.kv_heads > 0 && ctx.heads % ctx.kv_heads == 0, "heads",
              "a multiple of model.kv_heads (" + std::to_string(ctx.kv_heads) + ")");
  const int64_t d_h = ctx.dim / ctx.heads, rope = cfg.i("rope_dims");
  const std::string head = "the head dim d_h = model.dim / model.heads = " + std::to_string(ctx.dim) + " / " +
                           std::to_string(ctx.heads) + " = " + std::to_string(d_h);
  if (rope == 0)  // the whole head rotates: blame the shape, not a rope_dims nobody set
    model.check(d_h % 2 == 0, "dim",
                "an even head dim for RoPE over the whole head (" + cfg.key_path("rope_dims") +
                    " = 0; RoPE rotates channel pairs), but " + head +
                    " is odd; change model.dim or model.heads, or set " + cfg.key_path("rope_dims") +
                    " to an even number below " + std::to_string(d_h));
  else
    cfg.check(rope % 2 == 0 && rope <= d_h, "rope_dims",
              "an even number of channels at most " + head + " (0 = the whole head)");
  const int64_t rotated = rope == 0 ? d_h : rope;
  cfg.check(cfg.i("rope_ntk_train_seq_len") == 0 || rotated > 2, "rope_ntk_train_seq_len",
            "0 when only " + std::to_string(rotated) + " channels rotate: the NTK rescale's exponent " +
                "rope_dims / (rope_dims - 2) needs more than 2");
  return d_h;
}

struct GqaAttention : Attention {
  GqaAttention(const Config& cfg, const LayerContext& ctx)
      : heads_(ctx.heads), kv_heads_(ctx.kv_heads), head_dim_(checked_head_dim(cfg, ctx)),
        rotary_(head_dim_, cfg.i("rope_dims"), cfg.f("rope_base"), cfg.i("rope_ntk_train_seq_len")),
        qk_norm_(cfg.b("qk_norm")), fused_(ctx.fused_kernels) {
    const auto xsa = cfg.ints("xsa_layers");
    xsa_ = std::find(xsa.begin(), xsa.end(), ctx.layer) != xsa.end();
    const int64_t kv_dim = kv_heads_ * head_dim_;
    c_q = register_module("c_q", CastedLinear(ctx.dim, ctx.dim));
    c_k = register_module("c_k", CastedLinear(ctx.dim, kv_dim));
    c_v = register_module("c_v", CastedLinear(ctx.dim, kv_dim));
    proj = register_module("proj", CastedLinear(ctx.dim, ctx.dim));
    for (auto* l : {&c_q, &c_k, &c_v}) (*l)->initialize(ctx.linear_init);
    proj->initialize("zeros");  // the block starts as identity on the residual stream
    q_gain = register_parameter("q_gain", torch::full({heads_}, cfg.f("qk_gain_init"), torch::kFloat32));
    gate = AttentionGateRegistry::get().build(cfg.sub("gate"), ctx);
    if (gate) register_module("gate", gate);
  }

  using Attention::forward;
  torch::Tensor forward(const AttentionInput& in, const Segments& segments) override {
    const auto& x = in.x;
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
    // q, k (QK RMSNorm → partial RoPE → q-gain applied) and v in the (B, T, H, d_h) layout the linears produce:
    // norm, RoPE, gain, varlen attention and the output projection all read it without a transposing copy.
    auto [q, k, v, g] = heads(in);
    torch::Tensor y;  // (B, T, H, d_h)
    if (segments.defined()) {
      auto flat = [&](const torch::Tensor& t) { return t.reshape({B * T, t.size(2), head_dim_}); };
      y = varlen_causal_attention(flat(q), flat(k), flat(v), segments.cu_seqlens, segments.max_seqlen)
              .view({B, T, heads_, head_dim_});
    } else {  // SDPA takes (B, H, T, d_h): transposed views, no copies
      y = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                           /*scale=*/std::nullopt, /*enable_gqa=*/kv_heads_ != heads_)
              .transpose(1, 2);
    }
    // XSA, then the gate: one fused op (the composition on the CPU).
    y = kernels::xsa_gate(y, v, g, xsa_, fused_);
    return proj(y.reshape({B, T, D}));
  }

  // q, k (normalised, rotated, q gained) (B, T, H or Hkv, d_h), v with the value addend, the gate (B, T, H) or
  // undefined.
  struct Heads {
    torch::Tensor q, k, v, gate;
  };
  // On CUDA, while no tap watches c_q, c_k, c_v, one fused op over their stacked weights and a gate's input
  // weight (kernels::qkv_heads): x is read once, its gradient is one GEMM and no head tensor is copied.
  // Otherwise (the CPU: the oracle; calibration, late QAT, LoRA) each linear on its own, one fused norm each.
  Heads heads(const AttentionInput& in) {
    const auto& x = in.x;
    const int64_t B = x.size(0), T = x.size(1);
    auto [cos, sin] = rotary_.tables(T, x.device());
    Heads h;
    if (!fused_ || !x.is_cuda() || c_q->tapped() || c_k->tapped() || c_v->tapped()) {
      h.q = kernels::norm_rope_gain(c_q(x).view({B, T, heads_, head_dim_}), cos, sin, q_gain, qk_norm_, 1.0, fused_);
      h.k = kernels::norm_rope_gain(c_k(x).view({B, T, kv_heads_, head_dim_}), cos, sin, {}, qk_norm_, 1.0, fused_);
      h.v = c_v(x);
      if (gate) h.gate = gate->values(in);
    } else {
      const auto dt = x.scalar_type();
      std::vector<torch::Tensor> w{c_q->cast_weight(dt), c_k->cast_weight(dt), c_v->cast_weight(dt)};
      const torch::Tensor gw = gate ? gate->input_weight(x.size(-1)) : torch::Tensor();
      if (gw.defined()) w.push_back(gw.to(dt));
      auto p = kernels::qkv_heads(x, torch::cat(w, 0), heads_, kv_heads_, cos, sin, q_gain, qk_norm_, fused_);
      h.q = p.q, h.k = p.k, h.v = p.v.reshape({B, T, -1});
      if (gate) h.gate = gw.defined() ? gate->from_logits(p.z) : gate->values(in);
    }
    if (in.v_extra.defined()) h.v = h.v + in.v_extra;
    h.v = h.v.view({B, T, kv_heads_, head_dim_});
    return h;
  }

  int64_t heads_, kv_heads_, head_dim_;
  Rotary rotary_;
  bool qk_norm_, fused_, xsa_ = false;
  CastedLinear c_q{nullptr}, c_k{nullptr}, c_v{nullptr}, proj{nullptr};
  torch::Tensor q_gain;
  std::shared_ptr<AttentionGate> gate;
};

Schema schema() {
  return Schema()
      .number("rope_base", 10000.0, 1.0, 1e12, "RoPE base")
      .integer("rope_dims", 0, 0, 4096, "channels of each head that rotate, in half-split pairs (0 = the whole head)")
      .integer("rope_ntk_train_seq_len", 0, 0, 1 << 30,
               "NTK base rescale for rows longer than this: base*(T/this)^(rope_dims/(rope_dims-2)) (0 = off)")
      .number("qk_gain_init", 1.5, 0.0, 1e6, "initial per-head q-gain")
      .boolean("qk_norm", true, "RMS-normalise q and k per head before RoPE")
      .int_list("xsa_layers", {}, 0, 4096,
                "layers (for shared cores: core indices) whose output drops its component along the own value (XSA)")
      .component("gate", "attn_gate", "none", "per-head output gate (after XSA, before the output projection)");
}

PGOLF_REGISTER(AttentionRegistry, "gqa", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Attention> {
                 return std::make_shared<GqaAttention>(cfg, ctx);
               },
               "grouped-query causal attention: QK RMSNorm, partial RoPE, q-gain, XSA, output gate, varlen");

}  // namespace
}  // namespace pgolf
