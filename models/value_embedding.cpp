// Value embeddings (#461, spec §2.8): one shared table E_ve (V × dim, N(0, 0.01²)), projected by P_ve
// (kv_dim × dim, orthogonal × 1/√(2L) as #461's generic init leaves `.proj` matrices) and scaled by s_ve
// (init 0.1); in each chosen layer ℓ, v ← W_v n + λ_ℓ · s_ve · P_ve E_ve[tok] with λ_ℓ (init 1) from
// ve_layer_scales. The addition happens before the head split (and so before XSA).
#include <algorithm>
#include <cmath>

#include "models/components.h"
#include "models/layers.h"

namespace pgolf {
namespace {

struct SharedValueEmbedding : ValueEmbedding {
  SharedValueEmbedding(const Config& cfg, const LayerContext& ctx) : layers_(cfg.ints("layers")), num_layers_(ctx.num_layers) {
    for (int64_t l : layers_)
      cfg.check(l < ctx.num_layers, "layers",
                "layer indices below model.layers (" + std::to_string(ctx.num_layers) + "); " + std::to_string(l) + " is not");
    const int64_t dim = cfg.i("dim");
    embed = register_module("embed", torch::nn::Embedding(ctx.vocab_size, dim));
    proj = register_module("proj", CastedLinear(dim, ctx.kv_dim()));
    scale = register_parameter("scale", torch::full({}, cfg.f("scale_init")));
    ve_layer_scales = register_module("ve_layer_scales", torch::nn::ParameterList());
    for (size_t i = 0; i < layers_.size(); ++i)  // append keeps the tensor's requires_grad: ask for it
      ve_layer_scales->append(torch::full({1}, cfg.f("layer_scale_init")).requires_grad_(true));
    torch::NoGradGuard g;
    embed->weight.normal_(0.0, cfg.f("init_std"));
    proj->initialize("orthogonal");
    proj->weight.mul_(1.0 / std::sqrt(2.0 * static_cast<double>(ctx.num_layers)));
  }

  std::vector<torch::Tensor> per_layer(const torch::Tensor& ids, torch::ScalarType dt) override {
    std::vector<torch::Tensor> out(static_cast<size_t>(num_layers_));
    auto ve = proj(embed->forward(ids).to(dt)) * scale.to(dt);
    for (size_t i = 0; i < layers_.size(); ++i) out[static_cast<size_t>(layers_[i])] = ve * ve_layer_scales[i].to(dt);
    return out;
  }

  std::vector<int64_t> layers_;
  int64_t num_layers_;
  torch::nn::Embedding embed{nullptr};
  CastedLinear proj{nullptr};
  torch::Tensor scale;
  torch::nn::ParameterList ve_layer_scales{nullptr};
};

Schema schema() {
  return Schema()
      .integer("dim", 128, 1, 1 << 16, "width of the shared table before the projection to kv_dim")
      .int_list("layers", {9, 10}, 0, 4096, "layers whose v gets the value embedding")
      .number("init_std", 0.01, 0.0, 10.0, "std of the table's normal init")
      .number("scale_init", 0.1, -1e6, 1e6, "initial shared scale s_ve")
      .number("layer_scale_init", 1.0, -1e6, 1e6, "initial per-layer scales lambda");
}

PGOLF_REGISTER(ValueEmbeddingRegistry, "shared", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<ValueEmbedding> {
                 return std::make_shared<SharedValueEmbedding>(cfg, ctx);
               },
               "a shared token embedding added to v in chosen layers, per-layer scales (#461)");

}  // namespace
}  // namespace pgolf
