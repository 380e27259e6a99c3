// The tap mechanism (framework/tap.h) on a real GPT: every CastedLinear and the tied head are sites named by
// module path; observe sees a site's input, weight replaces what a linear multiplies by, output changes what
// the forward continues with; a ScopedTap is gone when it leaves scope. And the pipeline's order check.
#include <gtest/gtest.h>

#include <set>

#include "framework/pipeline.h"
#include "framework/recipe.h"
#include "models/layers.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

std::shared_ptr<LanguageModel> tiny_gpt() {
  torch::manual_seed(3);
  const Recipe r = resolve_recipe(Json{{"model", {{"name", "gpt"}, {"vocab_size", 32}, {"layers", 2}, {"dim", 16},
                                                  {"heads", 2}, {"kv_heads", 1}}}},
                                  "test", {});
  return ModelRegistry::get().build(r.section("model"));
}

struct Recorder : Tap {
  std::vector<std::string> seen;
  int forwards = 0;
  void begin_forward() override { ++forwards; }
  void observe(const TapSite& s, const torch::Tensor&) override { seen.push_back(s.name); }
};

TEST(Taps, SitesAreTheLinearsAndTheHeadNamedByModulePath) {
  auto m = tiny_gpt();
  std::set<std::string> linear, other;
  for (const auto& s : m->tap_sites()) {
    (s.linear ? linear : other).insert(s.name);
    if (s.linear) EXPECT_EQ(s.weight, s.name + ".weight");
  }
  EXPECT_TRUE(linear.count("blocks.0.attn.c_q"));
  EXPECT_TRUE(linear.count("blocks.1.mlp.proj"));
  ASSERT_TRUE(other.count("head"));
  for (const auto& s : m->tap_sites())
    if (s.name == "head") EXPECT_EQ(s.weight, "tok_emb.weight");
}

TEST(Taps, ObserveSeesEverySiteOncePerForwardAndScopedTapsLeave) {
  auto m = tiny_gpt();
  auto x = torch::randint(0, 32, {1, 8});
  const auto before = m->token_nll(x, x);
  auto rec = std::make_shared<Recorder>();
  {
    ScopedTap on(m->taps(), rec);
    EXPECT_TRUE(torch::equal(m->token_nll(x, x), before));  // observing changes nothing
    EXPECT_EQ(rec->forwards, 1);
    EXPECT_EQ(rec->seen.size(), m->tap_sites().size());
    EXPECT_EQ(rec->seen.back(), "head");
  }
  EXPECT_TRUE(m->taps().empty());
  m->token_nll(x, x);
  EXPECT_EQ(rec->forwards, 1);
}

// Zeroing the head's output makes every logit 0: the NLL is ln V at every position.
struct ZeroHead : Tap {
  torch::Tensor output(const TapSite& s, const torch::Tensor&, const torch::Tensor& y) override {
    return s.name == "head" ? torch::zeros_like(y) : y;
  }
};
// A linear's weight replaced by zeros: that layer's output is 0.
struct ZeroWeight : Tap {
  std::string site;
  torch::Tensor weight(const TapSite& s, const torch::Tensor& w, bool) override {
    return s.name == site ? torch::zeros_like(w) : w;
  }
};

TEST(Taps, OutputAndWeightTapsChangeTheForward) {
  auto m = tiny_gpt();
  auto x = torch::randint(0, 32, {1, 8});
  {
    ScopedTap on(m->taps(), std::make_shared<ZeroHead>());
    EXPECT_TRUE(torch::allclose(m->token_nll(x, x), torch::full({1, 8}, std::log(32.0)), 1e-5, 1e-5));
  }
  {
    torch::NoGradGuard g;  // the zero-initialised projections would hide a changed MLP
    for (auto& p : m->parameters()) p.normal_(0.0, 0.2);
  }
  auto zero = std::make_shared<ZeroWeight>();
  zero->site = "blocks.0.mlp.fc";
  const auto plain = m->token_nll(x, x);
  ScopedTap on(m->taps(), zero);
  EXPECT_FALSE(torch::allclose(m->token_nll(x, x), plain));
}

// Untapped, a CastedLinear casts its fp32 master once while the master is unchanged: the micro-batches of a
// step share the cast and their gradients add up in the master's; an optimizer step (ATen's fused AdamW) or
// an in-place load makes a new cast; a cast made without grad mode is not reused with it.
TEST(Taps, UntappedLinearCastsItsMasterOncePerUpdate) {
  torch::manual_seed(5);
  const auto bf = torch::kBFloat16;
  CastedLinear lin(4, 3);
  auto x1 = torch::randn({2, 4}).to(bf), x2 = torch::randn({5, 4}).to(bf);
  const torch::Tensor first = lin->cast_weight(bf);
  EXPECT_EQ(lin->cast_weight(bf).unsafeGetTensorImpl(), first.unsafeGetTensorImpl());
  lin(x1).to(torch::kFloat32).sum().backward();
  lin(x2).to(torch::kFloat32).sum().backward();
  EXPECT_EQ(lin->cast_weight(bf).unsafeGetTensorImpl(), first.unsafeGetTensorImpl());
  // ∂/∂W of Σ x Wᵀ over both micro-batches: every row is the column sum of all seven inputs.
  const auto want = (x1.to(torch::kFloat32).sum(0) + x2.to(torch::kFloat32).sum(0)).expand({3, 4});
  EXPECT_TRUE(torch::allclose(lin->weight.grad(), want, 2e-2, 2e-2)) << lin->weight.grad() << want;
  auto opt = testing::make_optimizer({{"name", "adam"}, {"fused", "on"}}, {{"w", lin->weight}});
  opt->step(1.0, 0);
  const torch::Tensor stepped = lin->cast_weight(bf);
  EXPECT_NE(stepped.unsafeGetTensorImpl(), first.unsafeGetTensorImpl());
  EXPECT_TRUE(torch::equal(stepped, lin->weight.detach().to(bf)));
  EXPECT_FALSE(torch::equal(stepped, first));
  {
    torch::NoGradGuard g;
    lin->weight.zero_();
    EXPECT_FALSE(lin->cast_weight(bf).requires_grad());
    EXPECT_EQ(lin->cast_weight(bf).abs().sum().item<double>(), 0.0);
  }
  EXPECT_TRUE(lin->cast_weight(bf).requires_grad());
  EXPECT_EQ(lin->cast_weight(torch::kFloat32).unsafeGetTensorImpl(), lin->weight.unsafeGetTensorImpl());
}

TEST(Pipeline, AStageWhoseInputNoEarlierStageMakesIsRefusedBeforeTraining) {
  const Json bad = {{"pipeline", Json::array({Json{{"name", "write_artifact"}}})}};
  const Recipe r = resolve_recipe(bad, "r.json", {});
  try {
    build_pipeline(r.root());
    FAIL() << "write_artifact without quantize was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline[0] (write_artifact): needs quantized_state"), std::string::npos) << e.what();
  }
  const Recipe ok = resolve_recipe(Json::object(), "r.json", {});
  EXPECT_EQ(build_pipeline(ok.root()).size(), 7u);  // the framework default
}

TEST(Comm, DecisionsOfOneProcessAreItsOwn) {
  LocalCommunicator c;
  EXPECT_TRUE(agree_any(c, true, torch::kCPU));
  EXPECT_FALSE(agree_any(c, false, torch::kCPU));
  EXPECT_EQ(agree_max(c, 2.5, torch::kCPU), 2.5);
}

}  // namespace
}  // namespace pgolf
