// The interface the Trainer, evaluators and the artifact path see of a language model.
#pragma once

#include <torch/torch.h>

#include "framework/registry.h"

namespace pgolf {

struct LanguageModel : torch::nn::Module {
  static constexpr const char* kKind = "model";

  // Next-token NLL in nats, fp32, one value per position: shape (B, T) for int64 inputs x, y of (B, T).
  virtual torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) = 0;
  // What training minimises: the mean NLL over all positions (fp32 scalar).
  virtual torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) { return token_nll(x, y).mean(); }
  virtual int64_t vocab_size() const = 0;

  // bf16 on CUDA, fp32 on CPU: parameters stay fp32 masters, activations run in this dtype.
  virtual void set_compute_dtype(torch::ScalarType dtype) { compute_dtype_ = dtype; }
  torch::ScalarType compute_dtype() const { return compute_dtype_; }

  // Fraction of the training budget spent, before each step (drives e.g. loop activation); eval and
  // the reloaded artifact see the final state.
  virtual void on_train_progress(double /*fraction*/) {}

 protected:
  torch::ScalarType compute_dtype_ = torch::kFloat32;
};

using ModelRegistry = Registry<LanguageModel>;

// Parameter count as reported by `trainer --dry-run` (every registered parameter, once).
int64_t count_parameters(const torch::nn::Module& m);

}  // namespace pgolf
