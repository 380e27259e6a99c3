// Hessian collection (spec posttrain §4.1, §12.2) on tiny GPTs, against an explicit Σ xᵀx of the inputs a
// recording tap captured: both tap policies, the head (final-norm output) for the tied embedding, every pass
// of a looped segment, q/k/v sharing one input, and two simulated ranks summing the same H as one.
#include <gtest/gtest.h>

#include <map>

#include "framework/calibration.h"
#include "framework/pipeline.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

std::shared_ptr<LanguageModel> tiny_gpt(bool looped) {
  torch::manual_seed(3);
  Json model = {{"name", "gpt"}, {"vocab_size", 32}, {"layers", 3}, {"dim", 16}, {"heads", 2}, {"kv_heads", 1},
                {"mlp", {{"name", "leaky_relu2"}}}};
  if (looped)
    model["recurrence"] = {{"name", "segment_loop"}, {"loop_start", 1}, {"loop_end", 1}, {"num_loops", 2}, {"activate_at", 0.0}};
  auto m = testing::build_model(model);
  testing::perturb(*m, 0.05);  // zero-initialised projections would give zero inputs downstream
  m->on_train_progress(1.0);
  return m;
}

// Every input each site sees, in order.
struct Capture : Tap {
  std::map<std::string, std::vector<torch::Tensor>> seen;  // by site name
  void observe(const TapSite& s, const torch::Tensor& x) override { seen[s.name].push_back(x.detach().clone()); }
};

std::vector<Batch> batches(int n, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.emplace_back(torch::randint(0, 32, {2, 8}), torch::randint(0, 32, {2, 8}));
  return out;
}

std::function<Batch()> source(const std::vector<Batch>& bs) {
  auto i = std::make_shared<size_t>(0);
  return [bs, i] { return bs[(*i)++]; };
}

torch::Tensor xtx(const std::vector<torch::Tensor>& xs) {
  torch::Tensor h;
  for (const auto& x : xs) {
    const torch::Tensor x2 = x.reshape({-1, x.size(-1)}).to(torch::kFloat64);
    h = h.defined() ? h + torch::mm(x2.t(), x2) : torch::mm(x2.t(), x2);
  }
  return h;
}

CalibrationSites all_linears() {
  CalibrationSites p;
  p.min_numel = 0;
  return p;
}

TEST(Calibrate, HessiansAreTheSumOfXtXOfTheCapturedInputs) {
  testing::SingleThreaded one;
  auto m = tiny_gpt(false);
  const auto bs = batches(3, 1);
  auto cap = std::make_shared<Capture>();
  {
    ScopedTap on(m->taps(), cap);
    torch::NoGradGuard g;
    m->eval();
    for (const auto& b : bs) m->token_nll(b.x, b.y);
    m->train();
  }
  LocalCommunicator local;
  const auto r = collect_hessians(*m, source(bs), 3, all_linears(), local, torch::kCPU);
  EXPECT_EQ(r.batches, 3);
  EXPECT_TRUE(m->is_training());  // the mode is restored
  EXPECT_TRUE(m->taps().empty());
  // every attn/MLP linear and the head; the head's H is the tied embedding's (the final-norm output)
  EXPECT_EQ(r.hessians.size(), 3u * 6u + 1u);
  for (const auto& [site, xs] : cap->seen) {
    const std::string weight = site == "head" ? "tok_emb.weight" : site + ".weight";
    ASSERT_TRUE(r.hessians.count(weight)) << weight;
    const torch::Tensor& h = r.hessians.at(weight);
    EXPECT_EQ(h.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(h.to(torch::kFloat64), xtx(xs) / 3.0, 1e-5, 1e-6)) << weight;
  }
  // q, k and v read the same input: one H, three names
  EXPECT_TRUE(torch::equal(r.hessians.at("blocks.1.attn.c_q.weight"), r.hessians.at("blocks.1.attn.c_k.weight")));
  EXPECT_TRUE(torch::equal(r.hessians.at("blocks.1.attn.c_q.weight"), r.hessians.at("blocks.1.attn.c_v.weight")));
}

