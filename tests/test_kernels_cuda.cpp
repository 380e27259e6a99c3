// The fused CUDA kernels (kernels/*.cu) against their ATen compositions on the GPU: random inputs of the
// seeds' shapes (dim 512, 8 heads, 4 kv heads, d_h 64, 16 RoPE dims, vocab 8192, T 2048) and odd ones (the
// scalar, unvectorised paths), forward and every input's gradient. The oracle is the composition in fp32
// on the same bf16-rounded inputs; errors are relative to the oracle's largest magnitude, within bf16
// bounds. The whole forward + backward of every op runs with host synchronisation made an error.
// Compiled only in CUDA builds; skipped without a GPU.
#ifdef PGOLF_KERNELS_CUDA
#include <gtest/gtest.h>

#include <c10/cuda/CUDAFunctions.h>

#include <iostream>

#include "kernels/ops.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

using torch::Tensor;
namespace K = kernels;

#define SKIP_WITHOUT_GPU \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

const auto kBf = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
const auto kF32 = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);

struct NoSync {  // any host sync inside throws
  NoSync() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR); }
  ~NoSync() { c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED); }
};

void check(const std::string& what, const Tensor& got, const Tensor& want, double tol) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const auto g = got.detach().to(torch::kFloat64), w = want.detach().to(torch::kFloat64);
  ASSERT_TRUE(torch::isfinite(g).all().item<bool>()) << what << ": non-finite values";
  const double scale = std::max(w.abs().max().item<double>(), 1e-30);
  const double err = (g - w).abs().max().item<double>() / scale;
  std::cout << "[kernels] " << what << ": max rel err " << err << " (tol " << tol << ")\n";
  EXPECT_LT(err, tol) << what;
}

Tensor leaf(const Tensor& t) { return t.detach().clone().requires_grad_(); }
Tensor f32_leaf(const Tensor& t) { return t.detach().to(torch::kFloat32).clone().requires_grad_(); }

std::pair<Tensor, Tensor> rope_tables(int64_t T, int64_t R) {
  auto inv = torch::pow(10000.0, -torch::arange(0, R, 2, kF32) / static_cast<double>(R));
  auto f = torch::outer(torch::arange(T, kF32), inv);
  return {f.cos(), f.sin()};
}

TEST(KernelsCuda, SoftcapCrossEntropy) {
  SKIP_WITHOUT_GPU;
  struct Shape { int64_t N, D, V, chunk; };
  for (auto s : {Shape{2048, 512, 8192, 8192}, Shape{1027, 512, 8192, 256}, Shape{37, 24, 1000, 16}, Shape{33, 40, 999, 8}}) {
    torch::manual_seed(s.N);
    const std::string tag = "ce N" + std::to_string(s.N) + " D" + std::to_string(s.D) + " V" + std::to_string(s.V);
    auto h = leaf(torch::randn({s.N, s.D}, kBf)), w = leaf(torch::randn({s.V, s.D}, kF32) * 0.05);
    auto y = torch::randint(0, s.V, {s.N}, torch::TensorOptions().dtype(torch::kLong).device(torch::kCUDA));
    Tensor loss;
    {
      NoSync guard;
      loss = K::function::softcap_ce_mean(h, w, y, 30.0, s.chunk);
      (loss * 0.5).backward();
    }
    auto h32 = f32_leaf(h), w32 = leaf(w);
    auto ref = K::compose::softcap_ce(h32, w32, y, 30.0, true);
    (ref * 0.5).backward();
    check(tag + " loss", loss, ref, 2e-3);
    check(tag + " dh", h.grad(), h32.grad(), 2e-2);
    check(tag + " dw", w.grad(), w32.grad(), 2e-2);
    torch::NoGradGuard ng;
    check(tag + " token nll", K::function::softcap_ce_tokens_nograd(h, w, y, 30.0, s.chunk),
          K::compose::softcap_ce(h32, w32, y, 30.0, false), 5e-3);
  }
}

