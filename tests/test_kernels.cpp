// The fused ops' two CPU forms (kernels/ops.h): each composition against the op's formula computed here
// element by element, and each autograd Function (the ATen twin of the CUDA kernels: same chunking, same
// explicit backward formulas) against the composition's autograd and against central differences, in fp64.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "kernels/ops.h"

namespace pgolf {
namespace {

using torch::Tensor;
namespace K = kernels;

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

double max_diff(const Tensor& a, const Tensor& b) { return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>(); }

// ∂f/∂t by central differences at every entry of t (a contiguous fp64 leaf), f a scalar function.
Tensor numeric_grad(const std::function<double()>& f, Tensor t, double eps = 1e-6) {
  torch::NoGradGuard ng;
  auto flat = t.view({-1});
  auto g = torch::zeros_like(flat);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + eps;
    const double fp = f();
    flat[i] = v - eps;
    const double fm = f();
    flat[i] = v;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g.view(t.sizes());
}

// The gradients of Σ out ⊙ proj with respect to `inputs`.
std::vector<Tensor> grads_of(const Tensor& out, const Tensor& proj, const std::vector<Tensor>& inputs) {
  return torch::autograd::grad({(out * proj).sum()}, inputs, {}, /*retain_graph=*/false, false, /*allow_unused=*/true);
}

// --- (a) softcapped CE of the tied head ---------------------------------------------------------------
// nll_i = log Σ_j exp(C tanh(z_ij / C)) − C tanh(z_{i,y_i} / C), z = h wᵀ, by loops.
std::vector<double> ce_by_hand(const Tensor& h, const Tensor& w, const Tensor& y, double C) {
  std::vector<double> out;
  for (int64_t i = 0; i < h.size(0); ++i) {
    double s = 0, ly = 0;
    for (int64_t j = 0; j < w.size(0); ++j) {
      double z = 0;
      for (int64_t k = 0; k < h.size(1); ++k) z += h[i][k].item<double>() * w[j][k].item<double>();
      const double l = C * std::tanh(z / C);
      s += std::exp(l);
      if (j == y[i].item<int64_t>()) ly = l;
    }
    out.push_back(std::log(s) - ly);
  }
  return out;
}

TEST(KernelsSoftcapCe, CompositionAndChunkedFunctionEqualTheFormula) {
  torch::manual_seed(0);
  const double C = 3.0;  // small, so the softcap bends the logits
  auto h = torch::randn({7, 5}, kF64) * 2, w = torch::randn({11, 5}, kF64), y = torch::randint(0, 11, {7}, torch::kLong);
  const auto hand = ce_by_hand(h, w, y, C);
  const auto tokens = K::compose::softcap_ce(h, w, y, C, false);
  const auto chunked = K::function::softcap_ce_tokens_nograd(h, w, y, C, /*chunk=*/3);  // chunks of 3, 3, 1
  double mean = 0;
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_NEAR(tokens[i].item<double>(), hand[i], 1e-12);
    EXPECT_NEAR(chunked[i].item<double>(), hand[i], 1e-12);
    mean += hand[i] / 7;
  }
  EXPECT_NEAR(K::compose::softcap_ce(h, w, y, C, true).item<double>(), mean, 1e-12);
  EXPECT_NEAR(K::function::softcap_ce_mean(h, w, y, C, 3).item<double>(), mean, 1e-12);
}

TEST(KernelsSoftcapCe, FunctionGradientsEqualAutogradAndFiniteDifferences) {
  torch::manual_seed(1);
  const double C = 2.5;
  auto h = (torch::randn({9, 4}, kF64) * 2).requires_grad_(), w = torch::randn({6, 4}, kF64).requires_grad_();
  auto y = torch::randint(0, 6, {9}, torch::kLong);
  auto fused = K::function::softcap_ce_mean(h, w, y, C, /*chunk=*/4) * 0.375;  // an upstream gradient ≠ 1
  auto g = torch::autograd::grad({fused}, {h, w});
  auto ref = torch::autograd::grad({K::compose::softcap_ce(h, w, y, C, true) * 0.375}, {h, w});
  EXPECT_LT(max_diff(g[0], ref[0]), 1e-12);
  EXPECT_LT(max_diff(g[1], ref[1]), 1e-12);
  auto hd = h.detach().clone(), wd = w.detach().clone();
  auto loss = [&] { return 0.375 * K::function::softcap_ce_tokens_nograd(hd, wd, y, C, 4).mean().item<double>(); };
  EXPECT_LT(max_diff(g[0], numeric_grad(loss, hd)), 1e-7);
  EXPECT_LT(max_diff(g[1], numeric_grad(loss, wd)), 1e-7);
}

// --- (b, c) norm + partial RoPE + gain ------------------------------------------------------------------
// out[b,t,h,:] = factor · gain[h] · rope_t(x / sqrt(mean(x²) + eps)), rope on pairs (c, c + R/2), c < R/2,
// angle t·base^(−2c/R), by loops.
Tensor norm_rope_by_hand(const Tensor& x, int64_t R, double base, const Tensor& gain, bool norm, double factor) {
  auto out = torch::zeros_like(x);
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = R / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> n(static_cast<size_t>(D));
        double ss = 0;
        for (int64_t c = 0; c < D; ++c) ss += std::pow(x[b][t][h][c].item<double>(), 2);
        const double r = norm ? 1.0 / std::sqrt(ss / D + std::numeric_limits<double>::epsilon()) : 1.0;
        for (int64_t c = 0; c < D; ++c) n[c] = x[b][t][h][c].item<double>() * r;
        const double s = factor * (gain.defined() ? gain[h].item<double>() : 1.0);
        for (int64_t c = 0; c < D; ++c) {
          double v = n[c];
          if (c < R) {
            const int64_t p = c % half;
            const double th = t * std::pow(base, -2.0 * p / R);
            v = c < half ? n[c] * std::cos(th) + n[c + half] * std::sin(th) : n[c] * std::cos(th) - n[p] * std::sin(th);
          }
          out[b][t][h][c] = v * s;
        }
      }
  return out;
}

