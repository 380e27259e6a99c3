// The training-hook components against hand computations: EMA (e ← d·e + (1−d)·θ from the initial weights),
// SWA (snapshots only when the pre-step scale is below the threshold at multiples of `every`; plain mean),
// their checkpoint state, late QAT (int6 fake quantisation values, the straight-through gradient, the
// train-mode-only fake-quant tap on CastedLinear, one-way activation below the scale), magnitude pruning (3% quantile,
// only 2-D tensors with more than 65,536 entries).
#include <gtest/gtest.h>

#include <cmath>

#include "framework/training_hook.h"
#include "framework/fake_quant.h"
#include "models/layers.h"

namespace pgolf {
namespace {

// A model that is only its parameters: `w` (a vector), `lin` (a CastedLinear 4→2) and whatever a test adds.
struct Bare : LanguageModel {
  Bare() {
    w = register_parameter("w", torch::zeros({2}));
    lin = register_module("lin", CastedLinear(4, 2));
  }
  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor&) override { return x.to(torch::kFloat32); }
  int64_t vocab_size() const override { return 2; }
  void set(std::vector<float> v) {
    torch::NoGradGuard g;
    w.copy_(torch::tensor(v));
  }
  torch::Tensor w;
  CastedLinear lin{nullptr};
};

std::shared_ptr<TrainingHook> make(const std::string& name, Json keys = Json::object()) {
  const Json filled = SchemaCatalog::get().find("training_hook", name)->validate(keys, "train.hooks[0]", "test");
  Json cfg = filled;
  cfg["name"] = name;
  return TrainingHookRegistry::get().build(Config(cfg, "train.hooks[0]"));
}

std::vector<float> vals(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

TEST(Ema, ShadowFollowsTheRecurrenceFromTheInitialWeights) {
  Bare m;
  m.set({1, 2});
  auto ema = make("ema", {{"decay", 0.75}});
  ema->begin(m);  // e = (1, 2)
  m.set({5, -2});
  ema->after_step(m, 1.0, 1);  // e = .75(1,2) + .25(5,-2) = (2, 1)
  m.set({6, 9});
  ema->after_step(m, 1.0, 2);  // e = .75(2,1) + .25(6,9) = (3, 3)
  // Through a checkpoint: a fresh EMA loaded from the state finishes the same.
  auto copy = make("ema", {{"decay", 0.75}});
  copy->begin(m);
  copy->load_state(ema->state(), ema->meta());
  ema->finish(m);
  EXPECT_EQ(vals(m.w), (std::vector<float>{3, 3}));
  m.set({0, 0});
  copy->finish(m);
  EXPECT_EQ(vals(m.w), (std::vector<float>{3, 3}));
}

TEST(Swa, MeanOfSnapshotsTakenBelowTheScaleAtMultiplesOfEvery) {
  Bare m;
  auto swa = make("swa", {{"scale_below", 0.2}, {"every", 2}});
  swa->begin(m);
  // (weights after the step, pre-step scale, step count after it): taken at steps 4 and 6 only —
  // step 2's scale is 0.2 (not below), steps 3 and 5 are odd, step 1's scale is high.
  const std::vector<std::tuple<std::vector<float>, double, int64_t>> steps = {
      {{100, 100}, 0.9, 1}, {{50, 50}, 0.2, 2}, {{70, 70}, 0.15, 3}, {{1, 4}, 0.1, 4}, {{80, 80}, 0.05, 5}, {{3, 8}, 0.01, 6}};
  for (const auto& [w, scale, step] : steps) {
    m.set(w);
    swa->after_step(m, scale, step);
  }
  EXPECT_EQ(swa->meta()["count"], 2);
  auto copy = make("swa", {{"scale_below", 0.2}, {"every", 2}});
  copy->begin(m);
  copy->load_state(swa->state(), swa->meta());
  swa->finish(m);
  EXPECT_EQ(vals(m.w), (std::vector<float>{2, 6}));
  m.set({0, 0});
  copy->finish(m);
  EXPECT_EQ(vals(m.w), (std::vector<float>{2, 6}));
}

TEST(Swa, NoSnapshotLeavesTheWeights) {
  Bare m;
  auto swa = make("swa");
  swa->begin(m);
  m.set({7, 8});
  swa->after_step(m, 1.0, 50);
  swa->finish(m);
  EXPECT_EQ(vals(m.w), (std::vector<float>{7, 8}));
}

TEST(FakeQuant, Int6RowsByHand) {
  // Row 0: rowmax 1 -> s = max(1/31, 1/31); w·31 = 15.5, -31, 8.06, 0 -> 16 (half to even), -31, 8, 0.
  // Row 1: rowmax 4 -> s = 4/31; w/s = 31, -15.5, 24.025, 0.3875 -> 31, -16, 24, 0.
  // Row 2: rowmax 0.02 -> the floor s = 1/31; w·31 = 0.31, -0.62 -> 0, -1.
  auto w = torch::tensor({{0.5f, -1.0f, 0.26f, 0.0f}, {4.0f, -2.0f, 3.1f, 0.05f}, {0.01f, -0.02f, 0.0f, 0.0f}});
  auto q = fake_quantize_rows(w, 6);
  const std::vector<float> expect = {16 / 31.f, -1.f, 8 / 31.f, 0.f, 4.f, -64 / 31.f, 96 / 31.f, 0.f, 0.f, -1 / 31.f, 0.f, 0.f};
  const auto got = vals(q);
  for (size_t i = 0; i < expect.size(); ++i) EXPECT_NEAR(got[i], expect[i], 1e-6) << i;
}

TEST(FakeQuant, StraightThroughGradientIsTheIdentity) {
  auto w = torch::randn({5, 7}).requires_grad_();
  auto g = torch::randn({5, 7});
  (fake_quantize_rows(w, 6) * g).sum().backward();
  EXPECT_TRUE(torch::equal(w.grad(), g));
}

TEST(LateQat, SwitchesCastedLinearOnBelowTheScaleInTrainModeOnly) {
  Bare m;
  {
    torch::NoGradGuard g;
    m.lin->weight.copy_(torch::tensor({{0.5f, -1.0f, 0.26f, 0.0f}, {4.0f, -2.0f, 3.1f, 0.05f}}));
  }
  auto x = torch::tensor({{1.0f, 2.0f, 3.0f, 4.0f}});
  const auto plain = torch::matmul(x, m.lin->weight.t()).detach();
  const auto quant = torch::matmul(x, fake_quantize_rows(m.lin->weight, 6).t()).detach();
  ASSERT_FALSE(torch::allclose(plain, quant));
  auto qat = make("late_qat");
  m.train();
  qat->begin(m);
  qat->before_step(m, 0.1, 10);  // not below 0.1
  EXPECT_TRUE(torch::allclose(m.lin->forward(x), plain, 1e-6, 1e-6));
  qat->before_step(m, 0.09, 11);
  EXPECT_TRUE(torch::allclose(m.lin->forward(x), quant, 1e-6, 1e-6));
  qat->before_step(m, 0.5, 12);  // one-way
  EXPECT_TRUE(torch::allclose(m.lin->forward(x), quant, 1e-6, 1e-6));
  m.eval();
  EXPECT_TRUE(torch::allclose(m.lin->forward(x), plain, 1e-6, 1e-6));
  m.train();
  // A checkpointed "on" reaches the layers of a resumed run at its first step.
  Bare resumed;
  resumed.train();
  auto qat2 = make("late_qat");
  qat2->begin(resumed);
  qat2->load_state(qat->state(), qat->meta());
  qat2->before_step(resumed, 1.0, 0);
  {
    torch::NoGradGuard g;
    resumed.lin->weight.copy_(m.lin->weight);
  }
  EXPECT_TRUE(torch::allclose(resumed.lin->forward(x), quant, 1e-6, 1e-6));
  qat->finish(m);
  EXPECT_TRUE(torch::allclose(m.lin->forward(x), plain, 1e-6, 1e-6));
}

TEST(MagnitudePrune, ZeroesBelowThe3PercentQuantileOfLargeMatricesOnly) {
  Bare m;
  // 300x300 = 90,000 > 65,536 entries, |w| = 0 .. 89,999 shuffled with alternating signs. The 3% quantile
  // (linear interpolation) is at 0.03·89,999 = 2699.97, so |w| = 0 .. 2699 go: 2,700 entries.
  auto idx = torch::randperm(90000, torch::kLong);
  auto mags = idx.to(torch::kFloat32);
  auto signs = torch::where(idx % 2 == 0, torch::ones({90000}), -torch::ones({90000}));
  auto big = m.register_parameter("big", (mags * signs).view({300, 300}));
  auto edge = m.register_parameter("edge", torch::arange(65536, torch::kFloat32).view({256, 256}) + 1);  // exactly 65,536
  auto flat = m.register_parameter("flat", torch::arange(70000, torch::kFloat32) + 1);  // 1-D
  make("magnitude_prune")->before_export(m);
  EXPECT_EQ((big == 0).sum().item<int64_t>(), 2700);
  EXPECT_TRUE(torch::equal(big.abs() < 2700, big == 0));
  EXPECT_EQ((edge == 0).sum().item<int64_t>(), 0);
  EXPECT_EQ((flat == 0).sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace pgolf
