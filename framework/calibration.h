// Hessian collection for GPTQ (spec posttrain §4.1): H = Σ xᵀx in fp32 over the calibration tokens, for the
// input x of every chosen tap site, keyed by the parameter that input multiplies. It sees the model only
// through its tap sites (framework/tap.h): CastedLinears and the "head" TapPoint (the final-norm output,
// whose H is the tied embedding's). A site that fires several times per forward (recurrent layers, shared
// cores) accumulates every pass; sites fed the very same tensor (c_q, c_k, c_v) compute xᵀx once and each
// get that sum.
//   module_inputs (#1755): linear sites whose name holds a pattern and whose weight has > min_numel elements
//   block_taps (#1693, #1855, #1938): linear sites whose name ends in a bank role (attn.c_q, c_k, c_v,
//                          attn.proj, mlp.fc, mlp.proj): the attention/MLP inputs of each block
// Both also take every non-linear site that feeds a parameter (the head).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "framework/comm.h"
#include "framework/loader.h"
#include "framework/model.h"

namespace pgolf {

struct CalibrationSites {
  std::string policy = "module_inputs";  // or "block_taps"
  std::vector<std::string> patterns = {".attn.", ".mlp."};
  int64_t min_numel = 65536;
  std::vector<std::string> roles = {"attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj"};
};

// The names of the sites of `model` the policy collects at.
std::set<std::string> calibration_sites(LanguageModel& model, const CalibrationSites& policy);

// Accumulates xᵀx (fp32) per site weight while installed.
class HessianTap : public Tap {
 public:
  explicit HessianTap(std::set<std::string> sites) : sites_(std::move(sites)) {}
  void observe(const TapSite& site, const torch::Tensor& x) override;
  std::map<std::string, torch::Tensor>& sums() { return h_; }

 private:
  std::set<std::string> sites_;
  std::map<std::string, torch::Tensor> h_;
  torch::Tensor last_x_, last_xtx_;  // the last input seen and its product (held, so identity is safe)
};

struct CalibrationResult {
  std::map<std::string, torch::Tensor> hessians;  // by parameter name, summed over ranks, / total batches
  int64_t batches = 0;                            // run on this rank
};

// Runs `batches` forwards (eval mode, no grad, dense causal attention: no cu_seqlens) of next() batches on
// `device`, sums over ranks (all_reduce) and divides by the batches of all ranks. `keep_going` is asked before
// every batch after the first (with the mean batch time in ms); all ranks stop together when any says no.
CalibrationResult collect_hessians(LanguageModel& model, const std::function<Batch()>& next, int64_t batches,
                                   const CalibrationSites& policy, Communicator& comm, const torch::Device& device,
                                   const std::function<bool(double)>& keep_going = nullptr);

}  // namespace pgolf
