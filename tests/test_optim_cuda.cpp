// CUDA checks of the optimizers: GPU results equal CPU ones, step() never synchronises with the host,
// and one Muon / Adam step on the baseline's shapes is timed. Compiled only in CUDA builds.
#ifdef PGOLF_WITH_CUDA
#include <gtest/gtest.h>
#include <c10/cuda/CUDAFunctions.h>
#include <chrono>
#include "framework/optimizer.h"
#include "tests/component_testing.h"
#include "optim/newton_schulz.h"

namespace pgolf {
namespace {

using testing::make_optimizer;
struct SyncGuard {  // any host sync inside throws
  SyncGuard() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR); }
  ~SyncGuard() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED); }
};

void run_same(const Json& cfg_gpu, const Json& cfg_cpu, std::vector<int64_t> shape, torch::ScalarType dt, double tol) {
  torch::manual_seed(1);
  auto w0 = torch::randn(shape).to(dt);
  auto wc = w0.clone().requires_grad_();
  auto wg = w0.to(torch::kCUDA).requires_grad_();
  auto oc = make_optimizer(cfg_cpu, {{"w", wc}});
  auto og = make_optimizer(cfg_gpu, {{"w", wg}});
  for (int64_t s = 0; s < 4; ++s) {
    auto g = torch::randn(shape).to(dt);
    wc.mutable_grad() = g.clone();
    wg.mutable_grad() = g.to(torch::kCUDA);
    oc->step(1.0 - 0.1 * s, s);
    {
      SyncGuard guard;
      og->step(1.0 - 0.1 * s, s);
    }
  }
  const double d = (wg.detach().cpu().to(torch::kFloat64) - wc.detach().to(torch::kFloat64)).abs().max().item<double>();
  std::cout << cfg_gpu.dump() << " " << shape << " max diff " << d << "\n";
  EXPECT_LT(d, tol);
}

TEST(OptimCuda, AdamFusedMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP();
  run_same({{"name", "adam"}, {"weight_decay", 0.1}}, {{"name", "adam"}, {"weight_decay", 0.1}, {"fused", "off"}}, {64, 32},
           torch::kFloat32, 1e-6);
  run_same({{"name", "adam"}, {"weight_decay", 0.1}, {"fused", "off"}}, {{"name", "adam"}, {"weight_decay", 0.1}, {"fused", "off"}},
           {64, 32}, torch::kFloat32, 1e-6);
  run_same({{"name", "adam"}}, {{"name", "adam"}, {"fused", "off"}}, {64, 32}, torch::kBFloat16, 2e-2);
}

TEST(OptimCuda, MuonMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP();
  for (auto cfg : {Json{{"name", "muon"}, {"ns_dtype", "fp32"}},
                   Json{{"name", "muon"}, {"ns_dtype", "fp32"}, {"coefficients", "polar_express"}, {"row_normalize", true},
                        {"weight_decay", 0.095}}}) {
    run_same(cfg, cfg, {96, 32}, torch::kFloat32, 1e-4);
    run_same(cfg, cfg, {3, 32, 64}, torch::kFloat32, 1e-4);
  }
  run_same({{"name", "muon"}}, {{"name", "muon"}}, {96, 32}, torch::kFloat32, 2e-2);  // bf16 NS on both
  run_same({{"name", "muon"}, {"momentum_dtype", "bf16"}}, {{"name", "muon"}, {"momentum_dtype", "bf16"}}, {4, 64, 32},
           torch::kFloat32, 2e-2);
  run_same({{"name", "sgd"}, {"momentum", 0.9}, {"nesterov", true}}, {{"name", "sgd"}, {"momentum", 0.9}, {"nesterov", true}},
           {16}, torch::kFloat32, 1e-6);
}

TEST(OptimCuda, BaselineStepTiming) {
  if (!torch::cuda::is_available()) GTEST_SKIP();
  std::vector<NamedParam> mats, rest;
  for (int l = 0; l < 9; ++l)
    for (auto sh : std::vector<std::vector<int64_t>>{{512, 512}, {256, 512}, {256, 512}, {512, 512}, {1024, 512}, {512, 1024}})
      mats.push_back({"m" + std::to_string(mats.size()), torch::randn(sh, torch::kCUDA).requires_grad_()});
  rest.push_back({"tok_emb", torch::randn({1024, 512}, torch::kCUDA).requires_grad_()});
  for (int i = 0; i < 40; ++i) rest.push_back({"s" + std::to_string(i), torch::randn({512}, torch::kCUDA).requires_grad_()});
  for (auto* v : {&mats, &rest})
    for (auto& p : *v) p.param.mutable_grad() = torch::randn_like(p.param);
  auto muon = make_optimizer({{"name", "muon"}}, mats);
  auto adam = make_optimizer({{"name", "adam"}}, rest);
  for (int s = 0; s < 5; ++s) { muon->step(1, s); adam->step(1, s); }
  torch::cuda::synchronize();
  for (auto* o : {&muon, &adam}) {
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < 50; ++s) (*o)->step(1, s);
    torch::cuda::synchronize();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 50;
    std::cout << ((*o) == muon ? "muon (54 baseline matrices, bf16 NS x5)" : "adam fused (tok_emb + 40 vectors)") << ": " << ms
              << " ms/step\n";
  }
}
}  // namespace
}  // namespace pgolf
#endif  // PGOLF_WITH_CUDA