TEST(KernelsCuda, NormRopeGain) {
  SKIP_WITHOUT_GPU;
  struct Shape { int64_t B, T, H, D, R; bool gain, norm; };
  // Register path: the seeds' q and k, a warp's last row group partly past the end with H = 3 (37·3 rows, 4 rows
  // per warp), d 128, d 32 fully rotated; shared-memory path: d 24 (24/8 not a power of two), d 20 (scalar),
  // d 64 with R/2 = 4 < 8 channels per lane.
  for (auto s : {Shape{2, 2048, 8, 64, 16, true, true}, Shape{2, 2048, 4, 64, 16, false, true}, Shape{1, 37, 3, 64, 16, true, true},
                 Shape{1, 100, 2, 128, 32, true, true}, Shape{3, 37, 5, 24, 8, true, true}, Shape{2, 19, 3, 20, 6, true, true},
                 Shape{1, 33, 2, 32, 32, true, false}, Shape{1, 2048, 8, 64, 64, true, true}, Shape{1, 50, 3, 64, 8, true, true}}) {
    torch::manual_seed(s.T + s.D);
    const std::string tag = "norm_rope B" + std::to_string(s.B) + " T" + std::to_string(s.T) + " H" + std::to_string(s.H) +
                            " D" + std::to_string(s.D) + " R" + std::to_string(s.R) + (s.gain ? " gain" : "") +
                            (s.norm ? " norm" : "");
    auto x = leaf(torch::randn({s.B, s.T, s.H, s.D}, kBf) * 3);
    auto gain = s.gain ? leaf(torch::rand({s.H}, kF32) * 4 + 1) : Tensor();
    auto [c, sn] = rope_tables(s.T, s.R);
    auto proj = torch::randn({s.B, s.T, s.H, s.D}, kBf);
    Tensor out;
    {
      NoSync guard;
      out = K::function::norm_rope_gain(x, c, sn, gain, s.norm, 1.0);
      (out * proj).sum().backward();
    }
    auto x32 = f32_leaf(x), g32 = s.gain ? leaf(gain) : Tensor();
    auto ref = K::compose::norm_rope_gain(x32, c, sn, g32, s.norm, 1.0);
    (ref * proj.to(torch::kFloat32)).sum().backward();
    check(tag + " out", out, ref, 1e-2);
    check(tag + " dx", x.grad(), x32.grad(), 2e-2);
    if (s.gain) check(tag + " dgain", gain.grad(), g32.grad(), 1e-2);
  }
}

TEST(KernelsCuda, BlockInputRmsNormScaled) {
  SKIP_WITHOUT_GPU;
  // Register path at D 512 (16 channels per lane) and 1024 (32); shared-memory path at D 20.
  for (auto shape : {std::vector<int64_t>{2, 2048, 512}, std::vector<int64_t>{4099, 512}, std::vector<int64_t>{301, 1024},
                     std::vector<int64_t>{7, 9, 20}}) {
    torch::manual_seed(shape.back());
    const std::string tag = "rms_norm_scaled D" + std::to_string(shape.back()) + " rows " + std::to_string(shape[0]);
    auto x = leaf(torch::randn(shape, kBf) * 2);
    auto proj = torch::randn(shape, kBf);
    Tensor out;
    {
      NoSync guard;
      out = K::rms_norm_scaled(x, 0.57735, true);
      (out * proj).sum().backward();
    }
    auto x32 = f32_leaf(x);
    auto ref = K::rms_norm_scaled(x32, 0.57735, false);
    (ref * proj.to(torch::kFloat32)).sum().backward();
    check(tag + " out", out, ref, 1e-2);
    check(tag + " dx", x.grad(), x32.grad(), 2e-2);
  }
}

