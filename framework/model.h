// The interface the Trainer, evaluators and the artifact path see of a language model.
#pragma once

#include <torch/torch.h>

#include <stdexcept>

#include "framework/registry.h"
#include "framework/tap.h"

namespace pgolf {

struct LanguageModel : torch::nn::Module {
  static constexpr const char* kKind = "model";

  // Next-token NLL in nats, fp32, one value per position: shape (B, T) for int64 inputs x, y of (B, T).
  virtual torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) = 0;
  // What training minimises: the mean NLL over all positions (fp32 scalar).
  virtual torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) { return token_nll(x, y).mean(); }
  // The NLL at chosen columns only: (B, K) for cols (B, K) int64 in [0, T), y (B, T). What sliding windows and
  // TTT score (a stride or a chunk of each row): a model may run its head and CE on those positions alone.
  virtual torch::Tensor token_nll_at(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cols) {
    return token_nll(x, y).gather(1, cols);
  }
  virtual int64_t vocab_size() const = 0;
  // Model FLOPs per trained token for MFU (torchtitan's convention): 6 per matmul weight each token passes
  // through (forward + backward; repeated layers once per pass), plus the attention term 12·d·seq_len per
  // attention layer run. 0 = not known.
  virtual double flops_per_token(int64_t /*seq_len*/) { return 0.0; }

  // Packed batches (Batch::cu_seqlens): attention stays inside each segment of the flattened B*T tokens.
  // Models without document-isolated attention refuse such batches rather than attend across documents.
  virtual torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cu_seqlens,
                                  int64_t /*max_seqlen*/) {
    if (cu_seqlens.defined()) throw std::runtime_error("this model has no document-isolated (varlen) attention for cu_seqlens");
    return token_nll(x, y);
  }
  virtual torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& cu_seqlens,
                             int64_t /*max_seqlen*/) {
    if (cu_seqlens.defined()) throw std::runtime_error("this model has no document-isolated (varlen) attention for cu_seqlens");
    return loss(x, y);
  }

  // bf16 on CUDA, fp32 on CPU: parameters stay fp32 masters, activations run in this dtype.
  virtual void set_compute_dtype(torch::ScalarType dtype) { compute_dtype_ = dtype; }
  torch::ScalarType compute_dtype() const { return compute_dtype_; }

  // Fraction of the training budget spent, before each step (drives e.g. loop activation); evaluation runs
  // the state training is in, and the trainer passes 1.0 to the model rebuilt from the artifact.
  virtual void on_train_progress(double /*fraction*/) {}
  // Forget what on_train_progress switched on (as constructed): the warmup rollback calls it after its steps
  // run as if late in training (framework/warmup.h).
  virtual void reset_train_progress() {}

  // The taps installed on this model (framework/tap.h). The first call binds every tap site of the model
  // (its CastedLinears and TapPoints, named by module path) to this set.
  TapSet& taps();
  // Every tap site of the model, in module order.
  std::vector<TapSite> tap_sites();

 protected:
  torch::ScalarType compute_dtype_ = torch::kFloat32;
  TapSet taps_;
  bool taps_bound_ = false;
};

using ModelRegistry = Registry<LanguageModel>;

// Parameter count as reported by `trainer --dry-run` (every registered parameter, once).
int64_t count_parameters(const torch::nn::Module& m);

}  // namespace pgolf