std::pair<Tensor, Tensor> tables(int64_t T, int64_t R, double base) {
  auto inv = torch::pow(base, -torch::arange(0, R, 2, kF64) / static_cast<double>(R));
  auto f = torch::outer(torch::arange(T, kF64), inv);
  return {f.cos(), f.sin()};
}

TEST(KernelsNormRope, CompositionAndFunctionEqualTheFormula) {
  torch::manual_seed(2);
  auto x = torch::randn({2, 5, 3, 8}, kF64) * 3, gain = torch::rand({3}, kF64) + 0.5;
  for (int64_t R : {4, 8}) {
    auto [c, s] = tables(5, R, 100.0);
    for (bool norm : {true, false}) {
      auto hand = norm_rope_by_hand(x, R, 100.0, gain, norm, 1.0);
      EXPECT_LT(max_diff(K::compose::norm_rope_gain(x, c, s, gain, norm, 1.0), hand), 1e-12) << R << norm;
      EXPECT_LT(max_diff(K::function::norm_rope_gain(x, c, s, gain, norm, 1.0), hand), 1e-12) << R << norm;
    }
  }
  // The block input: RMSNorm × f over the last dim, no RoPE, no gain.
  auto hand = norm_rope_by_hand(x, 0, 1.0, {}, true, 0.25);
  EXPECT_LT(max_diff(K::rms_norm_scaled(x, 0.25, true), hand), 1e-12);
  EXPECT_LT(max_diff(K::function::norm_rope_gain(x, {}, {}, {}, true, 0.25), hand), 1e-12);
}