TEST(KernelsCuda, ResidMixAndScaleAdd) {
  SKIP_WITHOUT_GPU;
  for (auto shape : {std::vector<int64_t>{2, 2048, 512}, std::vector<int64_t>{4099, 512}, std::vector<int64_t>{37, 24},
                     std::vector<int64_t>{3, 11, 20}}) {
    torch::manual_seed(shape.back() + shape[0]);
    const int64_t D = shape.back();
    const std::string tag = " D" + std::to_string(D) + " rows " + std::to_string(torch::ones(shape).numel() / D);
    auto x = leaf(torch::randn(shape, kBf)), x0 = leaf(torch::randn(shape, kBf)), y = leaf(torch::randn(shape, kBf));
    auto mix = leaf(torch::randn({2, D}, kF32)), sc = leaf(torch::randn({D}, kF32));
    auto p1 = torch::randn(shape, kBf), p2 = torch::randn(shape, kBf);
    Tensor a, b;
    {
      NoSync guard;
      a = K::function::resid_mix(x, x0, mix);
      b = K::function::scale_add(x, sc, y);
      ((a * p1).sum() + (b * p2).sum()).backward();
    }
    auto x32 = f32_leaf(x), x032 = f32_leaf(x0), y32 = f32_leaf(y), mix32 = leaf(mix), sc32 = leaf(sc);
    auto ra = K::compose::resid_mix(x32, x032, mix32), rb = K::compose::scale_add(x32, sc32, y32);
    ((ra * p1.to(torch::kFloat32)).sum() + (rb * p2.to(torch::kFloat32)).sum()).backward();
    check("resid_mix" + tag + " out", a, ra, 1e-2);
    check("scale_add" + tag + " out", b, rb, 1e-2);
    check("resid_mix+scale_add" + tag + " dx", x.grad(), x32.grad(), 2e-2);
    check("resid_mix" + tag + " dx0", x0.grad(), x032.grad(), 1e-2);
    check("resid_mix" + tag + " dmix", mix.grad(), mix32.grad(), 1e-2);
    check("scale_add" + tag + " ds", sc.grad(), sc32.grad(), 1e-2);
    check("scale_add" + tag + " dy", y.grad(), y32.grad(), 1e-2);
  }
}

