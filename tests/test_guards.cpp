// The non-finite guard: it remembers the first step whose loss or gradient norm is NaN/Inf (later ones do
// not move it), ignores finite values, and global_grad_norm is the L2 norm over all gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/guards.h"

namespace pgolf {
namespace {

torch::Tensor scalar(double v) { return torch::tensor(static_cast<float>(v)); }

TEST(NonFiniteGuard, RemembersTheFirstBadStep) {
  NonFiniteGuard g(torch::kCPU);
  for (int64_t s = 1; s <= 6; ++s) g.observe(scalar(3.0 / s), scalar(1e30), s);  // large is fine
  EXPECT_EQ(g.first_bad_step(), -1);
  g.observe(scalar(NAN), scalar(1.0), 7);
  g.observe(scalar(1.0), scalar(INFINITY), 9);
  EXPECT_EQ(g.first_bad_step(), 7);
}

TEST(NonFiniteGuard, GradientNormAloneTrips) {
  NonFiniteGuard g(torch::kCPU);
  g.observe(scalar(2.0), scalar(1.0), 1);
  g.observe(scalar(2.0), scalar(-INFINITY), 2);
  EXPECT_EQ(g.first_bad_step(), 2);
  NonFiniteGuard h(torch::kCPU);
  h.observe(scalar(NAN), torch::Tensor(), 4);  // an undefined norm is skipped, the loss still counts
  EXPECT_EQ(h.first_bad_step(), 4);
}

TEST(GlobalGradNorm, IsTheNormOverAllGradients) {
  auto a = torch::zeros({2}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
  auto c = torch::zeros({3}, torch::requires_grad());  // no gradient: ignored
  (a * torch::tensor({3.0f, 4.0f})).sum().backward();
  (b * 12.0f).sum().backward();
  EXPECT_FLOAT_EQ(global_grad_norm({a, b, c}).item<float>(), 13.0f);  // sqrt(9 + 16 + 144)
}

}  // namespace
}  // namespace pgolf
