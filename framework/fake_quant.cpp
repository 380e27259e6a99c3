#include "framework/fake_quant.h"

#include <stdexcept>
#include <string>

namespace pgolf {

torch::Tensor fake_quantize_rows(const torch::Tensor& w, int bits) {
  if (w.dim() != 2) throw std::invalid_argument("fake_quantize_rows: expected a 2-D weight, got " + std::to_string(w.dim()) + "-D");
  if (bits < 2 || bits > 16) throw std::invalid_argument("fake_quantize_rows: bits must be in [2, 16], got " + std::to_string(bits));
  const double qmax = static_cast<double>((1 << (bits - 1)) - 1);
  const torch::Tensor w32 = w.to(torch::kFloat32);
  torch::Tensor q;
  {
    torch::NoGradGuard g;  // the rounding path is not differentiated: its difference is added detached
    const torch::Tensor s = (w32.abs().amax(1, /*keepdim=*/true) / qmax).clamp_min(1.0 / qmax);
    q = torch::clamp(torch::round(w32 / s), -qmax - 1.0, qmax) * s;
  }
  return (w32 + (q - w32.detach())).to(w.scalar_type());
}

}  // namespace pgolf
