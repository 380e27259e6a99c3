// Residual structure: the segment loop's index lists and one-way switch, evaluation always looped, the
// two-lane mixing and gated skips at init and after, the layerwise LN scale (f on attention, f² on the
// MLP), the GPT-J and lane forms of the block, and #461's shared-core gradient scaling (by finite
// differences in fp64).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/component_testing.h"

namespace pgolf {
namespace {

using testing::component;
using testing::layer_context;
using testing::params_of;
using testing::perturb;

using Ints = std::vector<int64_t>;

TEST(SegmentLoop, IndexListsAndOneWayActivation) {
  auto ctx = layer_context(16, 2, 1, 0, /*layers=*/11);
  auto r = RecurrenceRegistry::get().build(component("recurrence", Json{{"name", "segment_loop"}}), ctx);
  EXPECT_EQ(r->order(true).encoder, (Ints{0, 1, 2, 3, 4}));
  EXPECT_EQ(r->order(true).decoder, (Ints{5, 6, 7, 8, 9, 10}));
  // Evaluation runs what training runs (the references' live validation), plain before activation.
  EXPECT_EQ(r->order(false).encoder, (Ints{0, 1, 2, 3, 4}));
  EXPECT_EQ(r->skip_slots(), 8);  // from the looped lists, even before looping starts
  r->on_train_progress(0.3499);
  EXPECT_EQ(r->order(true).encoder.size(), 5u);
  r->on_train_progress(0.35);
  EXPECT_EQ(r->order(true).encoder, (Ints{0, 1, 2, 3, 4, 5, 3, 4}));
  EXPECT_EQ(r->order(false).decoder, (Ints{5, 3, 4, 5, 6, 7, 8, 9, 10}));
  r->on_train_progress(0.1);  // one-way
  EXPECT_EQ(r->order(true).decoder, (Ints{5, 3, 4, 5, 6, 7, 8, 9, 10}));
  r->reset_train_progress();  // the warmup rollback: back to the plain order until activation
  EXPECT_EQ(r->order(true).decoder, (Ints{5, 6, 7, 8, 9, 10}));

  auto plain = RecurrenceRegistry::get().build(component("recurrence", Json{{"name", "none"}}), ctx);
  EXPECT_EQ(plain->order(false).encoder, (Ints{0, 1, 2, 3, 4}));
  EXPECT_EQ(plain->skip_slots(), 5);
  auto shared = RecurrenceRegistry::get().build(component("recurrence", Json{{"name", "shared_cores"}}), ctx);
  EXPECT_EQ(shared->num_cores(), 10);
  EXPECT_EQ(shared->core_of(10), 0);
  EXPECT_EQ(shared->core_of(9), 9);
}

TEST(SegmentLoop, TheModelRunsPlainUntilActivationInTrainingAndEvaluation) {
  torch::manual_seed(0);
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 40}, {"layers", 5}, {"dim", 16}, {"heads", 2},
                                     {"kv_heads", 1}, {"linear_init", "orthogonal"}, {"skip", "unet_gated"},
                                     {"recurrence", {{"name", "segment_loop"}, {"loop_start", 1}, {"loop_end", 2},
                                                     {"num_loops", 1}, {"activate_at", 0.5}}}});
  perturb(*m, 0.1);
  auto x = torch::randint(0, 40, {1, 9}, torch::kLong), y = torch::randint(0, 40, {1, 9}, torch::kLong);
  torch::NoGradGuard g;
  m->train();
  auto plain = m->token_nll(x, y);
  m->eval();
  EXPECT_TRUE(torch::allclose(m->token_nll(x, y), plain, 1e-6, 1e-7));  // a validation before activation
  m->on_train_progress(0.5);
  auto looped = m->token_nll(x, y);
  EXPECT_FALSE(torch::allclose(plain, looped, 1e-4, 1e-5));
  m->train();
  EXPECT_TRUE(torch::allclose(m->token_nll(x, y), looped, 1e-6, 1e-7));
  m->reset_train_progress();  // the warmup rollback
  m->eval();
  EXPECT_TRUE(torch::allclose(m->token_nll(x, y), plain, 1e-6, 1e-7));
}

