// Grouped-query causal self-attention (spec training §2.3), in order:
//   q = W_q n, k = W_k n, v = W_v n (+ value embedding)  → heads (H of d_h for q, H_kv for k and v)
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

struct GqaAttention : Attention {
  GqaAttention(const Config& cfg, const LayerContext& ctx)
      : heads_(ctx.heads), kv_heads_(ctx.kv_heads), head_dim_(ctx.dim / ctx.heads),
        rotary_(ctx.dim / ctx.heads, cfg.i("rope_dims"), cfg.f("rope_base"), cfg.i("rope_ntk_train_seq_len")),
        qk_norm_(cfg.b("qk_norm")), fused_(ctx.fused_kernels) {
    if (ctx.dim % ctx.heads != 0) throw ConfigError("model.dim must be divisible by model.heads");
    if (ctx.heads % ctx.kv_heads != 0) throw ConfigError("model.heads must be divisible by model.kv_heads");
    if (cfg.i("rope_dims") > head_dim_)
      throw ConfigError(cfg.key_path("rope_dims") + ": " + std::to_string(cfg.i("rope_dims")) +
                        " is more than the head dim " + std::to_string(head_dim_) + " (model.dim / model.heads)");
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
    auto v_flat = c_v(x);
    if (in.v_extra.defined()) v_flat = v_flat + in.v_extra;
    // Heads stay in the (B, T, H, d_h) layout the linears produce: norm, RoPE, gain, varlen attention and
    // the output projection all read it without a transposing copy.
    auto q = c_q(x).view({B, T, heads_, head_dim_});
    auto k = c_k(x).view({B, T, kv_heads_, head_dim_});
    auto v = v_flat.view({B, T, kv_heads_, head_dim_});
    // QK RMSNorm → partial RoPE → q-gain, one fused op each (kernels/ops.h; the composition on the CPU).
    auto [cos, sin] = rotary_.tables(T, x.device());
    q = kernels::norm_rope_gain(q, cos, sin, q_gain, qk_norm_, 1.0, fused_);
    k = kernels::norm_rope_gain(k, cos, sin, {}, qk_norm_, 1.0, fused_);
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
    if (xsa_) y = exclusive_self_attention(y, v);
    if (gate) y = gate->forward(y, in);
    return proj(y.reshape({B, T, D}));
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