// The residual op + norm pair (kernels::mix_norm, scale_add_norm) against resid_mix / scale_add and the
// scaled RMSNorm composed in fp32; with and without a gradient on `out` itself (a block's last layer feeds
// only the norm), at every D the kernel takes and a shape it falls back on.
TEST(KernelsCuda, MixNormAndScaleAddNorm) {
  SKIP_WITHOUT_GPU;
  for (auto shape : {std::vector<int64_t>{2, 2048, 512}, std::vector<int64_t>{4099, 512}, std::vector<int64_t>{37, 1024},
                     std::vector<int64_t>{9, 256}, std::vector<int64_t>{5, 768}, std::vector<int64_t>{3, 40}})
    for (bool out_used : {true, false}) {
      torch::manual_seed(shape.back() + shape[0] + out_used);
      const int64_t D = shape.back();
      const double factor = 0.577;
      const std::string tag = " D" + std::to_string(D) + " rows " + std::to_string(torch::ones(shape).numel() / D) +
                              (out_used ? "" : " (n only)");
      auto x = leaf(torch::randn(shape, kBf)), x0 = leaf(torch::randn(shape, kBf)), y = leaf(torch::randn(shape, kBf));
      auto mix = leaf(torch::randn({2, D}, kF32)), sc = leaf(torch::randn({D}, kF32));
      std::vector<Tensor> p;
      for (int i = 0; i < 4; ++i) p.push_back(torch::randn(shape, kF32));
      auto loss = [&](const std::pair<Tensor, Tensor>& a, const std::pair<Tensor, Tensor>& b) {
        auto l = (a.second.to(torch::kFloat32) * p[1]).sum() + (b.second.to(torch::kFloat32) * p[3]).sum();
        if (out_used) l = l + (a.first.to(torch::kFloat32) * p[0]).sum() + (b.first.to(torch::kFloat32) * p[2]).sum();
        return l;
      };
      std::pair<Tensor, Tensor> a, b;
      {
        NoSync guard;
        a = K::mix_norm(x, x0, mix, factor, /*fused=*/true);
        b = K::scale_add_norm(x, sc, y, factor, /*fused=*/true);
        loss(a, b).backward();
      }
      auto x32 = f32_leaf(x), x032 = f32_leaf(x0), y32 = f32_leaf(y), mix32 = leaf(mix), sc32 = leaf(sc);
      auto norm32 = [&](const Tensor& t) { return at::rms_norm(t, {D}, std::nullopt, std::nullopt) * factor; };
      auto ra_out = K::compose::resid_mix(x32, x032, mix32), rb_out = K::compose::scale_add(x32, sc32, y32);
      loss({ra_out, norm32(ra_out)}, {rb_out, norm32(rb_out)}).backward();
      check("mix_norm" + tag + " out", a.first, ra_out, 1e-2);
      check("mix_norm" + tag + " n", a.second, norm32(ra_out), 1e-2);
      check("scale_add_norm" + tag + " out", b.first, rb_out, 1e-2);
      check("scale_add_norm" + tag + " n", b.second, norm32(rb_out), 1e-2);
      check("mix_norm+scale_add_norm" + tag + " dx", x.grad(), x32.grad(), 2e-2);
      check("mix_norm" + tag + " dx0", x0.grad(), x032.grad(), 2e-2);
      check("mix_norm" + tag + " dmix", mix.grad(), mix32.grad(), 2e-2);
      check("scale_add_norm" + tag + " ds", sc.grad(), sc32.grad(), 2e-2);
      check("scale_add_norm" + tag + " dy", y.grad(), y32.grad(), 2e-2);
    }
}

TEST(KernelsCuda, LeakyRelu2) {
  SKIP_WITHOUT_GPU;
  for (auto shape : {std::vector<int64_t>{4096, 2048}, std::vector<int64_t>{7, 143}}) {
    torch::manual_seed(shape[1]);
    const std::string tag = "leaky_relu2 " + std::to_string(shape[0]) + "x" + std::to_string(shape[1]);
    auto z = leaf(torch::randn(shape, kBf) * 2);
    auto proj = torch::randn(shape, kBf);
    Tensor out;
    {
      NoSync guard;
      out = K::function::leaky_relu2(z, 0.5);
      (out * proj).sum().backward();
    }
    auto z32 = f32_leaf(z);
    auto ref = K::compose::leaky_relu2(z32, 0.5);
    (ref * proj.to(torch::kFloat32)).sum().backward();
    check(tag + " out", out, ref, 1e-2);
    check(tag + " dz", z.grad(), z32.grad(), 1e-2);
  }
}