TEST(KernelsNormRope, FunctionGradientsEqualAutogradAndFiniteDifferences) {
  torch::manual_seed(3);
  auto [c, s] = tables(4, 4, 50.0);
  for (bool norm : {true, false}) {
    auto x = (torch::randn({2, 4, 3, 6}, kF64) * 2).requires_grad_(), gain = (torch::rand({3}, kF64) + 0.5).requires_grad_();
    auto proj = torch::randn({2, 4, 3, 6}, kF64);
    auto g = grads_of(K::function::norm_rope_gain(x, c, s, gain, norm, 0.7), proj, {x, gain});
    auto ref = grads_of(K::compose::norm_rope_gain(x, c, s, gain, norm, 0.7), proj, {x, gain});
    EXPECT_LT(max_diff(g[0], ref[0]), 1e-12) << norm;
    EXPECT_LT(max_diff(g[1], ref[1]), 1e-12) << norm;
    auto xd = x.detach().clone(), gd = gain.detach().clone();
    auto f = [&] { return (K::function::norm_rope_gain(xd, c, s, gd, norm, 0.7) * proj).sum().item<double>(); };
    EXPECT_LT(max_diff(g[0], numeric_grad(f, xd)), 1e-7) << norm;
    EXPECT_LT(max_diff(g[1], numeric_grad(f, gd)), 1e-7) << norm;
  }
  // The block input: no RoPE, no gain (the Function's placeholders), a factor.
  auto x = (torch::randn({5, 7}, kF64) * 2).requires_grad_();
  auto proj = torch::randn({5, 7}, kF64);
  auto fn = [&](const Tensor& t) { return K::function::norm_rope_gain(t.reshape({-1, 1, 1, 7}), {}, {}, {}, true, 0.3).view({5, 7}); };
  auto g = grads_of(fn(x), proj, {x});
  auto ref = grads_of(K::rms_norm_scaled(x, 0.3, true), proj, {x});
  EXPECT_LT(max_diff(g[0], ref[0]), 1e-12);
}

// --- (d) residual ops ---------------------------------------------------------------------------------
TEST(KernelsResidual, CompositionsAndFunctionsEqualTheFormulasWithGradients) {
  torch::manual_seed(4);
  auto x = torch::randn({3, 5, 6}, kF64).requires_grad_(), x0 = torch::randn({3, 5, 6}, kF64).requires_grad_();
  auto y = torch::randn({3, 5, 6}, kF64).requires_grad_();
  auto mix = torch::randn({2, 6}, kF64).requires_grad_(), sc = torch::randn({6}, kF64).requires_grad_();
  auto proj = torch::randn({3, 5, 6}, kF64);
  // By hand: out[i, c] = mix[0][c]·x + mix[1][c]·x0, and x + s[c]·y; their gradients under Σ out ⊙ P.
  auto mix_hand = mix[0].detach() * x.detach() + mix[1].detach() * x0.detach();
  auto add_hand = x.detach() + sc.detach() * y.detach();
  EXPECT_LT(max_diff(K::compose::resid_mix(x, x0, mix), mix_hand), 1e-14);
  EXPECT_LT(max_diff(K::compose::scale_add(x, sc, y), add_hand), 1e-14);
  auto gm = grads_of(K::function::resid_mix(x, x0, mix), proj, {x, x0, mix});
  EXPECT_LT(max_diff(gm[0], proj * mix[0].detach()), 1e-14);
  EXPECT_LT(max_diff(gm[1], proj * mix[1].detach()), 1e-14);
  EXPECT_LT(max_diff(gm[2][0], (proj * x.detach()).sum(at::IntArrayRef{0, 1})), 1e-12);
  EXPECT_LT(max_diff(gm[2][1], (proj * x0.detach()).sum(at::IntArrayRef{0, 1})), 1e-12);
  auto ga = grads_of(K::function::scale_add(x, sc, y), proj, {x, sc, y});
  EXPECT_LT(max_diff(ga[0], proj), 1e-14);
  EXPECT_LT(max_diff(ga[1], (proj * y.detach()).sum(at::IntArrayRef{0, 1})), 1e-12);
  EXPECT_LT(max_diff(ga[2], proj * sc.detach()), 1e-14);
  // The Functions' forwards equal the compositions.
  EXPECT_LT(max_diff(K::function::resid_mix(x, x0, mix), mix_hand), 1e-14);
  EXPECT_LT(max_diff(K::function::scale_add(x, sc, y), add_hand), 1e-14);
}

// --- (e) LeakyReLU² -----------------------------------------------------------------------------------
TEST(KernelsLeakyRelu2, ValuesAndGradientByHand) {
  auto z = torch::tensor({-2.0, -0.5, 0.0, 0.25, 3.0}, kF64).requires_grad_();
  const double s = 0.5;
  // (s·z)² for z ≤ 0, z² otherwise; gradient 2s²z and 2z.
  auto want = torch::tensor({1.0, 0.0625, 0.0, 0.0625, 9.0}, kF64);
  auto dwant = torch::tensor({-2.0 * 0.25 * 2.0, -2.0 * 0.25 * 0.5, 0.0, 0.5, 6.0}, kF64);
  EXPECT_LT(max_diff(K::compose::leaky_relu2(z, s), want), 1e-15);
  auto out = K::function::leaky_relu2(z, s);
  EXPECT_LT(max_diff(out, want), 1e-15);
  auto g = torch::autograd::grad({out.sum()}, {z});
  EXPECT_LT(max_diff(g[0], dwant), 1e-15);
}

