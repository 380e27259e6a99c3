// Muon: steps against values from an independent plain-python implementation of spec §4.2 (fp64 NS, the
// recipe defaults of the challenge baseline), momentum warmup, banks, state round trip.
#include <gtest/gtest.h>

#include "framework/optimizer.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

using testing::make_optimizer;


torch::Tensor mat(std::vector<std::vector<double>> rows) {
  std::vector<torch::Tensor> r;
  for (auto& row : rows) r.push_back(torch::tensor(row, torch::kFloat32));
  return torch::stack(r);
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tol) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT((got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max().item<double>(), tol)
      << "got\n" << got << "\nwant\n" << want;
}

TEST(Muon, BaselineDefaultsTwoStepsTallMatrix) {
  // 3x2: the tall path (NS on the transpose), shape scale sqrt(3/2); quintic, Nesterov, μ 0.85 -> 0.8502.
  auto w = mat({{0.1, -0.2}, {0.3, 0.4}, {-0.5, 0.6}}).requires_grad_();
  auto opt = make_optimizer({{"name", "muon"}, {"ns_dtype", "fp32"}}, {{"w", w}});
  EXPECT_DOUBLE_EQ(opt->base_lr(), 0.04);
  w.mutable_grad() = mat({{0.5, -1.0}, {0.25, 0.75}, {-0.3, 0.2}});
  opt->step(0.5, 0);
  expect_close(w, mat({{0.0864973561, -0.188435209}, {0.282037011, 0.385720573}, {-0.48831068, 0.599480908}}), 2e-6);
  w.mutable_grad() = mat({{-0.2, 0.4}, {0.9, -0.1}, {0.3, 0.3}});
  opt->step(1.0, 1);
  expect_close(w, mat({{0.087003513, -0.189970735}, {0.244153506, 0.389166242}, {-0.484208174, 0.549147422}}), 2e-6);
  expect_close(opt->state().at("w.momentum_buffer"), mat({{0.2251, -0.4502}, {1.11255, 0.53765}, {0.04494, 0.47004}}),
               1e-6);
}

TEST(Muon, PlainMomentumPolarExpressRowNormWeightDecay) {
  // 2x3 (wide, scale 1), no Nesterov, MuonEq-R, decoupled wd 0.1 with the scheduled lr, μ 0.9 fixed.
  auto w = mat({{0.1, 0.3, -0.5}, {-0.2, 0.4, 0.6}}).requires_grad_();
  auto opt = make_optimizer({{"name", "muon"},
                       {"lr", 0.02},
                       {"ns_dtype", "fp32"},
                       {"nesterov", false},
                       {"coefficients", "polar_express"},
                       {"row_normalize", true},
                       {"weight_decay", 0.1},
                       {"momentum", 0.9},
                       {"momentum_warmup_start", 0.5},
                       {"momentum_warmup_steps", 0}},
                      {{"w", w}});
  w.mutable_grad() = mat({{0.5, 0.25, -0.3}, {-1.0, 0.75, 0.2}});
  opt->step(1.0, 0);
  expect_close(w, mat({{0.0879221987, 0.287089276, -0.489834336}, {-0.187670635, 0.383896011, 0.598448356}}), 2e-6);
  w.mutable_grad() = mat({{-0.2, 0.9, 0.3}, {0.4, -0.1, 0.3}});
  opt->step(0.25, 1);
  expect_close(w, mat({{0.0856779821, 0.282648386, -0.48878228}, {-0.184095537, 0.381889398, 0.595225507}}), 2e-6);
  expect_close(opt->state().at("w.momentum_buffer"), mat({{0.25, 1.125, 0.03}, {-0.5, 0.575, 0.48}}), 1e-6);
}

TEST(Muon, MomentumWarmup) {
  // buf = μ(step)·buf + G with buf = 1 and G = 0 reads μ(step) back: 0.85 + (0.95 − 0.85)·min(step/500, 1).
  const std::vector<std::pair<int64_t, double>> cases = {{0, 0.85}, {250, 0.90}, {500, 0.95}, {1000, 0.95}};
  for (const auto& [step, mu] : cases) {
    auto w = torch::zeros({2, 2}).requires_grad_();
    auto opt = make_optimizer({{"name", "muon"}, {"lr", 0.0}}, {{"w", w}});
    opt->load_state({{"w.momentum_buffer", torch::ones({2, 2})}});
    w.mutable_grad() = torch::zeros({2, 2});
    opt->step(1.0, step);
    expect_close(opt->state().at("w.momentum_buffer"), torch::full({2, 2}, mu), 1e-7);
  }
}

