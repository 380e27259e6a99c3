// The GPT of the challenge baseline and of the five seeds, assembled from registered components. One
// forward pass, top to bottom (spec training §2.13; optional steps are components that may be "none"):
//   e  = tok_emb[ids] (+ bigram(ids));  SmearGate here if its form smears the raw embedding (#1855)
//   x  = RMSNorm(e);                    SmearGate here if its form smears the normalised one (#1693, #461)
//   x0 = x;  v_extra = value embeddings per layer (#461)
//   encoder: for i in order.encoder: x = block_i(x); push x
//   decoder: for (j, i) in order.decoder:
//              at the first lane entry (i ≥ lanes.start_layer): lane1 = x   (x is lane0 from here on)
//              if j < skip slots and a skip is left: x = skip.merge(x, pop(), j)
//              x = block_i(x)  or, in lanes: (A, M) = block_i.lane_branches(x, lane1); (x, lane1) = lanes.mix(i, ...)
//   h  = lanes.merge(x, lane1) if lanes were used;  h = RMSNorm(h)
//   z  = h · tok_embᵀ (tied head; h and z pass the "head" tap site);  logits = C·tanh(z/C);  nll = cross-entropy of fp32 logits
// The recurrence component gives the order (plain, family A's segment loop) and, for #461, the shared
// cores the blocks run on.
#include "framework/model.h"
#include "kernels/ops.h"
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

// The model's shape, checked before anything is built (models/components.h: the letters).
void check_shape(const Config& model) {
  const int64_t dim = model.i("dim"), heads = model.i("heads"), kv_heads = model.i("kv_heads");
  model.check(dim % heads == 0, "dim",
              "a multiple of model.heads (" + std::to_string(heads) + "): the head dim d_h is model.dim / model.heads");
  model.check(heads % kv_heads == 0, "heads",
              "a multiple of model.kv_heads (" + std::to_string(kv_heads) +
                  "): each key/value head serves model.heads / model.kv_heads query heads");
}

// One shared attention+MLP core (#461): blocks hold it without owning it.
struct Core : torch::nn::Module {
  Core(const Config& model, const LayerContext& ctx) {
    attn = register_module("attn", AttentionRegistry::get().build(model.sub("attention"), ctx));
    mlp = register_module("mlp", MlpRegistry::get().build(model.sub("mlp"), ctx));
  }
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
};

struct Gpt : LanguageModel {
  explicit Gpt(const Config& cfg)
      : vocab_(cfg.i("vocab_size")), softcap_(cfg.f("logit_softcap")), fused_(cfg.b("fused_kernels")) {
    check_shape(cfg);
    LayerContext ctx;
    ctx.model = cfg;
    ctx.dim = cfg.i("dim");
    ctx.heads = cfg.i("heads");
    ctx.kv_heads = cfg.i("kv_heads");
    ctx.num_layers = cfg.i("layers");
    ctx.vocab_size = vocab_;
    ctx.linear_init = cfg.s("linear_init");
    ctx.fused_kernels = fused_;
    tok_emb = register_module("tok_emb", torch::nn::Embedding(vocab_, ctx.dim));
    {
      torch::NoGradGuard g;
      tok_emb->weight.normal_(0.0, cfg.f("tied_embed_init_std"));
    }
    bigram = optional_module("bigram", BigramRegistry::get().build(cfg.sub("bigram"), ctx));
    smear = optional_module("smear", SmearRegistry::get().build(cfg.sub("smear"), ctx));
    recurrence = RecurrenceRegistry::get().build(cfg.sub("recurrence"), ctx);

    if (recurrence->num_cores() > 0) {
      cores = register_module("cores", torch::nn::ModuleList());
      for (int64_t c = 0; c < recurrence->num_cores(); ++c) {
        ctx.layer = c;
        cores->push_back(std::make_shared<Core>(cfg, ctx));
      }
    }
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t l = 0; l < ctx.num_layers; ++l) {
      ctx.layer = l;
      if (cores) {
        auto core = cores[recurrence->core_of(l)]->as<Core>();
        ctx.shared_attn = core->attn;
        ctx.shared_mlp = core->mlp;
      }
      blocks->push_back(BlockRegistry::get().build(cfg.sub("block"), ctx, cfg));
    }
    if (cores) scale_shared_core_gradients(ctx.num_layers);

