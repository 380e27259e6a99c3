#include <gtest/gtest.h>

#include "framework/grad_clip.h"

namespace pgolf {
namespace {

TEST(GradClip, ScalesToTheMaxNormOnlyWhenAbove) {
  auto a = torch::zeros({2}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});  // global norm 5
  auto n = clip_grad_norm({a, b}, 1.0);
  EXPECT_NEAR(n.item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / (5.0 + 1e-6), 1e-6);
  clip_grad_norm({a, b}, 10.0);  // now below the max: unchanged
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / (5.0 + 1e-6), 1e-6);
}

}  // namespace
}  // namespace pgolf
