// The byte sidecar (spec posttrain §3.3, §8.3): for val shard <name>_NNNNNN.bin a shard
// <name>_bytes_NNNNNN.bin of the same length holding the original UTF-8 bytes of each token (BOS 0), and
// the "sidecar" ByteCounter that reads them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "framework/eval.h"

namespace pgolf {

// "d/fineweb_val_000003.bin" -> "d/fineweb_val_bytes_000003.bin"; throws when the name does not end in
// _<digits>.bin.
std::string sidecar_path_for(const std::string& token_shard);

// Bytes of the target at each val-stream position: bytes[target_pos] (target_pos = input position + 1).
class SidecarByteCounter : public ByteCounter {
 public:
  // Reads the sidecars beside `val_files` (in their order), checking each against its token shard: the
  // same length, and 0 wherever the token is BOS (1).
  SidecarByteCounter(const std::vector<std::string>& val_files, int64_t tokenizer_vocab = 0);
  int64_t tokenizer_vocab_size() const override { return tokenizer_vocab_; }
  torch::Tensor target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt,
                             const torch::Tensor& target_pos) const override;
  int64_t size() const { return static_cast<int64_t>(bytes_.size()); }
  int64_t total() const;

 private:
  const torch::Tensor& table_on(const torch::Device& device) const;
  std::vector<int32_t> bytes_;
  int64_t tokenizer_vocab_ = 0;
  std::string source_;
  mutable std::mutex mu_;
  mutable std::map<std::string, torch::Tensor> tables_;  // by device string
};

}  // namespace pgolf
