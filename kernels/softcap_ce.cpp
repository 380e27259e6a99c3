// (a) The softcapped cross-entropy of the tied head (kernels/ops.h), chunked over tokens. Per chunk of n
// tokens: z = h_c·wᵀ (one GEMM, n × V in the compute dtype), then the row kernel turns z into the nll and,
// when a gradient is wanted, overwrites z with ∂loss/∂z; ∂h_c = ∂z·w and ∂w += ∂zᵀ·h_c are two more GEMMs.
// So the logits exist one chunk at a time and are made once: the backward only scales the saved ∂h, ∂w
// by the incoming gradient.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {
namespace {

using torch::Tensor;

// Rows of z (n, V) → nll (n); with grad, z ← grad_scale · ∂nll/∂z. The ATen form of the CUDA row kernel.
void ce_rows(Tensor& z, const Tensor& y, Tensor nll, double C, bool grad, double grad_scale) {
#ifdef PGOLF_KERNELS_CUDA
  if (applies(z)) {
    cuda::ce_rows(z.data_ptr(), y.data_ptr<int64_t>(), nll.data_ptr<float>(), z.size(0), z.size(1),
                  static_cast<float>(C), grad, static_cast<float>(grad_scale), detail::stream());
    return;
  }
#endif
  auto th = torch::tanh(z.to(detail::acc_dtype(z.scalar_type())) / C);
  auto l = th * C;
  auto lse = l.logsumexp(1);
  nll.copy_(lse - l.gather(1, y.unsqueeze(1)).squeeze(1));
  if (!grad) return;
  auto p = (l - lse.unsqueeze(1)).exp();
  p.scatter_add_(1, y.unsqueeze(1), torch::full({y.size(0), 1}, -1.0, p.options()));
  z.copy_(p * (1 - th * th) * grad_scale);
}

struct Chunked {
  Tensor nll, dh, dw;  // dh, dw: ∂(mean nll)/∂h, ∂w when grad
};

Chunked ce_chunks(const Tensor& h_in, const Tensor& w, const Tensor& y_in, double C, int64_t chunk, bool grad) {
  TORCH_CHECK(h_in.dim() == 2 && w.dim() == 2 && h_in.size(1) == w.size(1) && y_in.numel() == h_in.size(0),
              "softcap_ce: h (N, D), w (V, D), y (N) expected");
  const auto h = h_in.contiguous();
  const auto y = y_in.reshape({-1}).to(torch::kLong).contiguous();
  const auto wc = w.to(h.scalar_type()).contiguous();  // the compute-dtype weight, cast once per call
  const int64_t N = h.size(0);
  Chunked r;
  r.nll = torch::empty({N}, h.options().dtype(detail::acc_dtype(h.scalar_type())));
  if (grad) {
    r.dh = torch::empty_like(h);
    r.dw = torch::zeros(w.sizes(), w.options().dtype(detail::acc_dtype(w.scalar_type())));
  }
  const double grad_scale = 1.0 / static_cast<double>(std::max<int64_t>(N, 1));
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t n = std::min(chunk, N - r0);
    const auto hc = h.narrow(0, r0, n);
    auto z = at::mm(hc, wc.t());
    ce_rows(z, y.narrow(0, r0, n), r.nll.narrow(0, r0, n), C, grad, grad_scale);
    if (!grad) continue;
    auto dh_c = r.dh.narrow(0, r0, n);
    at::mm_out(dh_c, z, wc);
    r.dw.add_(at::mm(z.t(), hc));
  }
  return r;
}

struct SoftcapCeMean : torch::autograd::Function<SoftcapCeMean> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& h, const Tensor& w, const Tensor& y,
                        double C, int64_t chunk) {
    Chunked r = ce_chunks(h, w, y, C, chunk, h.requires_grad() || w.requires_grad());
    ctx->saved_data["dh"] = r.dh;
    ctx->saved_data["dw"] = r.dw;
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
    return r.nll.sum() / static_cast<double>(std::max<int64_t>(h.size(0), 1));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto g = grads[0];
    const auto dh = ctx->saved_data["dh"].toTensor(), dw = ctx->saved_data["dw"].toTensor();
    const auto w_dtype = static_cast<torch::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    if (!dh.defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    return {dh * g.to(dh.scalar_type()), (dw * g).to(w_dtype), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

namespace compose {
Tensor softcap_ce(const Tensor& h, const Tensor& w, const Tensor& y, double softcap, bool mean) {
  namespace F = torch::nn::functional;
  auto z = F::linear(h, w.to(h.scalar_type()));
  auto l = softcap * torch::tanh(z / softcap);
  l = l.to(torch::promote_types(l.scalar_type(), torch::kFloat32));  // CE in fp32 (fp64 stays)
  if (mean) return F::cross_entropy(l, y);
  return F::cross_entropy(l, y, F::CrossEntropyFuncOptions().reduction(torch::kNone));
}
}  // namespace compose

namespace function {
Tensor softcap_ce_mean(const Tensor& h, const Tensor& w, const Tensor& y, double softcap, int64_t chunk) {
  return SoftcapCeMean::apply(h, w, y, softcap, chunk);
}
Tensor softcap_ce_tokens_nograd(const Tensor& h, const Tensor& w, const Tensor& y, double softcap, int64_t chunk) {
  torch::NoGradGuard g;
  return ce_chunks(h, w, y, softcap, chunk, false).nll;
}
}  // namespace function

Tensor softcap_ce_mean(const Tensor& h, const Tensor& w, const Tensor& y, double softcap, bool fused, int64_t chunk) {
  if (fused && applies(h)) return function::softcap_ce_mean(h, w, y, softcap, chunk);
  return compose::softcap_ce(h, w, y, softcap, true);
}

Tensor softcap_ce_tokens(const Tensor& h, const Tensor& w, const Tensor& y, double softcap, bool fused, int64_t chunk) {
  const bool grad = torch::GradMode::is_enabled() && (h.requires_grad() || w.requires_grad());
  if (fused && !grad && applies(h)) return function::softcap_ce_tokens_nograd(h, w, y, softcap, chunk);
  return compose::softcap_ce(h, w, y, softcap, false);
}

}  // namespace pgolf::kernels