TEST(Muon, BankSlicesUpdateLikeSeparateMatrices) {
  torch::manual_seed(5);
  auto bank = torch::randn({2, 3, 2}).requires_grad_();
  auto a = bank.detach()[0].clone().requires_grad_(), b = bank.detach()[1].clone().requires_grad_();
  const Json cfg = {{"name", "muon"}, {"ns_dtype", "fp32"}, {"row_normalize", true}};
  auto ob = make_optimizer(cfg, {{"bank", bank}});
  auto o1 = make_optimizer(cfg, {{"a", a}}), o2 = make_optimizer(cfg, {{"b", b}});
  for (int64_t step = 0; step < 2; ++step) {
    auto g = torch::randn({2, 3, 2});
    g[1] *= 7.0;  // per-slice normalisation: one slice's scale must not change the other's update
    bank.mutable_grad() = g.clone();
    a.mutable_grad() = g[0].clone();
    b.mutable_grad() = g[1].clone();
    ob->step(1.0, step);
    o1->step(1.0, step);
    o2->step(1.0, step);
  }
  expect_close(bank.detach()[0], a.detach(), 1e-6);
  expect_close(bank.detach()[1], b.detach(), 1e-6);
}

TEST(Muon, SameShapeMatricesInOneGroupUpdateLikeSeparateOptimizers) {
  // One optimizer over three 3x2 matrices (one Newton-Schulz batch), a 2x4 and a 2x3x2 bank, against one
  // optimizer per matrix; the matrix without a gradient in step 1 keeps its weight and momentum.
  torch::manual_seed(9);
  std::vector<torch::Tensor> ws = {torch::randn({3, 2}), torch::randn({3, 2}), torch::randn({2, 4}),
                                   torch::randn({3, 2}), torch::randn({2, 3, 2})};
  std::vector<torch::Tensor> together, alone;
  std::vector<NamedParam> named;
  for (size_t i = 0; i < ws.size(); ++i) {
    together.push_back(ws[i].clone().requires_grad_());
    alone.push_back(ws[i].clone().requires_grad_());
    named.push_back({"w" + std::to_string(i), together.back()});
  }
  const Json cfg = {{"name", "muon"}, {"ns_dtype", "fp32"}, {"row_normalize", true}, {"weight_decay", 0.1},
                    {"coefficients", "polar_express"}};
  auto group = make_optimizer(cfg, named);
  std::vector<std::shared_ptr<Optimizer>> singles;
  for (size_t i = 0; i < ws.size(); ++i) singles.push_back(make_optimizer(cfg, {{"w", alone[i]}}));
  for (int64_t step = 0; step < 3; ++step) {
    for (size_t i = 0; i < ws.size(); ++i) {
      const bool skip = step == 1 && i == 1;
      auto g = skip ? torch::Tensor() : torch::randn(ws[i].sizes()) * static_cast<double>(i + 1);
      together[i].mutable_grad() = skip ? g : g.clone();
      alone[i].mutable_grad() = skip ? g : g.clone();
    }
    group->step(0.5, step);
    for (auto& o : singles) o->step(0.5, step);
  }
  for (size_t i = 0; i < ws.size(); ++i) {
    SCOPED_TRACE("w" + std::to_string(i));
    expect_close(together[i].detach(), alone[i].detach(), 1e-6);
    EXPECT_FALSE(torch::equal(together[i].detach(), ws[i])) << "never updated";
  }
}

TEST(Muon, RejectsVectorsAndSkipsParamsWithoutGrad) {
  try {
    make_optimizer({{"name", "muon"}}, {{"blocks.0.attn_scale", torch::zeros({4}, torch::requires_grad())}});
    FAIL() << "a 1-D parameter was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'blocks.0.attn_scale' has 1 dimensions"), std::string::npos) << e.what();
  }
  auto w = torch::ones({2, 2}).requires_grad_();
  auto opt = make_optimizer({{"name", "muon"}}, {{"w", w}});
  opt->step(1.0, 0);  // no gradient: unchanged
  EXPECT_TRUE(torch::equal(w.detach(), torch::ones({2, 2})));
}

TEST(Muon, StateRoundTripGivesIdenticalNextStep) {
  torch::manual_seed(6);
  auto w1 = torch::randn({4, 3}).requires_grad_();
  const Json cfg = {{"name", "muon"}, {"momentum_dtype", "bf16"}};
  auto o1 = make_optimizer(cfg, {{"w", w1}});
  for (int64_t s = 0; s < 2; ++s) {
    w1.mutable_grad() = torch::randn({4, 3});
    o1->step(1.0, s);
  }
  const auto saved = o1->state();
  EXPECT_EQ(saved.at("w.momentum_buffer").scalar_type(), torch::kBFloat16);
  auto w2 = w1.detach().clone().requires_grad_();
  auto o2 = make_optimizer(cfg, {{"w", w2}});
  o2->load_state(saved);
  const auto g = torch::randn({4, 3});
  w1.mutable_grad() = g.clone();
  w2.mutable_grad() = g.clone();
  o1->step(0.7, 2);
  o2->step(0.7, 2);
  EXPECT_TRUE(torch::equal(w1.detach(), w2.detach()));
  // state() is a snapshot, not a view of the live buffer
  EXPECT_FALSE(torch::equal(saved.at("w.momentum_buffer"), o1->state().at("w.momentum_buffer")));
  EXPECT_THROW(o2->load_state({{"other.momentum_buffer", torch::zeros({4, 3})}}), std::runtime_error);
}

}  // namespace
}  // namespace pgolf
