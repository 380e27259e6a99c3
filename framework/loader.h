// Training-batch loaders: each gives every optimizer micro-step one (x, y) batch for this rank.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "framework/registry.h"

namespace pgolf {

struct Batch {
  Batch() = default;
  Batch(torch::Tensor x_, torch::Tensor y_) : x(std::move(x_)), y(std::move(y_)) {}
  torch::Tensor x;  // int64 (B, T) token ids, on the CPU
  torch::Tensor y;  // int64 (B, T) next-token targets
  // Packed documents (optional): int32 cumulative segment offsets over the flattened B*T tokens, from 0 to
  // B*T; attention stays inside each segment. max_seqlen bounds every segment's length.
  torch::Tensor cu_seqlens;
  int64_t max_seqlen = 0;
};

// cu_seqlens of one packed row x[0, n): 0, every BOS position, each document cut into pieces of at most
// max_len tokens, then n; padded with n to a multiple of `pad` entries (framework/document_packing_loader.cpp).
torch::Tensor packed_cu_seqlens(const int64_t* x, int64_t n, int64_t bos_id, int64_t max_len, int64_t pad);

struct LoaderContext {
  std::vector<std::string> files;  // token shards, sorted, sidecars excluded
  int64_t seq_len = 0;             // T
  int64_t local_tokens = 0;        // tokens per micro-batch on this rank (B*T)
  int rank = 0;
  int world = 1;
  uint64_t seed = 0;               // the run seed; loaders derive their own generator from (seed, rank)
};

struct TrainLoader {
  static constexpr const char* kKind = "loader";
  virtual ~TrainLoader() = default;
  virtual Batch next() = 0;
  // Position in the data, enough to continue exactly (checkpoints, warmup rollback).
  virtual Json state() const = 0;
  virtual void restore(const Json& state) = 0;
};

using LoaderRegistry = Registry<TrainLoader, const LoaderContext&>;

}  // namespace pgolf
