// Newton–Schulz: the scalar singular-value map against the spec's bands (§4.2), and the matrix iteration
// against that scalar map on matrices with known SVD.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "framework/config.h"
#include "optim/newton_schulz.h"

namespace pgolf {
namespace {

double scalar_map(double s, const std::vector<NsCoefficients>& co, int64_t steps) {
  for (int64_t i = 0; i < steps; ++i) {
    const NsCoefficients& k = ns_step_coefficients(co, i);
    s = k.a * s + k.b * s * s * s + k.c * s * s * s * s * s;
  }
  return s;
}

// min and max of the 5-step map over a uniform grid of [lo, 1].
std::pair<double, double> band(const std::vector<NsCoefficients>& co, double lo) {
  double mn = 1e9, mx = -1e9;
  const int n = 10000;
  for (int i = 0; i <= n; ++i) {
    const double v = scalar_map(lo + (1.0 - lo) * i / n, co, 5);
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  return {mn, mx};
}

TEST(NewtonSchulz, QuinticScalarBandMatchesSpec) {
  const auto co = ns_coefficients("quintic");
  ASSERT_EQ(co.size(), 1u);
  const auto [mn, mx] = band(co, 0.01);
  EXPECT_NEAR(mn, 0.682, 5e-4);  // spec §4.2: [0.682, 1.134], f(1) = 0.696
  EXPECT_NEAR(mx, 1.134, 5e-4);
  EXPECT_NEAR(scalar_map(1.0, co, 5), 0.696, 5e-4);
  EXPECT_NEAR(scalar_map(1.0, co, 5), 0.6964364094697522, 1e-12);  // python3, plain floats
}

TEST(NewtonSchulz, PolarExpressScalarBandMatchesSpec) {
  const auto co = ns_coefficients("polar_express");
  ASSERT_EQ(co.size(), 5u);
  const auto [mn, mx] = band(co, 0.001);
  EXPECT_NEAR(mn, 0.859, 5e-4);  // spec §4.2: [0.859, 1.141], f(1) = 0.859
  EXPECT_NEAR(mx, 1.141, 5e-4);
  EXPECT_NEAR(scalar_map(1.0, co, 5), 0.859, 5e-4);
  EXPECT_NEAR(scalar_map(1.0, co, 5), 0.8591289631132328, 1e-12);
}

TEST(NewtonSchulz, StepsPastTheListRepeatTheLastTuple) {
  const auto co = ns_coefficients("polar_express");
  EXPECT_DOUBLE_EQ(ns_step_coefficients(co, 0).a, 8.156554524902461);
  EXPECT_DOUBLE_EQ(ns_step_coefficients(co, 4).a, 2.3465413258596377);
  EXPECT_DOUBLE_EQ(ns_step_coefficients(co, 7).a, 2.3465413258596377);
  EXPECT_DOUBLE_EQ(ns_step_coefficients(ns_coefficients("quintic"), 3).c, 2.0315);
  EXPECT_THROW(ns_coefficients("cubic"), ConfigError);
}

// An orthogonal (n, n) matrix from the QR of a seeded Gaussian one.
torch::Tensor orthogonal(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto q = std::get<0>(torch::linalg_qr(torch::randn({n, n}, torch::kFloat64)));
  return q;
}

// G = U diag(σ) Vᵀ, then zeropower(G) must equal U diag(f(σ/‖σ‖₂)) Vᵀ: same singular vectors, mapped values.
void check_known_svd(int64_t rows, int64_t cols, const std::string& coeffs) {
  const std::vector<double> sigma = {1.0, 0.7, 0.4, 0.2, 0.05};
  const int64_t k = std::min(rows, cols);
  ASSERT_EQ(k, 5);
  const auto U = orthogonal(rows, 11).narrow(1, 0, k), V = orthogonal(cols, 12).narrow(1, 0, k);
  double norm = 0;
  for (double s : sigma) norm += s * s;
  norm = std::sqrt(norm);
  const auto co = ns_coefficients(coeffs);
  std::vector<double> fs;
  for (double s : sigma) fs.push_back(scalar_map(s / norm, co, 5));
  const auto S = torch::tensor(sigma, torch::kFloat64), FS = torch::tensor(fs, torch::kFloat64);
  const auto G = torch::matmul(U * S, V.t()).to(torch::kFloat32);
  const auto expected = torch::matmul(U * FS, V.t());

  const auto X = zeropower(G, 5, co, torch::kFloat32);
  ASSERT_EQ(X.scalar_type(), torch::kFloat32);
  ASSERT_EQ(X.sizes(), G.sizes());
  EXPECT_LT((X.to(torch::kFloat64) - expected).abs().max().item<double>(), 2e-5) << rows << "x" << cols << " " << coeffs;
  const auto sv = torch::linalg_svdvals(X.to(torch::kFloat64));  // descending
  auto want = std::get<0>(FS.sort(0, /*descending=*/true));
  EXPECT_LT((sv - want).abs().max().item<double>(), 2e-5);
}

TEST(NewtonSchulz, MatrixMapsSingularValuesAndKeepsVectorsWide) { check_known_svd(5, 8, "quintic"); }
TEST(NewtonSchulz, MatrixMapsSingularValuesAndKeepsVectorsTall) { check_known_svd(8, 5, "quintic"); }
TEST(NewtonSchulz, MatrixPolarExpress) { check_known_svd(8, 5, "polar_express"); }

TEST(NewtonSchulz, BatchedEqualsPerSlice) {
  torch::manual_seed(3);
  for (auto shape : {std::vector<int64_t>{3, 4, 6}, std::vector<int64_t>{3, 6, 4}}) {
    auto G = torch::randn(shape);
    G[1] *= 10.0;  // the Frobenius norm is per slice, so slice scale must not leak into the others
    const auto co = ns_coefficients("quintic");
    const auto B = zeropower(G, 5, co, torch::kFloat32);
    for (int64_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(B[i], zeropower(G[i], 5, co, torch::kFloat32), 1e-5, 1e-6));
  }
}

TEST(NewtonSchulz, Bf16ByDefaultAndCloseToFp32) {
  torch::manual_seed(4);
  auto G = torch::randn({16, 32});
  const auto co = ns_coefficients("quintic");
  const auto xb = zeropower(G, 5, co);
  EXPECT_EQ(xb.scalar_type(), torch::kBFloat16);
  const auto xf = zeropower(G, 5, co, torch::kFloat32);
  EXPECT_LT((xb.to(torch::kFloat32) - xf).abs().max().item<double>(), 0.05);
  EXPECT_THROW(zeropower(torch::randn({4}), 5, co), std::runtime_error);
}

}  // namespace
}  // namespace pgolf