// XSA + gate: the seeds' shape (8 heads on 4 kv heads, d_h 64: the vector path, 8 lanes a row), one kv head
// under 4 query heads at d_h 128 (16 lanes), and d_h 20 (the scalar path); with and without XSA and gate.
TEST(KernelsCuda, XsaGate) {
  SKIP_WITHOUT_GPU;
  struct Shape { int64_t B, T, H, Hkv, d; };
  for (auto sh : {Shape{2, 2048, 8, 4, 64}, Shape{2, 5, 4, 1, 128}, Shape{3, 7, 6, 3, 20}})
    for (int variant = 0; variant < 3; ++variant) {
      const bool xsa = variant != 2, gated = variant != 1;
      torch::manual_seed(sh.d + variant);
      const std::string tag = std::string("xsa_gate") + (xsa ? " xsa" : "") + (gated ? " gate" : "") + " H" +
                              std::to_string(sh.H) + "/" + std::to_string(sh.Hkv) + " d" + std::to_string(sh.d) + " T" +
                              std::to_string(sh.T);
      auto y = leaf(torch::randn({sh.B, sh.T, sh.H, sh.d}, kBf)), v = leaf(torch::randn({sh.B, sh.T, sh.Hkv, sh.d}, kBf));
      auto gate = gated ? leaf(torch::rand({sh.B, sh.T, sh.H}, kBf)) : Tensor();
      auto proj = torch::randn({sh.B, sh.T, sh.H, sh.d}, kBf);
      Tensor out;
      {
        NoSync guard;
        out = K::function::xsa_gate(y, v, gate, xsa);
        (out * proj).sum().backward();
      }
      auto y32 = f32_leaf(y), v32 = f32_leaf(v), g32 = gated ? f32_leaf(gate) : Tensor();
      auto ref = K::compose::xsa_gate(y32, v32, g32, xsa);
      (ref * proj.to(torch::kFloat32)).sum().backward();
      check(tag + " out", out, ref, 1e-2);
      check(tag + " dy", y.grad(), y32.grad(), 2e-2);
      if (xsa) check(tag + " dv", v.grad(), v32.grad(), 2e-2);
      if (gated) check(tag + " dgate", gate.grad(), g32.grad(), 1e-2);
    }
}


TEST(KernelsCuda, QkvHeads) {
  SKIP_WITHOUT_GPU;
  struct Shape { int64_t B, T, H, Hkv, d, Z, R; bool norm; };
  for (auto sh : {Shape{1, 2048, 8, 4, 64, 8, 16, true}, Shape{2, 7, 4, 2, 24, 0, 8, true},
                  Shape{2, 5, 2, 2, 32, 3, 0, false}}) {
    torch::manual_seed(sh.d + sh.Z);
    const int64_t D = sh.H * sh.d, W = D + 2 * sh.Hkv * sh.d + sh.Z;
    const std::string tag = "qkv_heads H" + std::to_string(sh.H) + "/" + std::to_string(sh.Hkv) + " d" +
                            std::to_string(sh.d) + " Z" + std::to_string(sh.Z) + " R" + std::to_string(sh.R) +
                            (sh.norm ? "" : " no norm");
    auto x = leaf(torch::randn({sh.B, sh.T, D}, kBf)), w = leaf(torch::randn({W, D}, kBf) * 0.05);
    auto gain = f32_leaf(torch::rand({sh.H}, kF32) + 0.5);
    Tensor cos, sin;
    if (sh.R) std::tie(cos, sin) = rope_tables(sh.T, sh.R);
    std::vector<Tensor> proj;  // random cotangents of q, k, v, z
    K::QkvHeads out;
    {
      NoSync guard;
      out = K::qkv_heads(x, w, sh.H, sh.Hkv, cos, sin, gain, sh.norm, /*fused=*/true);
      for (const auto& t : {out.q, out.k, out.v, out.z}) proj.push_back(torch::randn(t.sizes(), kF32));
      auto loss = (out.q.to(torch::kFloat32) * proj[0]).sum() + (out.k.to(torch::kFloat32) * proj[1]).sum() +
                  (out.v.to(torch::kFloat32) * proj[2]).sum() + (out.z.to(torch::kFloat32) * proj[3]).sum();
      loss.backward();
    }
    auto x32 = f32_leaf(x), w32 = f32_leaf(w), g32 = f32_leaf(gain);
    const auto ref = K::compose::qkv_heads(x32, w32, sh.H, sh.Hkv, cos, sin, g32, sh.norm);
    ((ref.q * proj[0]).sum() + (ref.k * proj[1]).sum() + (ref.v * proj[2]).sum() + (ref.z * proj[3]).sum()).backward();
    check(tag + " q", out.q, ref.q, 1e-2);
    check(tag + " k", out.k, ref.k, 1e-2);
    check(tag + " v", out.v, ref.v, 1e-2);
    if (sh.Z) check(tag + " z", out.z, ref.z, 1e-2);
    check(tag + " dx", x.grad(), x32.grad(), 2e-2);
    check(tag + " dw", w.grad(), w32.grad(), 2e-2);
    check(tag + " dgain", gain.grad(), g32.grad(), 1e-2);
  }
}

