// Adam/AdamW and SGD against hand-checked values (python3 with plain floats, torch.optim formulas).
#include <gtest/gtest.h>

#include "framework/optimizer.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

using testing::make_optimizer;


void expect_vec(const torch::Tensor& t, std::vector<double> want, double tol) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t[i].item<double>(), want[i], tol) << "element " << i;
}

// θ = [1, −2]; g1 = [0.5, −0.25] at lr scale 1, g2 = [−1, 2] at scale 0.5; lr 0.04, β (0.9, 0.95), ε 1e-8.
// With wd 0.1: θ1 = θ0(1 − 0.004) − 0.04·m̂/(√v̂ + ε) = [0.956, −1.952] (m̂/√v̂ = ±1 on step 1).
void two_adam_steps(const std::string& fused, double wd, std::vector<double> want1, std::vector<double> want2) {
  auto w = torch::tensor({1.0f, -2.0f}).requires_grad_();
  auto opt = make_optimizer({{"name", "adam"}, {"weight_decay", wd}, {"fused", fused}}, {{"w", w}});
  w.mutable_grad() = torch::tensor({0.5f, -0.25f});
  opt->step(1.0, 0);
  expect_vec(w.detach(), want1, 1e-6);
  w.mutable_grad() = torch::tensor({-1.0f, 2.0f});
  opt->step(0.5, 1);
  expect_vec(w.detach(), want2, 1e-6);
  const auto st = opt->state();
  EXPECT_NEAR(st.at("step").item<double>(), 2.0, 0);
  expect_vec(st.at("w.exp_avg"), {-0.055, 0.1775}, 1e-7);        // 0.9·0.1·g1 + 0.1·g2
  expect_vec(st.at("w.exp_avg_sq"), {0.061875, 0.20296875}, 1e-7);  // 0.95·0.05·g1² + 0.05·g2²
}

TEST(Adam, TwoStepsWithWeightDecayPlain) {
  two_adam_steps("off", 0.1, {0.9560000008, -1.9520000016}, {0.961355479717, -1.96104578392});
}
TEST(Adam, TwoStepsWithoutWeightDecayPlain) {
  two_adam_steps("off", 0.0, {0.9600000008, -1.9600000016}, {0.967267479718, -1.97294978393});
}
// ATen's fused kernel (CPU here, CUDA in training) gives the same math.
TEST(Adam, TwoStepsWithWeightDecayFused) {
  two_adam_steps("on", 0.1, {0.9560000008, -1.9520000016}, {0.961355479717, -1.96104578392});
}

TEST(Adam, FusedAndPlainAgreeOnManyTensors) {
  torch::manual_seed(7);
  std::vector<NamedParam> a, b;
  for (int i = 0; i < 3; ++i) {
    auto t = torch::randn({5, 4});
    a.push_back({"p" + std::to_string(i), t.clone().requires_grad_()});
    b.push_back({"p" + std::to_string(i), t.clone().requires_grad_()});
  }
  auto oa = make_optimizer({{"name", "adam"}, {"weight_decay", 0.05}, {"fused", "on"}}, a);
  auto ob = make_optimizer({{"name", "adam"}, {"weight_decay", 0.05}, {"fused", "off"}}, b);
  for (int64_t s = 0; s < 3; ++s) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn({5, 4});
      a[i].param.mutable_grad() = g.clone();
      b[i].param.mutable_grad() = g.clone();
    }
    oa->step(1.0 - 0.2 * s, s);
    ob->step(1.0 - 0.2 * s, s);
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i].param, b[i].param, 1e-6, 1e-7));
}

TEST(Adam, StateRoundTripGivesIdenticalNextStep) {
  auto w1 = torch::tensor({1.0f, -2.0f, 3.0f}).requires_grad_();
  auto o1 = make_optimizer({{"name", "adam"}, {"fused", "off"}}, {{"w", w1}});
  w1.mutable_grad() = torch::tensor({0.1f, 0.2f, -0.3f});
  o1->step(1.0, 0);
  const auto saved = o1->state();
  auto w2 = w1.detach().clone().requires_grad_();
  auto o2 = make_optimizer({{"name", "adam"}, {"fused", "off"}}, {{"w", w2}});
  o2->load_state(saved);
  w1.mutable_grad() = torch::tensor({-0.4f, 0.5f, 0.6f});
  w2.mutable_grad() = torch::tensor({-0.4f, 0.5f, 0.6f});
  o1->step(0.5, 1);
  o2->step(0.5, 1);
  EXPECT_TRUE(torch::equal(w1.detach(), w2.detach()));
  EXPECT_NEAR(saved.at("step").item<double>(), 1.0, 0);  // a snapshot: the later step did not move it
  EXPECT_THROW(o2->load_state({{"step", torch::zeros({})}}), std::runtime_error);
}

// torch.optim.SGD: d = g + wd·θ; buf = d (first step), then 0.9·buf + d; Nesterov uses d + 0.9·buf.
void two_sgd_steps(const Json& cfg, std::vector<double> want1, std::vector<double> want2) {
  auto w = torch::tensor({1.0f, -2.0f}).requires_grad_();
  auto opt = make_optimizer(cfg, {{"w", w}});
  w.mutable_grad() = torch::tensor({0.5f, -0.25f});
  opt->step(1.0, 0);
  expect_vec(w.detach(), want1, 1e-6);
  w.mutable_grad() = torch::tensor({-1.0f, 2.0f});
  opt->step(1.0, 1);
  expect_vec(w.detach(), want2, 1e-6);
}

TEST(Sgd, PlainSteps) { two_sgd_steps({{"name", "sgd"}, {"lr", 0.1}}, {0.95, -1.975}, {1.05, -2.175}); }
TEST(Sgd, MomentumWithWeightDecay) {
  two_sgd_steps({{"name", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 0.01}}, {0.949, -1.973},
                {1.002151, -2.146727});
}
TEST(Sgd, NesterovWithWeightDecay) {
  two_sgd_steps({{"name", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.01}},
                {0.9031, -1.9487}, {1.05007411, -2.30312747});
}

TEST(Sgd, StateRoundTripAndNesterovNeedsMomentum) {
  const Json cfg = {{"name", "sgd"}, {"lr", 0.1}, {"momentum", 0.9}};
  auto w1 = torch::tensor({1.0f, -2.0f}).requires_grad_();
  auto o1 = make_optimizer(cfg, {{"w", w1}});
  EXPECT_TRUE(o1->state().empty());  // no buffer before the first step
  w1.mutable_grad() = torch::tensor({0.5f, -0.25f});
  o1->step(1.0, 0);
  const auto saved = o1->state();
  auto w2 = w1.detach().clone().requires_grad_();
  auto o2 = make_optimizer(cfg, {{"w", w2}});
  o2->load_state(saved);
  w1.mutable_grad() = torch::tensor({-1.0f, 2.0f});
  w2.mutable_grad() = torch::tensor({-1.0f, 2.0f});
  o1->step(1.0, 1);
  o2->step(1.0, 1);
  EXPECT_TRUE(torch::equal(w1.detach(), w2.detach()));
  // buf = 0.9·[0.5, −0.25] + [−1, 2] = [−0.55, 1.775]; θ = [0.95, −1.975] − 0.1·buf
  expect_vec(w2.detach(), {1.005, -2.1525}, 1e-6);
  EXPECT_THROW(make_optimizer({{"name", "sgd"}, {"nesterov", true}}, {{"w", w1}}), ConfigError);
}

}  // namespace
}  // namespace pgolf
