// The GPT of the challenge baseline, assembled from registered components. One forward pass, top to
// bottom:
//   e  = tok_emb[ids]                       (fp32 master table, cast to the compute dtype)
//   x  = RMSNorm(e);  x0 = x
//   encoder: for i < ⌊L/2⌋: x = block_i(x, x0); push x
//   decoder: for j: if a skip is left, x = skip.merge(x, pop(), j); x = block_{⌊L/2⌋+j}(x, x0)
//   h  = RMSNorm(x);  z = h · tok_embᵀ (tied head);  logits = C·tanh(z/C)
//   nll = cross-entropy of fp32 logits
#include "framework/model.h"
#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct Gpt : LanguageModel {
  explicit Gpt(const Config& cfg)
      : vocab_(cfg.i("vocab_size")), softcap_(cfg.f("logit_softcap")) {
    LayerContext ctx;
    ctx.dim = cfg.i("dim");
    ctx.heads = cfg.i("heads");
    ctx.kv_heads = cfg.i("kv_heads");
    ctx.num_layers = cfg.i("layers");
    ctx.linear_init = cfg.s("linear_init");
    tok_emb = register_module("tok_emb", torch::nn::Embedding(vocab_, ctx.dim));
    {
      torch::NoGradGuard g;
      tok_emb->weight.normal_(0.0, cfg.f("tied_embed_init_std"));
    }
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t l = 0; l < ctx.num_layers; ++l) {
      ctx.layer = l;
      blocks->push_back(BlockRegistry::get().build(cfg.sub("block"), ctx, cfg));
    }
    num_encoder_ = ctx.num_layers / 2;
    num_decoder_ = ctx.num_layers - num_encoder_;
    skip = register_module("skip", SkipRegistry::get().build(cfg.sub("skip"), SkipContext{ctx.dim, std::min(num_encoder_, num_decoder_)}));
  }

  torch::Tensor logits(const torch::Tensor& ids) {
    const auto dt = compute_dtype_;
    auto x = rms_norm(tok_emb->forward(ids).to(dt));
    const auto x0 = x;
    std::vector<torch::Tensor> skips;
    for (int64_t i = 0; i < num_encoder_; ++i) {
      x = blocks[i]->as<Block>()->forward(x, x0);
      skips.push_back(x);
    }
    for (int64_t j = 0; j < num_decoder_; ++j) {
      if (!skips.empty()) {
        x = skip->merge(x, skips.back(), j);
        skips.pop_back();
      }
      x = blocks[num_encoder_ + j]->as<Block>()->forward(x, x0);
    }
    auto z = torch::nn::functional::linear(rms_norm(x), tok_emb->weight.to(dt));
    return softcap_ * torch::tanh(z / softcap_);
  }

  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) override {
    auto z = logits(x).to(torch::kFloat32);
    auto nll = torch::nn::functional::cross_entropy(
        z.view({-1, vocab_}), y.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    return nll.view(y.sizes());
  }

  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) override {
    auto z = logits(x).to(torch::kFloat32);
    return torch::nn::functional::cross_entropy(z.view({-1, vocab_}), y.reshape({-1}));
  }

  int64_t vocab_size() const override { return vocab_; }

  int64_t vocab_;
  double softcap_;
  int64_t num_encoder_ = 0, num_decoder_ = 0;
  torch::nn::Embedding tok_emb{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  std::shared_ptr<SkipConnection> skip;
};

Schema schema() {
  return Schema()
      .integer("vocab_size", 1024, 2, 65536, "vocabulary size (must equal the tokenizer's)")
      .integer("layers", 9, 1, 256, "transformer blocks L")
      .integer("dim", 512, 8, 16384, "model width d")
      .integer("heads", 8, 1, 256, "query heads")
      .integer("kv_heads", 4, 1, 256, "key/value heads (GQA)")
      .number("tied_embed_init_std", 0.005, 0.0, 10.0, "std of the tied embedding's normal init")
      .number("logit_softcap", 30.0, 1e-3, 1e6, "C in C*tanh(z/C)")
      .choice("linear_init", "default", {"default", "orthogonal"},
              "init of non-zero-init matrices: PyTorch's nn.Linear default, or orthogonal (family A)")
      .component("block", "block", "sequential", "residual block")
      .component("attention", "attention", "gqa", "attention")
      .component("mlp", "mlp", "relu2", "MLP")
      .component("skip", "skip", "unet_additive", "U-Net skip connection");
}

PGOLF_REGISTER(ModelRegistry, "gpt", schema(),
               [](const Config& cfg) -> std::shared_ptr<LanguageModel> { return std::make_shared<Gpt>(cfg); },
               "the challenge baseline GPT: tied embedding, U-Net skips, softcapped logits");

}  // namespace
}  // namespace pgolf