TEST(Calibrate, LoopedLayersAccumulateEveryPass) {
  testing::SingleThreaded one;
  auto m = tiny_gpt(true);
  const auto bs = batches(2, 2);
  auto cap = std::make_shared<Capture>();
  {
    ScopedTap on(m->taps(), cap);
    torch::NoGradGuard g;
    m->eval();
    for (const auto& b : bs) m->token_nll(b.x, b.y);
    m->train();
  }
  EXPECT_EQ(cap->seen["blocks.1.mlp.fc"].size(), 2u * 3u);  // layer 1 runs 3 times per forward
  EXPECT_EQ(cap->seen["blocks.0.mlp.fc"].size(), 2u);
  LocalCommunicator local;
  const auto r = collect_hessians(*m, source(bs), 2, all_linears(), local, torch::kCPU);
  EXPECT_TRUE(torch::allclose(r.hessians.at("blocks.1.mlp.fc.weight").to(torch::kFloat64), xtx(cap->seen["blocks.1.mlp.fc"]) / 2.0,
                              1e-5, 1e-6));
}

TEST(Calibrate, TwoRanksSumTheSameHessiansAsOne) {
  testing::SingleThreaded one;
  auto m = tiny_gpt(false);
  const auto all = batches(4, 3);
  LocalCommunicator local;
  const auto whole = collect_hessians(*m, source(all), 4, all_linears(), local, torch::kCPU);
  // Ranks 0 and 1 each see half; their collectives change nothing here, so each result is its own sum divided
  // by the batches of one rank, and all_reduce's sum is what the test adds: (H0 + H1) / 2 = the whole / 4 batches.
  const auto r0 = collect_hessians(*m, source({all[0], all[1]}), 2, all_linears(), *testing::one_rank_of(0, 2), torch::kCPU);
  const auto r1 = collect_hessians(*m, source({all[2], all[3]}), 2, all_linears(), *testing::one_rank_of(1, 2), torch::kCPU);
  ASSERT_EQ(r0.hessians.size(), whole.hessians.size());
  for (const auto& [name, h] : whole.hessians)
    EXPECT_TRUE(torch::allclose((r0.hessians.at(name) + r1.hessians.at(name)) / 2.0, h, 1e-5, 1e-6)) << name;
}

TEST(Calibrate, PoliciesChooseTheirSites) {
  auto m = tiny_gpt(false);
  CalibrationSites module;  // min_numel 65536: nothing of this tiny model but the head
  EXPECT_EQ(calibration_sites(*m, module), (std::set<std::string>{"head"}));
  module.min_numel = 16 * 16 - 1;  // c_q (16x16), fc, proj; not c_k / c_v (8x16)
  const auto s = calibration_sites(*m, module);
  EXPECT_TRUE(s.count("blocks.0.attn.c_q"));
  EXPECT_TRUE(s.count("blocks.2.mlp.proj"));
  EXPECT_FALSE(s.count("blocks.0.attn.c_k"));
  CalibrationSites block;
  block.policy = "block_taps";
  block.roles = {"attn.c_q", "mlp.fc"};
  EXPECT_EQ(calibration_sites(*m, block).size(), 3u * 2u + 1u);
  EXPECT_TRUE(calibration_sites(*m, block).count("blocks.2.mlp.fc"));
}

TEST(Calibrate, StopsWhenAskedAndAllRanksAgree) {
  testing::SingleThreaded one;
  auto m = tiny_gpt(false);
  LocalCommunicator local;
  int asked = 0;
  const auto r = collect_hessians(*m, source(batches(5, 4)), 5, all_linears(), local, torch::kCPU, [&](double mean_ms) {
    EXPECT_GE(mean_ms, 0.0);
    return ++asked < 2;
  });
  EXPECT_EQ(r.batches, 2);
}

TEST(Calibrate, StageKeysAreValidatedWhenThePipelineIsBuilt) {
  const auto good = resolve_recipe(Json{{"pipeline", Json::array({Json{{"name", "calibrate"}, {"batches", 4},
                                                                       {"tap_policy", "block_taps"}},
                                                                  Json{{"name", "quantize"}, {"quantizer", {{"name", "gptq"}}}}})}},
                                   "test", {});
  EXPECT_EQ(build_pipeline(good.root()).size(), 2u);
  EXPECT_THROW(resolve_recipe(Json{{"pipeline", Json::array({Json{{"name", "calibrate"}, {"tap_policy", "rows"}}})}}, "test", {}),
               ConfigError);
  EXPECT_THROW(resolve_recipe(Json{{"pipeline", Json::array({Json{{"name", "calibrate"}, {"batchez", 4}}})}}, "test", {}),
               ConfigError);
}

}  // namespace
}  // namespace pgolf