TEST(TwoLaneResidual, MixingAtInitAndAfterAndTheLaneMean) {
  torch::manual_seed(1);
  auto lanes = LaneRegistry::get().build(component("lanes", Json{{"name", "two_lane"}}), layer_context(8, 2, 1, 0, 11));
  auto p = params_of(*lanes);
  EXPECT_TRUE(torch::allclose(p.at("parallel_resid_lambdas"), torch::full({11, 2}, 1.1)));
  EXPECT_TRUE(torch::equal(p.at("parallel_post_lambdas"), torch::ones({11, 2, 2})));
  EXPECT_EQ(lanes->start_layer(), 8);
  auto l0 = torch::randn({1, 3, 8}), l1 = torch::randn({1, 3, 8}), at = torch::randn({1, 3, 8}), mt = torch::randn({1, 3, 8});
  auto as = torch::rand({8}) + 0.5, ms = torch::rand({8}) + 0.5;  // the block's attn_scale, mlp_scale
  const LaneBranches br{at, mt, as, ms};
  auto a = as * at, m = ms * mt;
  auto [n0, n1] = lanes->mix(9, l0, l1, br);
  EXPECT_TRUE(torch::allclose(n0, 1.1 * l0 + a + m, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(n1, 1.1 * l1 + a + m, 1e-5, 1e-6));
  perturb(*lanes, 1.0);
  auto rho = p.at("parallel_resid_lambdas")[9], pi = p.at("parallel_post_lambdas")[9];
  std::tie(n0, n1) = lanes->mix(9, l0, l1, br);
  // pi[source][destination]: source 0 = attention, 1 = MLP.
  EXPECT_TRUE(torch::allclose(n0, rho[0] * l0 + pi[0][0] * a + pi[1][0] * m, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(n1, rho[1] * l1 + pi[0][1] * a + pi[1][1] * m, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lanes->merge(l0, l1), 0.5 * (l0 + l1)));
}

TEST(UnetGatedSkip, ConvexAverageAtInitThenSigmoidGate) {
  torch::manual_seed(2);
  auto skip = SkipRegistry::get().build(component("skip", Json{{"name", "unet_gated"}}), SkipContext{8, 3});
  auto x = torch::randn({1, 2, 8}), s = torch::randn({1, 2, 8});
  EXPECT_TRUE(torch::allclose(skip->merge(x, s, 2), 0.5 * x + 0.5 * s, 1e-6, 1e-6));
  perturb(*skip, 1.0);
  auto p = params_of(*skip);
  auto g = torch::sigmoid(p.at("skip_gates")[1]), w = p.at("skip_weights")[1];
  EXPECT_TRUE(torch::allclose(skip->merge(x, s, 1), g * x + (1 - g) * w * s, 1e-5, 1e-6));
  auto additive = SkipRegistry::get().build(component("skip", Json{{"name", "unet_additive"}}), SkipContext{8, 3});
  EXPECT_TRUE(torch::allclose(additive->merge(x, s, 0), x + s, 1e-6, 1e-6));
}

// The block's own attention and MLP (registered as "attn" and "mlp").
template <class T>
std::shared_ptr<T> child(torch::nn::Module& m, const std::string& name) {
  for (const auto& c : m.named_children())
    if (c.key() == name) return std::dynamic_pointer_cast<T>(c.value());
  return nullptr;
}

std::shared_ptr<Block> block(const Json& block_section, int64_t layer) {
  Recipe r = resolve_recipe(Json{{"model", {{"name", "gpt"}, {"dim", 16}, {"heads", 2}, {"kv_heads", 1},
                                            {"attention", {{"name", "gqa"}, {"rope_dims", 4}}}, {"block", block_section}}}},
                            "test", {});
  auto ctx = layer_context(16, 2, 1, layer, 11);
  const Config model = r.section("model");
  return BlockRegistry::get().build(model.sub("block"), ctx, model);
}

TEST(SequentialBlock, LayerwiseLnScaleScalesAttentionByFAndTheMlpByFSquared) {
  torch::manual_seed(3);
  auto scaled = block(Json{{"name", "sequential"}, {"ln_scale", true}}, 3);  // f = 1/2
  auto plain = block(Json{{"name", "sequential"}, {"ln_scale", false}}, 3);
  perturb(*scaled, 0.2);
  auto ps = params_of(*scaled), pp = params_of(*plain);
  {
    torch::NoGradGuard g;
    ps.at("resid_mix")[0].fill_(1.0);
    ps.at("resid_mix")[1].fill_(0.0);
    for (auto& [n, t] : pp) t.copy_(ps.at(n));
  }
  auto x = torch::randn({1, 5, 16});
  ForwardContext ctx{torch::zeros_like(x), {}, {}};
  auto zero = [](std::map<std::string, torch::Tensor>& p, const std::string& n) {
    torch::NoGradGuard g;
    p.at(n).zero_();
  };
  // Attention alone (MLP output projection zero): the branch scales by f, since q and k are re-normalised.
  auto mlp_s = ps.at("mlp.proj.weight").clone();
  zero(ps, "mlp.proj.weight");
  zero(pp, "mlp.proj.weight");
  EXPECT_TRUE(torch::allclose(scaled->forward(x, ctx) - x, 0.5 * (plain->forward(x, ctx) - x), 1e-5, 1e-6));
  // MLP alone (attention output projection zero): ReLU² is 2-homogeneous, so the branch scales by f².
  {
    torch::NoGradGuard g;
    ps.at("mlp.proj.weight").copy_(mlp_s);
    pp.at("mlp.proj.weight").copy_(mlp_s);
  }
  zero(ps, "attn.proj.weight");
  zero(pp, "attn.proj.weight");
  EXPECT_TRUE(torch::allclose(scaled->forward(x, ctx) - x, 0.25 * (plain->forward(x, ctx) - x), 1e-5, 1e-6));
}

TEST(SequentialBlock, GptjFromItsLayerAndTheLaneBranches) {
  torch::manual_seed(4);
  auto blk = block(Json{{"name", "sequential"}, {"ln_scale", true}, {"gptj_parallel_from", 3}}, 3);
  perturb(*blk, 0.2);
  auto p = params_of(*blk);
  auto attn = child<Attention>(*blk, "attn");
  auto mlp = child<Mlp>(*blk, "mlp");
  ASSERT_TRUE(attn && mlp);
  auto x = torch::randn({1, 4, 16}), x0 = torch::randn({1, 4, 16});
  ForwardContext ctx{x0, {}, {}};
  auto mix = p.at("resid_mix");
  auto x_in = mix[0] * x + mix[1] * x0;
  const double f = 0.5;
  auto rms = [](const torch::Tensor& t) { return t / torch::sqrt(t.square().mean(-1, true) + 1.1920928955078125e-07); };
  auto n = rms(x_in) * f;
  auto expected = x_in + p.at("attn_scale") * attn->forward(n) + p.at("mlp_scale") * mlp->forward(n);
  EXPECT_TRUE(torch::allclose(blk->forward(x, ctx), expected, 1e-5, 1e-6));

  auto lane1 = torch::randn({1, 4, 16});
  const LaneBranches br = blk->lane_branches(x, lane1, ctx);
  EXPECT_TRUE(torch::allclose(br.a(), p.at("attn_scale") * attn->forward(n), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(br.m(), p.at("mlp_scale") * mlp->forward(rms(lane1) * f), 1e-5, 1e-6));

  // Below gptj_parallel_from the block stays sequential.
  auto seq = block(Json{{"name", "sequential"}, {"ln_scale", true}, {"gptj_parallel_from", 4}}, 3);
  {
    torch::NoGradGuard g;
    for (auto& [name, t] : params_of(*seq)) t.copy_(p.at(name));
  }
  auto x_mid = x_in + p.at("attn_scale") * attn->forward(n);
  EXPECT_TRUE(torch::allclose(seq->forward(x, ctx), x_mid + p.at("mlp_scale") * mlp->forward(rms(x_mid) * f), 1e-5, 1e-6));
}

TEST(SharedCores, ACoreUsedTwiceGetsHalfItsGradient) {
  torch::manual_seed(5);
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 20}, {"layers", 3}, {"dim", 16}, {"heads", 2},
                                     {"kv_heads", 1}, {"linear_init", "orthogonal"},
                                     {"block", {{"name", "sequential"}, {"ln_scale", true}}},
                                     {"recurrence", {{"name", "shared_cores"}, {"cores", 2}}}});
  auto p = params_of(*m);
  ASSERT_EQ(p.count("cores.0.attn.c_q.weight"), 1u);
  ASSERT_EQ(p.count("blocks.2.attn.c_q.weight"), 0u);  // blocks use the cores, they do not own them
  ASSERT_EQ(p.count("blocks.2.resid_mix"), 1u);
  m->to(torch::kFloat64);
  m->set_compute_dtype(torch::kFloat64);
  perturb(*m, 0.1);
  auto x = torch::randint(0, 20, {2, 6}, torch::kLong), y = torch::randint(0, 20, {2, 6}, torch::kLong);
  m->loss(x, y).backward();
  // True derivative by central differences on single weights; core 0 serves blocks 0 and 2, core 1 block 1.
  auto fd = [&](const std::string& name, int64_t r, int64_t c) {
    torch::NoGradGuard g;
    auto w = p.at(name);
    const double h = 1e-6, w0 = w[r][c].item<double>();
    w[r][c] = w0 + h;
    const double up = m->loss(x, y).item<double>();
    w[r][c] = w0 - h;
    const double down = m->loss(x, y).item<double>();
    w[r][c] = w0;
    return (up - down) / (2 * h);
  };
  for (const char* name : {"cores.0.mlp.fc.weight", "cores.0.attn.c_q.weight"}) {
    const double true_grad = fd(name, 1, 2);
    EXPECT_GT(std::abs(true_grad), 1e-6) << name;
    EXPECT_NEAR(p.at(name).grad()[1][2].item<double>(), 0.5 * true_grad, 1e-6 + 1e-5 * std::abs(true_grad)) << name;
  }
  const double once = fd("cores.1.mlp.fc.weight", 3, 1);
  EXPECT_NEAR(p.at("cores.1.mlp.fc.weight").grad()[3][1].item<double>(), once, 1e-6 + 1e-5 * std::abs(once));
}

}  // namespace
}  // namespace pgolf
