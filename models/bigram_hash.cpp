// BigramHash (#461, spec §2.7): a hashed embedding of (previous, current) token pairs, added to tok_emb
// before the embedding norm. With B buckets, computed in int32:
//   idx_0 = B − 1;  idx_t = ((36313·tok_t) XOR (27191·tok_{t−1})) mod (B − 1)   (t ≥ 1)
//   b_t = s_b · P E_b[idx_t]
// E_b (B × dim) starts at zero, s_b at 0.05; P (d × dim) is orthogonal × 1/√(2L), as #461's generic init
// leaves every `.proj` matrix.
#include <cmath>

#include "models/components.h"
#include "models/layers.h"

namespace pgolf {

// Exposed for tests: the bucket of every position of ids (B, T) -> int64 (B, T).
torch::Tensor bigram_hash_indices(const torch::Tensor& ids, int64_t buckets) {
  const int64_t mod = buckets - 1, T = ids.size(-1);
  auto t = ids.to(torch::kInt32);
  auto out = torch::full_like(t, static_cast<int32_t>(mod));
  if (T > 1) {
    auto h = torch::bitwise_xor(t.narrow(-1, 1, T - 1) * 36313, t.narrow(-1, 0, T - 1) * 27191);
    out.narrow(-1, 1, T - 1).copy_(torch::remainder(h, static_cast<int32_t>(mod)));
  }
  return out.to(torch::kInt64);
}

namespace {

struct BigramHash : Bigram {
  BigramHash(const Config& cfg, const LayerContext& ctx) : buckets_(cfg.i("buckets")) {
    const int64_t dim = cfg.i("dim");
    embed = register_module("embed", torch::nn::Embedding(buckets_, dim));
    proj = register_module("proj", CastedLinear(dim, ctx.dim));
    scale = register_parameter("scale", torch::full({}, cfg.f("scale_init")));
    torch::NoGradGuard g;
    embed->weight.zero_();
    proj->initialize("orthogonal");
    proj->weight.mul_(1.0 / std::sqrt(2.0 * static_cast<double>(ctx.num_layers)));
  }

  torch::Tensor forward(const torch::Tensor& ids, torch::ScalarType dt) override {
    auto h = embed->forward(bigram_hash_indices(ids, buckets_)).to(dt);
    return proj(h) * scale.to(dt);
  }

  int64_t buckets_;
  torch::nn::Embedding embed{nullptr};
  CastedLinear proj{nullptr};
  torch::Tensor scale;
};

Schema schema() {
  return Schema()
      .integer("buckets", 2048, 2, 1 << 24, "hash buckets B (the hash is taken mod B - 1; bucket B - 1 marks t = 0)")
      .integer("dim", 128, 1, 1 << 16, "width of the bucket table before the projection to model.dim")
      .number("scale_init", 0.05, -1e6, 1e6, "initial output scale s_b");
}

PGOLF_REGISTER(BigramRegistry, "bigram_hash", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Bigram> {
                 return std::make_shared<BigramHash>(cfg, ctx);
               },
               "hashed previous/current token-pair embedding added before the embedding norm (#461)");

}  // namespace
}  // namespace pgolf
