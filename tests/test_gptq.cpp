// GPTQ with SD-clip (spec posttrain §4.2, §11.4, §12.1). The oracle is a plain double-precision loop of the
// algorithm written here from the spec (own Cholesky, column by column, no blocks, no ATen), fed the same
// fp16 scales; and the property GPTQ exists for: its calibration-weighted error ‖(W − Ŵ)Xᵀ‖ is below
// round-to-nearest's at the same scales.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "framework/artifact.h"
#include "quant/gptq.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

using Mat = std::vector<std::vector<double>>;

Mat to_mat(const torch::Tensor& t) {
  const torch::Tensor d = t.to(torch::kFloat64).contiguous();
  Mat m(d.size(0), std::vector<double>(d.size(1)));
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) m[i][j] = d[i][j].item<double>();
  return m;
}

Mat cholesky_lower(const Mat& a) {  // a = L Lᵀ
  const size_t n = a.size();
  Mat l(n, std::vector<double>(n, 0.0));
  for (size_t j = 0; j < n; ++j) {
    double d = a[j][j];
    for (size_t k = 0; k < j; ++k) d -= l[j][k] * l[j][k];
    l[j][j] = std::sqrt(d);
    for (size_t i = j + 1; i < n; ++i) {
      double s = a[i][j];
      for (size_t k = 0; k < j; ++k) s -= l[i][k] * l[j][k];
      l[i][j] = s / l[j][j];
    }
  }
  return l;
}

Mat inverse_spd(const Mat& a) {  // via L: solve L Lᵀ X = I column by column
  const size_t n = a.size();
  const Mat l = cholesky_lower(a);
  Mat x(n, std::vector<double>(n));
  for (size_t c = 0; c < n; ++c) {
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (size_t k = 0; k < i; ++k) s -= l[i][k] * y[k];
      y[i] = s / l[i][i];
    }
    for (size_t i = n; i-- > 0;) {
      double s = y[i];
      for (size_t k = i + 1; k < n; ++k) s -= l[k][i] * x[k][c];
      x[i][c] = s / l[i][i];
    }
  }
  return x;
}

// The spec's steps 1-7 for one matrix, column by column.
std::vector<std::vector<int>> reference_gptq(Mat w, Mat h, const std::vector<double>& s, int cr, double damp) {
  const size_t rows = w.size(), cols = h.size();
  std::vector<bool> dead(cols);
  for (size_t j = 0; j < cols; ++j)
    if (h[j][j] == 0) dead[j] = true, h[j][j] = 1.0;
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < cols; ++j)
      if (dead[j]) w[r][j] = 0.0;
  double mean = 0;
  for (size_t j = 0; j < cols; ++j) mean += h[j][j] / static_cast<double>(cols);
  for (size_t j = 0; j < cols; ++j) h[j][j] += damp * mean;
  std::vector<size_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return h[a][a] > h[b][b]; });
  Mat hp(cols, std::vector<double>(cols)), wp(rows, std::vector<double>(cols));
  for (size_t i = 0; i < cols; ++i)
    for (size_t j = 0; j < cols; ++j) hp[i][j] = h[perm[i]][perm[j]];
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < cols; ++j) wp[r][j] = w[r][perm[j]];
  const Mat l = cholesky_lower(inverse_spd(hp));  // H⁻¹ = L Lᵀ, U = Lᵀ
  std::vector<std::vector<int>> q(rows, std::vector<int>(cols));
  for (size_t j = 0; j < cols; ++j) {
    for (size_t r = 0; r < rows; ++r) {
      const double v = s[r] > 0 ? std::clamp(std::nearbyint(wp[r][j] / s[r]), -double(cr), double(cr)) : 0.0;
      q[r][perm[j]] = static_cast<int>(v);
      const double e = (wp[r][j] - v * s[r]) / l[j][j];
      for (size_t k = j + 1; k < cols; ++k) wp[r][k] -= e * l[k][j];  // U[j][k] = L[k][j]
    }
  }
  return q;
}

// A correlated calibration set: X = Z·M, so H = XᵀX is far from diagonal.
torch::Tensor activations(int64_t tokens, int64_t cols, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::mm(torch::randn({tokens, cols}, torch::kFloat64), torch::randn({cols, cols}, torch::kFloat64)) +
         0.3 * torch::randn({tokens, cols}, torch::kFloat64);
}

TEST(Gptq, SdClipVectorOfTheSpec) {
  // §11.4: int6, k = 12.85, unbiased row std 0.02 -> s = fp16(0.00829032) = 0.00829315185546875.
  const int64_t n = 100;
  const double c = 0.02 * std::sqrt(static_cast<double>(n - 1) / n);
  torch::Tensor w = torch::empty({1, n});
  for (int64_t j = 0; j < n; ++j) w[0][j] = j % 2 ? c : -c;
  const torch::Tensor s = quant::sdclip_scales(w, 12.85, 6);
  ASSERT_EQ(s.scalar_type(), torch::kFloat16);
  EXPECT_EQ(s[0].item<float>(), 0.00829315185546875f);
  // 0.3 -> 36.17 -> 31 (clamped); 0.1 -> 12.058 -> 12. With H = I GPTQ has no error to spread: RTN.
  const torch::Tensor row = torch::tensor({{0.3f, 0.1f, -0.3f, -0.1f}});
  const torch::Tensor q = quant::gptq_codes(row.unsqueeze(0), torch::eye(4).unsqueeze(0), s.view({1, 1}), {6, 128, 0.01, true});
  EXPECT_TRUE(torch::equal(q, torch::tensor({{{31, 12, -31, -12}}}, torch::kInt8)));
}

