// Grouped-query causal self-attention with QK RMSNorm, rotary positions (full or partial) and a
// learnable per-head q-gain (spec training §2.3; the challenge baseline uses full RoPE, gain 1.5).
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct GqaAttention : Attention {
  GqaAttention(const Config& cfg, const LayerContext& ctx)
      : heads_(ctx.heads), kv_heads_(ctx.kv_heads), head_dim_(ctx.dim / ctx.heads),
        rotary_(ctx.dim / ctx.heads, cfg.i("rope_dims"), cfg.f("rope_base")), qk_norm_(cfg.b("qk_norm")) {
    if (ctx.dim % ctx.heads != 0) throw ConfigError("model.dim must be divisible by model.heads");
    if (ctx.heads % ctx.kv_heads != 0) throw ConfigError("model.heads must be divisible by model.kv_heads");
    const int64_t kv_dim = kv_heads_ * head_dim_;
    c_q = register_module("c_q", CastedLinear(ctx.dim, ctx.dim));
    c_k = register_module("c_k", CastedLinear(ctx.dim, kv_dim));
    c_v = register_module("c_v", CastedLinear(ctx.dim, kv_dim));
    proj = register_module("proj", CastedLinear(ctx.dim, ctx.dim));
    for (auto* l : {&c_q, &c_k, &c_v}) (*l)->initialize(ctx.linear_init);
    proj->initialize("zeros");  // the block starts as identity on the residual stream
    q_gain = register_parameter("q_gain", torch::full({heads_}, cfg.f("qk_gain_init"), torch::kFloat32));
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
    auto q = c_q(x).view({B, T, heads_, head_dim_}).transpose(1, 2);
    auto k = c_k(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    auto v = c_v(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    if (qk_norm_) {
      q = rms_norm(q);
      k = rms_norm(k);
    }
    q = rotary_.apply(q);
    k = rotary_.apply(k);
    q = q * q_gain.to(q.scalar_type()).view({1, heads_, 1, 1});
    auto y = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                              /*scale=*/std::nullopt, /*enable_gqa=*/kv_heads_ != heads_);
    return proj(y.transpose(1, 2).reshape({B, T, D}));
  }

  int64_t heads_, kv_heads_, head_dim_;
  Rotary rotary_;
  bool qk_norm_;
  CastedLinear c_q{nullptr}, c_k{nullptr}, c_v{nullptr}, proj{nullptr};
  torch::Tensor q_gain;
};

Schema schema() {
  return Schema()
      .number("rope_base", 10000.0, 1.0, 1e12, "RoPE base")
      .integer("rope_dims", 0, 0, 4096, "channels of each head that rotate (0 = the whole head)")
      .number("qk_gain_init", 1.5, 0.0, 1e6, "initial per-head q-gain")
      .boolean("qk_norm", true, "RMS-normalise q and k per head before RoPE");
}

PGOLF_REGISTER(AttentionRegistry, "gqa", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Attention> {
                 return std::make_shared<GqaAttention>(cfg, ctx);
               },
               "grouped-query causal attention, QK RMSNorm, RoPE, per-head q-gain");

}  // namespace
}  // namespace pgolf
