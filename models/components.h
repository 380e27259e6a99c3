// The component kinds a model is assembled from. Each kind is a registry namespace: a variant is one
// file that subclasses the interface and registers itself (PGOLF_REGISTER) with its recipe keys.
// Optional kinds (attention gate, smear, bigram, value embedding, lanes, skip) also register "none"
// (models/none_components.cpp), whose factory returns nullptr: the owner then leaves that step out.
//
// Shape letters, the same in every comment and variable of models/:
//   B    batch rows (sequences)             T    positions per row (data.seq_len while training)
//   D    model width, model.dim             V    vocabulary size, model.vocab_size
//   H    query heads, model.heads           Hkv  key/value heads, model.kv_heads (H_kv in the spec; divides H)
//   d_h  head dim, D / H (also that of k, v; kv_dim = Hkv · d_h)
//   L    physical layers, model.layers      N    tokens of a packed (varlen) batch, B · T
// Cross-key checks of these (D % H, H % Hkv, rope_dims against d_h) go through Config::check and run
// before any member is built, naming the recipe file, the keys and their values.
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "framework/registry.h"

namespace pgolf {

struct Attention;
struct Mlp;

// What a component needs to know about where it sits.
struct LayerContext {
  int64_t dim = 0;         // model width D
  int64_t heads = 0;       // query heads H
  int64_t kv_heads = 0;    // key/value heads Hkv
  int64_t layer = 0;       // physical layer index ℓ (for a shared core: the core's index)
  int64_t num_layers = 0;  // L
  int64_t vocab_size = 0;  // V
  std::string linear_init = "default";  // how non-zero-init matrices start: default | orthogonal
  bool fused_kernels = true;  // model.fused_kernels: the fused CUDA ops of kernels/ops.h where they apply
  // Weight sharing (#461): when set, the block uses this core's attention and MLP instead of its own.
  std::shared_ptr<Attention> shared_attn;
  std::shared_ptr<Mlp> shared_mlp;
  // The model section itself, for cross-key checks that name model.* keys (model.check(ok, "dim", ...)):
  // it carries the recipe file for the message.
  Config model;
  int64_t head_dim() const { return dim / heads; }
  int64_t kv_dim() const { return kv_heads * head_dim(); }
};

// Document boundaries of a packed batch: int32 cumulative offsets over the flattened B*T tokens, so that
// attention stays inside each segment (varlen attention). Undefined = plain causal attention per row.
struct Segments {
  torch::Tensor cu_seqlens;
  int64_t max_seqlen = 0;
  bool defined() const { return cu_seqlens.defined(); }
};

// What one forward pass hands every block.
struct ForwardContext {
  torch::Tensor x0;                   // (B, T, D) the normalised embedding
  Segments segments;
  std::vector<torch::Tensor> v_extra;  // per layer: added to that layer's v (value embeddings); may be empty
  torch::Tensor value_addend(int64_t layer) const {
    return layer < static_cast<int64_t>(v_extra.size()) ? v_extra[static_cast<size_t>(layer)] : torch::Tensor();
  }
};

// What a block hands its attention.
struct AttentionInput {
  torch::Tensor x;        // (B, T, D) the normalised, f_ℓ-scaled input n
  torch::Tensor x_in;     // (B, T, D) the residual after resid_mix, before the norm (AttnOutGate reads it)
  torch::Tensor v_extra;  // (B, T, kv_dim) added to v before the head split; undefined = none
};

// Causal self-attention (B, T, D) -> (B, T, D).
struct Attention : torch::nn::Module {
  static constexpr const char* kKind = "attention";
  virtual torch::Tensor forward(const AttentionInput& in, const Segments& segments) = 0;
  torch::Tensor forward(const torch::Tensor& x) { return forward(AttentionInput{x, x, {}}, Segments{}); }
};
using AttentionRegistry = Registry<Attention, const LayerContext&>;

// A per-head multiplicative gate on the attention output, after XSA and before the output projection.
struct AttentionGate : torch::nn::Module {
  static constexpr const char* kKind = "attn_gate";
  // The gate g (B, T, H) in the input's dtype; the attention scales head h at position t by g_{t,h} (fused
  // with XSA: kernels::xsa_gate).
  virtual torch::Tensor values(const AttentionInput& in) = 0;
  // A gate read through a linear map of the attention input n (values = from_logits(n · input_weightᵀ)) lets
  // the attention compute its logits in the q/k/v GEMM: the (H, D) fp32 weight, any logit scale folded in
  // and columns the gate does not read zero. Undefined for gates that read anything else.
  virtual torch::Tensor input_weight(int64_t /*D*/) const { return {}; }
  virtual torch::Tensor from_logits(const torch::Tensor& z) const { return torch::sigmoid(z); }
  // y: (B, T, H, d_h) -> y with head h at position t scaled by g_{t,h}.
  torch::Tensor forward(const torch::Tensor& y, const AttentionInput& in) { return y * values(in).unsqueeze(-1); }
};
using AttentionGateRegistry = Registry<AttentionGate, const LayerContext&>;

// Position-wise MLP over a normalised input (B, T, D) -> (B, T, D).
struct Mlp : torch::nn::Module {
  static constexpr const char* kKind = "mlp";
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
};
using MlpRegistry = Registry<Mlp, const LayerContext&>;

// The branches of a two-lane block: A = attn_scale ⊙ attn, M = mlp_scale ⊙ mlp, the scales (D) left to the
// lane mixer so that it applies them inside its own fused residual ops.
struct LaneBranches {
  torch::Tensor attn, mlp, attn_scale, mlp_scale;
  torch::Tensor a() const { return attn_scale.to(attn.scalar_type()) * attn; }
  torch::Tensor m() const { return mlp_scale.to(mlp.scalar_type()) * mlp; }
};

// One residual block. Built with the model section so it can build the attention and MLP the recipe names.
struct Block : torch::nn::Module {
  static constexpr const char* kKind = "block";
  // The single-stream form: x -> new residual stream.
  virtual torch::Tensor forward(const torch::Tensor& x, const ForwardContext& ctx) = 0;
  // The two-lane form's branches (spec §2.11): A = a ⊙ Attn(N(μ0⊙lane0 + μ1⊙x0)·f), M = m ⊙ MLP(N(lane1)·f).
  virtual LaneBranches lane_branches(const torch::Tensor& lane0, const torch::Tensor& lane1, const ForwardContext& ctx) = 0;
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
  bool fused_kernels = true;  // model.fused_kernels
};
using SkipRegistry = Registry<SkipConnection, const SkipContext&>;

// The order blocks run in: encoder entries push their output for the U-Net skips, decoder entries pop.
struct LayerOrder {
  std::vector<int64_t> encoder, decoder;
};

// Depth recurrence: which blocks run in which order, and which weights each block uses. The base class is
// the plain U-Net split (encoder ⌊L/2⌋ blocks, decoder the rest, no sharing), registered as "none".
struct Recurrence {
  static constexpr const char* kKind = "recurrence";
  explicit Recurrence(int64_t num_layers);
  virtual ~Recurrence() = default;
  // The order for this forward pass (the segment loop's follows its activation, in both modes).
  virtual const LayerOrder& order(bool training) const { return plain_; }
  // U-Net skip slots: min(|encoder|, |decoder|) of the longest order the model will ever run.
  virtual int64_t skip_slots() const;
  virtual void on_train_progress(double /*fraction*/) {}
  virtual void reset_train_progress() {}  // back to the constructed state (warmup rollback)
  // Weight sharing: the number of distinct attention+MLP cores (0 = every block owns its own) and the core
  // block `layer` runs on.
  virtual int64_t num_cores() const { return 0; }
  virtual int64_t core_of(int64_t layer) const { return layer; }

