// (f) XSA + the per-head attention gate (kernels/ops.h): the Function saves y, v and the gate (the composition
// keeps v̂, the dot products, z and the gated product) and its backward is one kernel.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr double kNormFloor = 1e-12;

// v̂ = v / max(‖v‖, 1e-12), (B, T, Hkv, d) -> (B, T, Hkv, 1, d): one unit value under its group of query heads.
Tensor unit_value(const Tensor& v) {
  return (v / torch::linalg_vector_norm(v, 2, {-1}, /*keepdim=*/true).clamp_min(kNormFloor)).unsqueeze(3);
}

// G: the query heads that read one kv head (1 without XSA: every head stands alone).
int64_t group_size(const Tensor& y, const Tensor& v, bool xsa) { return xsa ? y.size(2) / v.size(2) : 1; }

// y and the gate viewed per kv head: (B, T, H/G, G, d) and (B, T, H/G, G, 1).
struct Grouped {
  Grouped(const Tensor& y, const Tensor& gate, int64_t G) {
    const int64_t B = y.size(0), T = y.size(1), H = y.size(2), d = y.size(3);
    yg = y.reshape({B, T, H / G, G, d});
    if (gate.defined()) g = gate.reshape({B, T, H / G, G, 1});
  }
  Tensor yg, g;
};

struct XsaGate : torch::autograd::Function<XsaGate> {
  // An absent v or gate arrives as an empty tensor (apply takes no undefined inputs) and is undefined here.
  static Tensor forward(AutogradContext* ctx, const Tensor& y, const Tensor& v_in, const Tensor& gate_in, bool xsa) {
    const Tensor v = v_in.numel() ? v_in : Tensor(), gate = gate_in.numel() ? gate_in : Tensor();
    ctx->save_for_backward({y, v_in, gate_in});
    ctx->saved_data["xsa"] = xsa;
#ifdef PGOLF_KERNELS_CUDA
    if (applies(y)) {
      const int64_t G = group_size(y, v, xsa);
      auto out = torch::empty_like(y);
      cuda::xsa_gate_fwd(y.data_ptr(), xsa ? v.data_ptr() : nullptr, gate.defined() ? gate.data_ptr() : nullptr,
                         out.data_ptr(), y.numel() / (y.size(-1) * G), G, y.size(-1), xsa, detail::stream());
      return out;
    }
#endif
    return compose::xsa_gate(y, v, gate, xsa);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &y = s[0], v = s[1].numel() ? s[1] : Tensor(), gate = s[2].numel() ? s[2] : Tensor();
    const bool xsa = ctx->saved_data["xsa"].toBool();
    const auto dout = grads[0].contiguous();
    const int64_t G = group_size(y, v, xsa);
#ifdef PGOLF_KERNELS_CUDA
    if (applies(y)) {
      auto dy = torch::empty_like(y);
      Tensor dv = xsa ? torch::empty_like(v) : Tensor(), dgate = gate.defined() ? torch::empty_like(gate) : Tensor();
      cuda::xsa_gate_bwd(dout.data_ptr(), y.data_ptr(), xsa ? v.data_ptr() : nullptr,
                         gate.defined() ? gate.data_ptr() : nullptr, dy.data_ptr(), xsa ? dv.data_ptr() : nullptr,
                         gate.defined() ? dgate.data_ptr() : nullptr, y.numel() / (y.size(-1) * G), G, y.size(-1), xsa,
                         detail::stream());
      return {dy, dv, dgate, Tensor()};
    }
#endif
    // The kernel's formulas (cuda_ops.h), in ATen: z = y − a v̂, dz = g dO, b = dz·v̂.
    const Grouped p(y, gate, G);
    auto dz = dout.reshape(p.yg.sizes());
    Tensor vn, a, dgate;
    if (xsa) {
      vn = unit_value(v);
      a = (p.yg * vn).sum(-1, true);
    }
    if (gate.defined()) {
      dgate = (dz * (xsa ? p.yg - a * vn : p.yg)).sum(-1).reshape(gate.sizes());
      dz = dz * p.g;
    }
    if (!xsa) return {dz.reshape(y.sizes()), Tensor(), dgate, Tensor()};
    const auto b = (dz * vn).sum(-1, true);
    const auto dy = dz - b * vn;
    auto dvn = -(a * dz + b * p.yg).sum(3);  // (B, T, Hkv, d)
    const auto norm = torch::linalg_vector_norm(v, 2, {-1}, true);
    const auto vn1 = vn.squeeze(3);
    const auto dv = torch::where(norm > kNormFloor, dvn - (dvn * vn1).sum(-1, true) * vn1, dvn) / norm.clamp_min(kNormFloor);
    return {dy.reshape(y.sizes()), dv, dgate, Tensor()};
  }
};

// The kernel reads y, v and the gate densely in y's dtype, up to kMaxXsaDim channels a head.
bool fits(const Tensor& y, const Tensor& v, const Tensor& gate, bool xsa) {
#ifdef PGOLF_KERNELS_CUDA
  if (!applies(y) || y.size(-1) > cuda::kMaxXsaDim) return false;
#else
  if (!applies(y)) return false;
#endif
  return (!xsa || v.scalar_type() == y.scalar_type()) && (!gate.defined() || gate.scalar_type() == y.scalar_type());
}

}  // namespace

namespace compose {
Tensor exclusive_self_attention(const Tensor& y, const Tensor& v) {
  const int64_t B = y.size(0), T = y.size(1), H = y.size(2), d_h = y.size(3), Hkv = v.size(2);
  auto yg = y.reshape({B, T, Hkv, H / Hkv, d_h});  // query heads grouped under the kv head they read
  auto vn = unit_value(v);
  return (yg - (yg * vn).sum(-1, /*keepdim=*/true) * vn).reshape({B, T, H, d_h});
}

Tensor xsa_gate(const Tensor& y, const Tensor& v, const Tensor& gate, bool xsa) {
  auto z = xsa ? exclusive_self_attention(y, v) : y;
  return gate.defined() ? z * gate.unsqueeze(-1) : z;
}
}  // namespace compose

namespace function {
Tensor xsa_gate(const Tensor& y, const Tensor& v, const Tensor& gate, bool xsa) {
  auto dense = [&](const Tensor& t) { return t.defined() ? t.contiguous() : torch::empty({0}, y.options()); };
  return XsaGate::apply(y.contiguous(), dense(v), dense(gate), xsa);
}
}  // namespace function

Tensor xsa_gate(const Tensor& y, const Tensor& v, const Tensor& gate, bool xsa, bool fused) {
  if (!xsa && !gate.defined()) return y;
  if (fused && fits(y, v, gate, xsa)) return function::xsa_gate(y, v, gate, xsa);
  return compose::xsa_gate(y, v, gate, xsa);
}

}  // namespace pgolf::kernels
