// CUDA checks of the optimizers: GPU results equal CPU ones, step() never synchronises with the host
// (the optimizers' step times are a benchmark: `trainer --profile` splits the step by optimizer group).
// Compiled only in CUDA builds.
#ifdef PGOLF_WITH_CUDA
#include <gtest/gtest.h>
#include <c10/cuda/CUDAFunctions.h>
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

}  // namespace
}  // namespace pgolf
#endif  // PGOLF_WITH_CUDA