// --- (f) XSA + the per-head gate -----------------------------------------------------------------------
TEST(KernelsXsaGate, FunctionEqualsTheCompositionWithGradients) {
  torch::manual_seed(6);
  const int64_t B = 2, T = 3, H = 4, Hkv = 2, d = 5;
  for (int variant = 0; variant < 3; ++variant) {  // XSA and gate; XSA alone; gate alone
    const bool xsa = variant != 2, gated = variant != 1;
    const std::string tag = std::string(xsa ? "xsa" : "") + (gated ? "+gate" : "");
    auto y = torch::randn({B, T, H, d}, kF64).requires_grad_();
    auto v0 = torch::randn({B, T, Hkv, d}, kF64);
    v0[1][2][0] = v0[1][2][0] / v0[1][2][0].norm() * 1e-13;  // below the 1e-12 norm floor: the clamped branch
    auto v = v0.requires_grad_();
    auto gate = gated ? torch::rand({B, T, H}, kF64).requires_grad_() : Tensor();
    auto proj = torch::randn({B, T, H, d}, kF64);
    // By hand: head h reads kv head h / 2; z = y − (y·v̂)v̂ (v̂ = v / max(‖v‖, 1e-12)); out = g z.
    auto want = y.detach().clone();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          auto row = want[b][t][h];
          if (xsa) {
            auto vv = v.detach()[b][t][h / 2];
            auto vn = vv / std::max(vv.norm().item<double>(), 1e-12);
            row.sub_((row * vn).sum() * vn);
          }
          if (gated) row.mul_(gate.detach()[b][t][h]);
        }
    EXPECT_LT(max_diff(K::compose::xsa_gate(y, v, gate, xsa), want), 1e-14) << tag;
    auto out = K::function::xsa_gate(y, v, gate, xsa);
    EXPECT_LT(max_diff(out, want), 1e-14) << tag;
    std::vector<Tensor> inputs = {y};
    if (xsa) inputs.push_back(v);
    if (gated) inputs.push_back(gate);
    auto got = grads_of(out, proj, inputs), ref = grads_of(K::compose::xsa_gate(y, v, gate, xsa), proj, inputs);
    for (size_t i = 0; i < inputs.size(); ++i)  // relative: the clamped row's dv is of order 1e12
      EXPECT_LT(max_diff(got[i], ref[i]) / ref[i].abs().max().item<double>(), 1e-12) << tag << " input " << i;
  }
  // Neither XSA nor a gate: the input itself.
  auto y = torch::randn({1, 2, 2, 3}, kF64);
  EXPECT_TRUE(K::xsa_gate(y, torch::randn({1, 2, 1, 3}, kF64), Tensor(), false, true).is_same(y));
}

// Central differences on the Function's backward (the formulas the CUDA kernel implements).
TEST(KernelsXsaGate, FunctionGradientsEqualFiniteDifferences) {
  torch::manual_seed(7);
  auto y = torch::randn({1, 2, 4, 3}, kF64).requires_grad_(), v = torch::randn({1, 2, 1, 3}, kF64).requires_grad_();
  auto gate = torch::rand({1, 2, 4}, kF64).requires_grad_();
  auto proj = torch::randn({1, 2, 4, 3}, kF64);
  auto g = grads_of(K::function::xsa_gate(y, v, gate, true), proj, {y, v, gate});
  auto f = [&] {
    torch::NoGradGuard ng;
    return (K::function::xsa_gate(y, v, gate, true) * proj).sum().item<double>();
  };
  EXPECT_LT(max_diff(g[0], numeric_grad(f, y.detach())), 1e-7);
  EXPECT_LT(max_diff(g[1], numeric_grad(f, v.detach())), 1e-7);
  EXPECT_LT(max_diff(g[2], numeric_grad(f, gate.detach())), 1e-7);
}

TEST(Kernels, NotAppliedOnTheCpu) {
  EXPECT_FALSE(K::applies(torch::zeros({2}, torch::kBFloat16)));
  EXPECT_FALSE(K::applies(torch::zeros({2})));
}

}  // namespace
}  // namespace pgolf
