#include "optim/newton_schulz.h"

#include "framework/config.h"

namespace pgolf {

std::vector<NsCoefficients> ns_coefficients(const std::string& name) {
  if (name == "quintic") return {{3.4445, -4.7750, 2.0315}};
  if (name == "polar_express")
    return {{8.156554524902461, -22.48329292557795, 15.878769915207462},
            {4.042929935166739, -2.808917465908714, 0.5000178451051316},
            {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
            {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
            {2.3465413258596377, -1.7097828382687081, 0.42323551169305323}};
  throw ConfigError("Newton-Schulz coefficients '" + name + "': unknown; expected quintic or polar_express");
}

const NsCoefficients& ns_step_coefficients(const std::vector<NsCoefficients>& list, int64_t i) {
  if (list.empty()) throw std::runtime_error("Newton-Schulz: empty coefficient list");
  return list[static_cast<size_t>(std::min<int64_t>(i, static_cast<int64_t>(list.size()) - 1))];
}

torch::Tensor zeropower(const torch::Tensor& G, int64_t steps, const std::vector<NsCoefficients>& coefficients,
                        torch::ScalarType dtype) {
  if (G.dim() != 2 && G.dim() != 3)
    throw std::runtime_error("Newton-Schulz: expected a matrix (rows, cols) or a batch (B, rows, cols), got " +
                             std::to_string(G.dim()) + " dimensions");
  torch::Tensor X = G.to(dtype);
  // The norm is taken in the compute dtype, as the reference does with its bf16 copy.
  X = X / (torch::linalg_vector_norm(X, 2, {-2, -1}, /*keepdim=*/true) + 1e-7);
  const bool transposed = G.size(-2) > G.size(-1);
  if (transposed) X = X.mT();  // XXᵀ is then the smaller Gram matrix
  // bA + cA² and aX + BX as GEMMs with a scaled accumulator (addmm/baddbmm): the sums happen in the GEMM's
  // fp32 epilogue, so each step is three kernels instead of seven.
  const bool batched = X.dim() == 3;
  for (int64_t i = 0; i < steps; ++i) {
    const NsCoefficients& k = ns_step_coefficients(coefficients, i);
    const torch::Tensor A = torch::matmul(X, X.mT());
    const torch::Tensor B = batched ? torch::baddbmm(A, A, A, k.b, k.c) : torch::addmm(A, A, A, k.b, k.c);
    X = batched ? torch::baddbmm(X, B, X, k.a, 1.0) : torch::addmm(X, B, X, k.a, 1.0);
  }
  return transposed ? X.mT() : X;
}

}  // namespace pgolf