// The attention's joint q/k/v(+gate) GEMM (models/gqa_attention.cpp, on CUDA with no tap installed) against
// its separate linears (taken once a tap is installed on c_q, c_k, c_v), for each gate form, dense and varlen,
// forward and the gradients of the input and of every parameter.
struct InputRecorder : Tap {
  int observed = 0;
  void observe(const TapSite&, const torch::Tensor&) override { ++observed; }
};

TEST(KernelsCuda, JointQkvProjectionMatchesTheSeparateLinears) {
  SKIP_WITHOUT_GPU;
  const int64_t B = 2, T = 256, D = 512;
  const Json gates[] = {Json{{"name", "sparse_attn_gate"}, {"window", 12}, {"scale", 0.5}},
                        Json{{"name", "dense_attn_gate"}}, Json{{"name", "attn_out_gate"}}, Json{{"name", "none"}}};
  for (const auto& gate : gates)
    for (bool varlen : {false, true}) {
      torch::manual_seed(7);
      const std::string tag = "joint qkv " + gate["name"].get<std::string>() + (varlen ? " varlen" : " dense");
      auto ctx = testing::layer_context(D, 8, 4);
      auto attn = AttentionRegistry::get().build(
          testing::component("attention", Json{{"name", "gqa"}, {"rope_dims", 16}, {"qk_gain_init", 5.0},
                                               {"xsa_layers", Json::array({0})}, {"gate", gate}}),
          ctx);
      attn->to(torch::kCUDA);
      testing::perturb(*attn, 0.05);
      auto x = leaf(torch::randn({B, T, D}, kBf)), x_in = leaf(torch::randn({B, T, D}, kBf));
      auto v_extra = torch::randn({B, T, ctx.kv_dim()}, kBf) * 0.1;
      Segments seg;
      if (varlen)  // documents of 100, 156, 256 tokens
        seg = Segments{torch::tensor({0, 100, 256, 512}, torch::TensorOptions().dtype(torch::kInt32).device(torch::kCUDA)), 256};
      auto proj = torch::randn({B, T, D}, kBf);
      auto run = [&](std::map<std::string, Tensor>& grads) {
        attn->zero_grad();
        auto xs = leaf(x), xis = leaf(x_in);
        auto out = attn->forward(AttentionInput{xs, xis, v_extra}, seg);
        (out.to(torch::kFloat32) * proj.to(torch::kFloat32)).sum().backward();
        grads["x"] = xs.grad();
        grads["x_in"] = xis.grad();
        for (const auto& p : attn->named_parameters()) grads[p.key()] = p.value().grad().clone();
        return out.detach();
      };
      std::map<std::string, Tensor> joint_grads, separate_grads;
      const Tensor joint = run(joint_grads);
      TapSet taps;
      auto recorder = std::make_shared<InputRecorder>();
      for (const auto& m : attn->named_modules())
        if (auto* t = dynamic_cast<Tappable*>(m.value().get())) t->bind_tap(t->site_at(m.key()), &taps);
      taps.add(recorder);
      const Tensor separate = run(separate_grads);
      EXPECT_EQ(recorder->observed, 4) << tag << ": the tapped forward runs c_q, c_k, c_v, proj on their own";
      check(tag + " out", joint, separate, 2e-2);
      for (const auto& [name, g] : separate_grads) {
        if (!g.defined()) continue;
        check(tag + " d" + name, joint_grads[name], g, 3e-2);
      }
    }
}

}  // namespace
}  // namespace pgolf
#endif  // PGOLF_KERNELS_CUDA