 protected:
  LayerOrder plain_;
};
using RecurrenceRegistry = Registry<Recurrence, const LayerContext&>;

// Two residual lanes in the decoder (A2, spec §2.11): entries whose block index ≥ start_layer() run the
// lane form; lane0 feeds attention (and takes the skips), lane1 feeds the MLP.
struct LaneMixer : torch::nn::Module {
  static constexpr const char* kKind = "lanes";
  virtual int64_t start_layer() const = 0;
  // lane_k ← ρ_{ℓ,k}·lane_k + π_{ℓ,0,k}·A + π_{ℓ,1,k}·M
  virtual std::pair<torch::Tensor, torch::Tensor> mix(int64_t layer, const torch::Tensor& lane0,
                                                      const torch::Tensor& lane1, const LaneBranches& branches) = 0;
  // The final hidden state from both lanes.
  virtual torch::Tensor merge(const torch::Tensor& lane0, const torch::Tensor& lane1) = 0;
};
using LaneRegistry = Registry<LaneMixer, const LayerContext&>;

// Previous-token mixing of the embedding (SmearGate, spec §2.6), before or after the embedding RMSNorm.
struct Smear : torch::nn::Module {
  static constexpr const char* kKind = "smear";
  virtual bool before_norm() const = 0;
  // x: (B, T, D) the embedding stream; ids: (B, T) the input tokens.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& ids) = 0;
};
using SmearRegistry = Registry<Smear, const LayerContext&>;

// A hashed token-pair embedding added to tok_emb before the embedding norm (#461 BigramHash, spec §2.7).
struct Bigram : torch::nn::Module {
  static constexpr const char* kKind = "bigram";
  // ids: (B, T) -> (B, T, D) in dtype dt.
  virtual torch::Tensor forward(const torch::Tensor& ids, torch::ScalarType dt) = 0;
};
using BigramRegistry = Registry<Bigram, const LayerContext&>;

// BigramHash's bucket of every position (models/bigram_hash.cpp): ids (B, T) -> int64 (B, T).
torch::Tensor bigram_hash_indices(const torch::Tensor& ids, int64_t buckets);

// Value embeddings (#461, spec §2.8): a token embedding added to v in chosen layers.
struct ValueEmbedding : torch::nn::Module {
  static constexpr const char* kKind = "value_embedding";
  // One entry per layer: (B, T, kv_dim) in dtype dt to add to that layer's v, or undefined.
  virtual std::vector<torch::Tensor> per_layer(const torch::Tensor& ids, torch::ScalarType dt) = 0;
};
using ValueEmbeddingRegistry = Registry<ValueEmbedding, const LayerContext&>;

}  // namespace pgolf