    skip_slots_ = recurrence->skip_slots();
    skip = optional_module("skip", SkipRegistry::get().build(cfg.sub("skip"), SkipContext{ctx.dim, skip_slots_, fused_}));
    lanes = optional_module("lanes", LaneRegistry::get().build(cfg.sub("lanes"), ctx));
    value_embedding = optional_module("ve_shared", ValueEmbeddingRegistry::get().build(cfg.sub("value_embedding"), ctx));
    head = register_module("head", TapPoint("tok_emb.weight"));  // the tied head's input: the final-norm output
  }

  template <class T>
  std::shared_ptr<T> optional_module(const std::string& name, std::shared_ptr<T> m) {
    return m ? register_module(name, m) : nullptr;
  }

  // #461: a core used by k blocks gets 1/k of its summed gradient (core 0 of 10 under 11 blocks: ×½).
  void scale_shared_core_gradients(int64_t num_layers) {
    std::vector<int64_t> uses(cores->size(), 0);
    for (int64_t l = 0; l < num_layers; ++l) ++uses[static_cast<size_t>(recurrence->core_of(l))];
    for (size_t c = 0; c < cores->size(); ++c) {
      if (uses[c] <= 1) continue;
      const double s = 1.0 / static_cast<double>(uses[c]);
      for (auto& p : cores[c]->parameters()) p.register_hook([s](const torch::Tensor& g) { return g * s; });
    }
  }

  Block& block(int64_t i) { return *blocks[i]->as<Block>(); }

  torch::Tensor hidden(const torch::Tensor& ids, const Segments& segments) {
    const auto dt = compute_dtype_;
    if (!taps_.empty()) taps_.begin_forward();
    // 1-2. embedding, smear, norm: x0
    auto e = tok_emb->forward(ids).to(dt);
    if (bigram) e = e + bigram->forward(ids, dt);
    if (smear && smear->before_norm()) e = smear->forward(e, ids);
    auto x = rms_norm(e);
    if (smear && !smear->before_norm()) x = smear->forward(x, ids);
    ForwardContext fctx{x, segments, value_embedding ? value_embedding->per_layer(ids, dt) : std::vector<torch::Tensor>{}};

    // 3. encoder
    const LayerOrder& order = recurrence->order(is_training());
    std::vector<torch::Tensor> skips;
    for (int64_t i : order.encoder) {
      x = block(i).forward(x, fctx);
      skips.push_back(x);
    }
    // 4. decoder: x is the single stream, or lane0 once lanes begin
    torch::Tensor lane1;
    for (size_t j = 0; j < order.decoder.size(); ++j) {
      const int64_t i = order.decoder[j];
      const bool in_lanes = lanes && i >= lanes->start_layer();
      if (in_lanes && !lane1.defined()) lane1 = x;
      if (skip && static_cast<int64_t>(j) < skip_slots_ && !skips.empty()) {
        x = skip->merge(x, skips.back(), static_cast<int64_t>(j));
        skips.pop_back();
      }
      if (in_lanes) {
        std::tie(x, lane1) = lanes->mix(i, x, lane1, block(i).lane_branches(x, lane1, fctx));
      } else {
        x = block(i).forward(x, fctx);
      }
    }
    // 5-6. lane merge, final norm
    if (lane1.defined()) x = lanes->merge(x, lane1);
    return rms_norm(x);
  }

  torch::Tensor logits(const torch::Tensor& ids, const Segments& segments) { return head_logits(hidden(ids, segments)); }

  // h (..., D) final-norm output -> softcapped logits, through the head tap site.
  torch::Tensor head_logits(const torch::Tensor& hidden_out) {
    auto h = head(hidden_out);
    auto z = head->output(h, torch::nn::functional::linear(h, tok_emb->weight.to(compute_dtype_)));
    return softcap_ * torch::tanh(z / softcap_);
  }

  torch::Tensor nll(const torch::Tensor& x, const torch::Tensor& y, const Segments& s, bool mean) {
    return head_nll(hidden(x, s), y, mean);
  }

  // The head and its CE on the hidden states h (..., D) for targets y (...).
  torch::Tensor head_nll(const torch::Tensor& h, const torch::Tensor& y, bool mean) {
    if (taps_.empty()) {  // the head and its CE as one op (kernels/ops.h): chunked, no fp32 N×V logits on the GPU
      auto hf = h.reshape({-1, h.size(-1)});
      if (mean) return kernels::softcap_ce_mean(hf, tok_emb->weight, y.reshape({-1}), softcap_, fused_);
      return kernels::softcap_ce_tokens(hf, tok_emb->weight, y.reshape({-1}), softcap_, fused_).view(y.sizes());
    }
    auto z = head_logits(h);
    z = z.to(torch::promote_types(z.scalar_type(), torch::kFloat32)).view({-1, vocab_});  // CE in fp32 (fp64 stays)
    namespace F = torch::nn::functional;
    if (mean) return F::cross_entropy(z, y.reshape({-1}));
    return F::cross_entropy(z, y.reshape({-1}), F::CrossEntropyFuncOptions().reduction(torch::kNone)).view(y.sizes());
  }

  // Dense attention over every column; the head and CE only at `cols` (a stride or chunk of each row).
  torch::Tensor token_nll_at(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cols) override {
    auto h = hidden(x, {});
    auto hs = h.gather(1, cols.unsqueeze(-1).expand({cols.size(0), cols.size(1), h.size(-1)}));
    return head_nll(hs, y.gather(1, cols), false);
  }

  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) override { return nll(x, y, {}, false); }
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override { return nll(x, y, {}, true); }
  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cu_seqlens,
                          int64_t max_seqlen) override {
    return nll(x, y, {cu_seqlens, max_seqlen}, false);
  }
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cu_seqlens,
                     int64_t max_seqlen) override {
    return nll(x, y, {cu_seqlens, max_seqlen}, true);
  }

  int64_t vocab_size() const override { return vocab_; }

  // Matmul weights: every CastedLinear of m; blocks and cores once per pass of the current order, the rest
  // (bigram, value-embedding projections) and the tied head once; attention 12·d·seq_len per block pass.
  static double linear_params(const torch::nn::Module& m) {
    double n = 0;
    for (const auto& sub : m.modules(/*include_self=*/true))
      if (const auto* l = dynamic_cast<const CastedLinearImpl*>(sub.get())) n += static_cast<double>(l->weight.numel());
    return n;
  }
  double flops_per_token(int64_t seq_len) override {
    auto per_block = [&](int64_t i) {
      return linear_params(*blocks[i]) + (cores ? linear_params(*cores[recurrence->core_of(i)]) : 0.0);
    };
    double once = linear_params(*this), passes_params = 0;
    for (size_t i = 0; i < blocks->size(); ++i) once -= linear_params(*blocks[i]);
    if (cores)
      for (size_t c = 0; c < cores->size(); ++c) once -= linear_params(*cores[c]);
    const LayerOrder& order = recurrence->order(is_training());
    int64_t passes = 0;
    for (const auto* list : {&order.encoder, &order.decoder})
      for (int64_t i : *list) {
        passes_params += per_block(i);
        ++passes;
      }
    const double d = static_cast<double>(tok_emb->weight.size(1));
    return 6.0 * (passes_params + once + static_cast<double>(vocab_) * d) + 12.0 * passes * d * static_cast<double>(seq_len);
  }
  void on_train_progress(double fraction) override { recurrence->on_train_progress(fraction); }
  void reset_train_progress() override { recurrence->reset_train_progress(); }

  int64_t vocab_;
  double softcap_;
  bool fused_;
  int64_t skip_slots_ = 0;
  torch::nn::Embedding tok_emb{nullptr};
  std::shared_ptr<Bigram> bigram;
  std::shared_ptr<Smear> smear;
  std::shared_ptr<Recurrence> recurrence;
  torch::nn::ModuleList cores{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  std::shared_ptr<SkipConnection> skip;
  std::shared_ptr<LaneMixer> lanes;
  std::shared_ptr<ValueEmbedding> value_embedding;
  TapPoint head{nullptr};
};

