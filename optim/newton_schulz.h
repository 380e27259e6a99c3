// Newton–Schulz orthogonalisation (spec §4.2): the approximate polar factor U·Vᵀ of G = U·Σ·Vᵀ that Muon
// applies. Each step maps every singular value σ to aσ + bσ³ + cσ⁵, leaving the singular vectors alone.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace pgolf {

struct NsCoefficients {
  double a, b, c;
};

// "quintic": (3.4445, −4.7750, 2.0315) at every step (the challenge baseline, #1755, #1693, #461).
// "polar_express": five tuples, one per step (#1855, #1938). Our reading of "steps beyond 5 reuse the
// list": later steps repeat the last tuple, the one built to hold σ near 1 (restarting at the first
// tuple would push converged values back up to 1.55). Any other name is a ConfigError.
std::vector<NsCoefficients> ns_coefficients(const std::string& name);

// The coefficients of step `i` (0-based): list[i], or the last tuple once i runs past the list.
const NsCoefficients& ns_step_coefficients(const std::vector<NsCoefficients>& list, int64_t i);

// X = G/(‖G‖_F + 1e-7) per matrix, then `steps` iterations of A = XXᵀ, B = bA + cA², X ← aX + BX on the
// wide orientation (a tall matrix is transposed in and back out). G is (rows, cols) or batched
// (B, rows, cols), each slice its own matrix. Computed and returned in `dtype` (bf16 as in the spec).
torch::Tensor zeropower(const torch::Tensor& G, int64_t steps, const std::vector<NsCoefficients>& coefficients,
                        torch::ScalarType dtype = torch::kBFloat16);

}  // namespace pgolf
