#include "quant/gptq.h"

#include <stdexcept>
#include <string>

#include "quant/quant_state.h"

namespace pgolf::quant {
namespace {

// Dead columns (H_jj = 0) get H_jj = 1 and a zero weight column; then H += damping·mean(diag H)·I.
std::pair<torch::Tensor, torch::Tensor> condition(torch::Tensor w, torch::Tensor h, double damping) {
  const torch::Tensor diag = h.diagonal(0, 1, 2);
  const torch::Tensor dead = diag == 0;
  h = h + torch::diag_embed(dead.to(h.scalar_type()));
  w = w * (~dead).to(w.scalar_type()).unsqueeze(1);
  const torch::Tensor mean = h.diagonal(0, 1, 2).mean(-1);
  const int64_t c = h.size(-1);
  h = h + (damping * mean).view({-1, 1, 1}) * torch::eye(c, h.options()).unsqueeze(0);
  return {w, h};
}

// U with H⁻¹ = UᵀU (upper Cholesky factor of the inverse).
torch::Tensor inverse_cholesky_upper(const torch::Tensor& h) {
  const auto [l, info] = at::linalg_cholesky_ex(h);
  if (info.gt(0).any().item<bool>())
    throw std::runtime_error("gptq: a Hessian is not positive definite after damping (calibration saw NaN/Inf or "
                             "too few tokens?)");
  return at::linalg_cholesky(torch::cholesky_inverse(l), /*upper=*/true);
}

// One block of columns [i1, i2): quantise column by column, spreading each error over the block's later
// columns; returns the block's scaled errors (n, rows, cnt) and writes its codes into q.
torch::Tensor quantize_block(const torch::Tensor& w, const torch::Tensor& u, const torch::Tensor& s, torch::Tensor& q,
                             int64_t i1, int64_t i2, int64_t cr) {
  using torch::indexing::Slice;
  const int64_t cnt = i2 - i1;
  torch::Tensor w1 = w.index({Slice(), Slice(), Slice(i1, i2)}).clone();
  torch::Tensor err = torch::zeros_like(w1);
  const torch::Tensor u1 = u.index({Slice(), Slice(i1, i2), Slice(i1, i2)});
  const torch::Tensor ok = s > 0, s_safe = torch::where(ok, s, torch::ones_like(s));
  for (int64_t j = 0; j < cnt; ++j) {
    const torch::Tensor col = w1.select(2, j);  // (n, rows)
    torch::Tensor qj = torch::clamp(torch::round(col / s_safe), -cr, cr);
    qj = torch::where(ok, qj, torch::zeros_like(qj));
    q.select(2, i1 + j).copy_(qj);
    const torch::Tensor e = (col - qj * s) / u1.select(1, j).select(1, j).unsqueeze(1);
    w1.index({Slice(), Slice(), Slice(j, cnt)}).sub_(e.unsqueeze(2) * u1.index({Slice(), Slice(j, j + 1), Slice(j, cnt)}));
    err.select(2, j).copy_(e);
  }
  return err;
}

}  // namespace

torch::Tensor sdclip_scales(const torch::Tensor& w, double k, int bits) {
  const double cr = static_cast<double>(clip_range(bits));
  return (k * w.std(-1, /*unbiased=*/true) / cr).clamp_min(1e-10).to(torch::kFloat16);
}

torch::Tensor gptq_codes(const torch::Tensor& w_in, const torch::Tensor& h_in, const torch::Tensor& s16,
                         const GptqOptions& o) {
  using torch::indexing::Slice;
  if (w_in.dim() != 3 || h_in.dim() != 3 || s16.dim() != 2 || h_in.size(0) != w_in.size(0) ||
      h_in.size(1) != w_in.size(2) || h_in.size(2) != w_in.size(2) || s16.size(0) != w_in.size(0) ||
      s16.size(1) != w_in.size(1))
    throw std::invalid_argument("gptq: expected w (n, rows, cols), h (n, cols, cols), scales (n, rows); got " +
                                c10::str(w_in.sizes()) + ", " + c10::str(h_in.sizes()) + ", " + c10::str(s16.sizes()));
  if (o.bits < 2 || o.bits > 8) throw std::invalid_argument("gptq: bits must be in [2, 8], got " + std::to_string(o.bits));
  const int64_t n = w_in.size(0), rows = w_in.size(1), cols = w_in.size(2), cr = clip_range(o.bits);
  auto [w, h] = condition(w_in, h_in.to(w_in.scalar_type()), o.damping);
  torch::Tensor perm;
  if (o.act_order) {
    perm = torch::argsort(h.diagonal(0, 1, 2), /*stable=*/true, /*dim=*/-1, /*descending=*/true);  // (n, cols)
    w = torch::gather(w, 2, perm.unsqueeze(1).expand({n, rows, cols}));
    h = torch::gather(torch::gather(h, 1, perm.unsqueeze(2).expand({n, cols, cols})), 2,
                      perm.unsqueeze(1).expand({n, cols, cols}));
  }
  const torch::Tensor u = inverse_cholesky_upper(h);
  const torch::Tensor s = s16.to(w.scalar_type());  // (n, rows): the fp16 values quantise
  torch::Tensor q = torch::zeros_like(w);
  for (int64_t i1 = 0; i1 < cols; i1 += o.block) {
    const int64_t i2 = std::min(i1 + o.block, cols);
    const torch::Tensor err = quantize_block(w, u, s, q, i1, i2, cr);
    if (i2 < cols)
      w.index({Slice(), Slice(), Slice(i2, cols)}).sub_(torch::bmm(err, u.index({Slice(), Slice(i1, i2), Slice(i2, cols)})));
  }
  if (o.act_order) q = torch::zeros_like(q).scatter_(2, perm.unsqueeze(1).expand({n, rows, cols}), q);
  return q.to(torch::kInt8);
}

}  // namespace pgolf::quant
