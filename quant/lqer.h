// LQER, low-rank quantisation-error reconstruction (spec posttrain §5): the GPTQ tensors with the largest
// absolute ‖E‖_F, E = W − Q·s, also store a rank-r factorisation E ≈ A·B (thin SVD, A = U_r Σ_r, B = V_rᵀ):
//   asymmetric (B.numel() % group == 0): A 2-bit [−2, 1] with one fp16 scale max|A|/1.5   -> .lqA_a, .lqAs_a
//                                        B 4-bit [−8, 7], fp16 scale max|g|/7.5 per group -> .lqB_a, .lqBs_a
//   symmetric fallback: A and B int-`factor_bits` with one fp16 scale per row              -> .lqA, .lqAs, .lqB, .lqBs
// Codes are int8 tensors (no bit packing: the entropy coder absorbs it). Rebuilt W' = Q·s + (qA·sA)(qB·sB).
#pragma once

#include "framework/artifact.h"

namespace pgolf::quant {

struct LqerOptions {
  int64_t top_k = 0;        // tensors that get factors (0 = LQER off)
  int64_t rank = 4;
  int64_t group = 64;       // B's asymmetric group size
  int factor_bits = 4;      // the symmetric fallback's bits
  bool asymmetric = true;   // false: always the symmetric form
};
Schema lqer_schema();
LqerOptions lqer_options(const Config& c);

// Factors of the error e (rows, cols, fp32) as stored tensors named after `param`, and the meta entry
// ({"rank", "scheme": "asym" | "sym", ...}) that the parameter's meta keeps under "lqer".
std::pair<NamedTensors, Json> lqer_encode(const std::string& param, const torch::Tensor& e, const LqerOptions& o);
// The stored names and dtypes lqer_encode made for `param` under meta `m`.
std::vector<std::string> lqer_tensor_names(const std::string& param, const Json& m);
torch::ScalarType lqer_tensor_dtype(const std::string& stored_name);
// A·B in fp32 (rows, cols) from the stored factors (in lqer_tensor_names order).
torch::Tensor lqer_decode(const std::string& param, const Json& m, const NamedTensors& factors);

// Packing pieces, exposed for the spec's vectors (§11.2, §11.3).
// A: s = fp16(max|A|/1.5), q = clamp(round(A/s), −2, 1).
std::pair<torch::Tensor, torch::Tensor> pack_a_asym(const torch::Tensor& a);
// B flattened row-major in groups of g: s_g = fp16(max|group|/7.5), q = clamp(round(B/s_g), −8, 7).
std::pair<torch::Tensor, torch::Tensor> pack_b_asym(const torch::Tensor& b, int64_t group);

}  // namespace pgolf::quant