Schema schema() {
  return Schema()
      .integer("vocab_size", 1024, 2, 65536, "vocabulary size (must equal the tokenizer's)")
      .integer("layers", 9, 1, 256, "transformer blocks L")
      .integer("dim", 512, 8, 16384, "model width D")
      .integer("heads", 8, 1, 256, "query heads")
      .integer("kv_heads", 4, 1, 256, "key/value heads (GQA)")
      .number("tied_embed_init_std", 0.005, 0.0, 10.0, "std of the tied embedding's normal init")
      .number("logit_softcap", 30.0, 1e-3, 1e6, "C in C*tanh(z/C)")
      .boolean("fused_kernels", true,
               "fused CUDA ops (kernels/): chunked softcapped CE, norm+RoPE+gain, residual ops, LeakyReLU2; CPU "
               "unaffected; false runs their ATen compositions on the GPU too")
      .choice("linear_init", "default", {"default", "orthogonal"},
              "init of non-zero-init matrices: PyTorch's nn.Linear default, or orthogonal (family A, #461)")
      .component("block", "block", "sequential", "residual block")
      .component("attention", "attention", "gqa", "attention")
      .component("mlp", "mlp", "relu2", "MLP")
      .component("skip", "skip", "unet_additive", "U-Net skip connection")
      .component("recurrence", "recurrence", "none", "depth recurrence: layer order and weight sharing")
      .component("lanes", "lanes", "none", "two-lane residual decoder")
      .component("smear", "smear", "none", "SmearGate (previous-token mixing of the embedding)")
      .component("bigram", "bigram", "none", "hashed token-pair embedding added to tok_emb")
      .component("value_embedding", "value_embedding", "none", "token embedding added to v in chosen layers");
}

PGOLF_REGISTER(ModelRegistry, "gpt", schema(),
               [](const Config& cfg) -> std::shared_ptr<LanguageModel> { return std::make_shared<Gpt>(cfg); },
               "GPT from components: tied embedding, U-Net skips, softcapped logits; the baseline and the five seeds");

}  // namespace
}  // namespace pgolf
