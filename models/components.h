// The component kinds a model is assembled from. Each kind is a registry namespace: a variant is one
// file that subclasses the interface and registers itself (PGOLF_REGISTER) with its recipe keys.
#pragma once

#include <torch/torch.h>

#include "framework/registry.h"

namespace pgolf {

// What a layer-level component needs to know about where it sits.
struct LayerContext {
  int64_t dim = 0;         // model width d
  int64_t heads = 0;       // query heads H
  int64_t kv_heads = 0;    // key/value heads
  int64_t layer = 0;       // physical layer index ℓ
  int64_t num_layers = 0;  // L
  std::string linear_init = "default";  // how non-zero-init matrices start: default | orthogonal
};

// Self-attention over a normalised input (B, T, d) -> (B, T, d), causal.
struct Attention : torch::nn::Module {
  static constexpr const char* kKind = "attention";
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};
using AttentionRegistry = Registry<Attention, const LayerContext&>;

// Position-wise MLP over a normalised input (B, T, d) -> (B, T, d).
struct Mlp : torch::nn::Module {
  static constexpr const char* kKind = "mlp";
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};
using MlpRegistry = Registry<Mlp, const LayerContext&>;

// One residual block: x, x0 (the normalised embedding) -> new residual stream.
// Built with the model section so it can build the attention and MLP the recipe names.
struct Block : torch::nn::Module {
  static constexpr const char* kKind = "block";
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& x0) = 0;
};
using BlockRegistry = Registry<Block, const LayerContext&, const Config& /*model section*/>;

// How decoder layers take the encoder outputs (U-Net skips): merge(x, skip, j) before decoder entry j.
struct SkipConnection : torch::nn::Module {
  static constexpr const char* kKind = "skip";
  virtual torch::Tensor merge(const torch::Tensor& x, const torch::Tensor& skip, int64_t j) = 0;
};
struct SkipContext {
  int64_t dim = 0;
  int64_t count = 0;  // number of skip slots, min(|encoder|, |decoder|)
};
using SkipRegistry = Registry<SkipConnection, const SkipContext&>;

}  // namespace pgolf