TEST(Gptq, ScalesAreTheUnbiasedStdOfTheOriginalRows) {
  torch::manual_seed(1);
  const torch::Tensor w = torch::randn({5, 40}, torch::kFloat64) * 0.05;
  const torch::Tensor s = quant::sdclip_scales(w, 13.0, 7);
  for (int64_t r = 0; r < 5; ++r) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < 40; ++j) m += w[r][j].item<double>() / 40.0;
    for (int64_t j = 0; j < 40; ++j) v += std::pow(w[r][j].item<double>() - m, 2) / 39.0;
    EXPECT_EQ(s[r].item<float>(), static_cast<float>(c10::Half(static_cast<float>(13.0 * std::sqrt(v) / 63.0))));
  }
}

TEST(Gptq, MatchesAPlainDoubleLoopOfTheSpec) {
  testing::SingleThreaded one;
  for (int bits : {5, 6, 8}) {
    const int64_t rows = 7, cols = 24;
    torch::manual_seed(10 + bits);
    const torch::Tensor w = torch::randn({rows, cols}, torch::kFloat64) * 0.1;
    const torch::Tensor x = activations(200, cols, 20 + bits);
    torch::Tensor h = torch::mm(x.t(), x);
    h.index_put_({3, torch::indexing::Slice()}, 0.0);  // a dead column
    h.index_put_({torch::indexing::Slice(), 3}, 0.0);
    const torch::Tensor s = quant::sdclip_scales(w, 3.0, bits);  // tight clip: many codes at ±cr
    std::vector<double> sd;
    for (int64_t r = 0; r < rows; ++r) sd.push_back(s[r].item<double>());
    const auto ref = reference_gptq(to_mat(w), to_mat(h), sd, static_cast<int>(quant::clip_range(bits)), 0.01);
    for (int64_t block : {128, 5}) {  // one block, and several with lazy updates between them
      const torch::Tensor q = quant::gptq_codes(w.unsqueeze(0), h.unsqueeze(0), s.unsqueeze(0), {bits, block, 0.01, true})[0];
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(q[r][j].item<int>(), ref[r][j]) << bits << " " << block << " " << r << "," << j;
      EXPECT_EQ(q.index({torch::indexing::Slice(), 3}).abs().sum().item<int>(), 0);
    }
    // The fp32 path the quantiser runs agrees with the fp64 loop on almost every code.
    const torch::Tensor q32 = quant::gptq_codes(w.to(torch::kFloat32).unsqueeze(0), h.to(torch::kFloat32).unsqueeze(0),
                                                s.unsqueeze(0), {bits, 128, 0.01, true})[0];
    int same = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) same += q32[r][j].item<int>() == ref[r][j];
    EXPECT_GE(same, rows * cols * 97 / 100);
  }
}

TEST(Gptq, CalibrationWeightedErrorIsBelowRoundToNearest) {
  testing::SingleThreaded one;
  const int64_t rows = 32, cols = 64;
  torch::manual_seed(5);
  const torch::Tensor w = torch::randn({rows, cols}) * 0.02;
  const torch::Tensor x = activations(512, cols, 6).to(torch::kFloat32);
  const torch::Tensor h = torch::mm(x.t(), x);
  for (int bits : {5, 6}) {
    const torch::Tensor s = quant::sdclip_scales(w, 12.0, bits);
    const torch::Tensor sf = s.to(torch::kFloat32).unsqueeze(1);
    const int64_t cr = quant::clip_range(bits);
    const torch::Tensor rtn = torch::clamp(torch::round(w / sf), -cr, cr) * sf;
    const torch::Tensor gq = quant::gptq_codes(w.unsqueeze(0), h.unsqueeze(0), s.unsqueeze(0), {bits, 16, 0.01, true})[0];
    const double e_rtn = torch::mm(w - rtn, x.t()).norm().item<double>();
    const double e_gptq = torch::mm(w - gq.to(torch::kFloat32) * sf, x.t()).norm().item<double>();
    EXPECT_LT(e_gptq, 0.8 * e_rtn) << "bits " << bits;
  }
}

TEST(Gptq, BatchedFormEqualsOneMatrixAtATime) {
  testing::SingleThreaded one;
  torch::manual_seed(9);
  const torch::Tensor w = torch::randn({3, 6, 20}) * 0.05;
  std::vector<torch::Tensor> hs;
  for (int i = 0; i < 3; ++i) {
    const torch::Tensor x = activations(100, 20, 40 + i).to(torch::kFloat32);
    hs.push_back(torch::mm(x.t(), x));
  }
  const torch::Tensor h = torch::stack(hs), s = quant::sdclip_scales(w, 10.0, 6);
  const quant::GptqOptions o{6, 8, 0.01, true};
  const torch::Tensor all = quant::gptq_codes(w, h, s, o);
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_TRUE(torch::equal(all[i], quant::gptq_codes(w[i].unsqueeze(0), h[i].unsqueeze(0), s[i].unsqueeze(0), o)[0]));
}

TEST(Gptq, RefusesMismatchedShapes) {
  EXPECT_THROW(quant::gptq_codes(torch::zeros({1, 4, 5}), torch::eye(4).unsqueeze(0), torch::ones({1, 4}, torch::kFloat16), {}),
               std::invalid_argument);
}

}  // namespace
}  // namespace pgolf
