// Batched per-document LoRA (spec posttrain §9.4) as a linear tap (framework/tap.h): one adapter set per
// document row b of the forward, per *virtual* layer (each pass of a recurrent block gets its own), plus one
// on the LM head. Δ = scale · (x Aᵀ) Bᵀ with A (b, r, in), B (b, out, r), as two batched GEMMs (bmm).
//   q, k, v    input: the block's normed input n            added to: the c_q / c_k / c_v outputs
//   o          input: n (not the attention output)           added to: the out-projection output
//   mlp        input: the MLP input (dim → dim, bypassing fc/proj)   added to: the MLP's proj output
//   lm_head    input: the final-norm hidden                  added to: the pre-softcap logits
// A virtual layer begins when an attention projection fires a second time; the sites and their sizes come
// from one probe forward of the model as it will be scored (recurrence on).
#pragma once

#include <torch/torch.h>

#include <array>
#include <vector>

#include "framework/model.h"

namespace pgolf {

struct LoraOptions {
  int64_t rank = 8;
  double scale = 1.0;
  bool q = true, k = true, v = true, o = true, mlp = true, head = true;
};

class BatchedLora : public Tap {
 public:
  enum Kind { Q, K, V, O, MLP, kKinds };
  BatchedLora(LanguageModel& model, int64_t batch, const LoraOptions& opt, torch::Device device);
  // B = 0 (Δ = 0); A redrawn ~ U(−1/√in, 1/√in) from `gen` when redraw_a (else kept: the warm start).
  void reset(bool redraw_a, at::Generator& gen);
  std::vector<torch::Tensor> parameters() const;
  int64_t batch() const { return batch_; }
  int64_t virtual_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t parameters_per_document() const;

  void begin_forward() override;
  torch::Tensor output(const TapSite& site, const torch::Tensor& x, const torch::Tensor& y) override;

 private:
  struct Adapter {
    torch::Tensor a, b;  // (batch, r, in), (batch, out, r); undefined when this adapter is off
    torch::Tensor delta(const torch::Tensor& x, double scale) const;
  };
  using Layer = std::array<Adapter, kKinds>;
  int64_t batch_;
  LoraOptions opt_;
  std::vector<Layer> layers_;
  Adapter head_;
  // Forward state: the current virtual layer, which of its sites fired, the inputs o and mlp read.
  int64_t layer_ = -1;
  std::array<bool, kKinds> seen_{};
  torch::Tensor block_in_, mlp_in_;
};

}  // namespace pgolf
