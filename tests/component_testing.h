// Helpers for the model-component tests: build a registered component from a JSON section (validated
// against its Schema, defaults filled) and a small LayerContext.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "framework/comm.h"
#include "framework/config.h"
#include "framework/model.h"
#include "framework/optimizer.h"
#include "framework/recipe.h"
#include "models/components.h"

namespace pgolf::testing {

// The validated section of one component of `kind`: {"name": ..., keys...} with every default filled.
inline Config component(const std::string& kind, const Json& section) {
  Schema s;
  s.component("c", kind, "", "the component under test");
  return Config(s.validate(Json{{"c", section}}, "", "test"), "").sub("c");
}

// An optimizer over `params` from its section, as the trainer builds the first group of optim.groups.
inline std::shared_ptr<Optimizer> make_optimizer(const Json& section, std::vector<NamedParam> params) {
  Schema s;
  s.component("opt", "optimizer", "", "under test");
  const Json v = s.validate(Json{{"opt", section}}, "", "test");
  return OptimizerRegistry::get().build(Config(v["opt"], "optim.groups[0]"), OptimizerContext{std::move(params), nullptr});
}

// One rank's view of a world whose collectives change nothing: a test scores each rank's share with it and
// adds the shares up (a simulated partition). The communicators live for the whole test program.
struct FixedRankCommunicator : LocalCommunicator {
  FixedRankCommunicator(int r, int w) : r_(r), w_(w) {}
  int rank() const override { return r_; }
  int world() const override { return w_; }
  int r_, w_;
};
inline Communicator* one_rank_of(int rank, int world) {
  static std::map<std::pair<int, int>, std::unique_ptr<FixedRankCommunicator>> all;
  auto& c = all[{rank, world}];
  if (!c) c = std::make_unique<FixedRankCommunicator>(rank, world);
  return c.get();
}

inline LayerContext layer_context(int64_t dim, int64_t heads, int64_t kv_heads, int64_t layer = 0, int64_t layers = 4,
                                  int64_t vocab = 64) {
  LayerContext ctx;
  ctx.dim = dim;
  ctx.heads = heads;
  ctx.kv_heads = kv_heads;
  ctx.layer = layer;
  ctx.num_layers = layers;
  ctx.vocab_size = vocab;
  ctx.linear_init = "orthogonal";
  return ctx;
}

inline std::map<std::string, torch::Tensor> params_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  return out;
}

// Adds N(0, std²) noise to every parameter, so zero-initialised projections and gates matter.
inline void perturb(torch::nn::Module& m, double std) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.add_(torch::randn_like(p) * std);
}

// Runs a scope on one intra-op thread: on a shared, loaded machine OpenMP's waiting threads make the many
// small ops of these tests crawl (10x slower on 2 busy cores).
struct SingleThreaded {
  int previous = torch::get_num_threads();
  SingleThreaded() { torch::set_num_threads(1); }
  ~SingleThreaded() { torch::set_num_threads(previous); }
};

inline std::shared_ptr<LanguageModel> build_model(const Json& model) {
  Recipe r = resolve_recipe(Json{{"model", model}}, "test", {});
  return ModelRegistry::get().build(r.section("model"));
}

}  // namespace pgolf::testing
