// The LUT byte counter (spec posttrain §8.2, training §5.1): bytes of text per target token, from the
// tokenizer's piece strings alone. bytes(prev, tgt) = base[tgt] + (has_leading_space[tgt] && !boundary[prev]).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "framework/eval.h"
#include "tokenizers/sentencepiece_model.h"

namespace pgolf {

struct ByteLut {
  std::vector<int32_t> base_bytes;
  std::vector<uint8_t> has_leading_space;
  std::vector<uint8_t> is_boundary;
  int64_t size() const { return static_cast<int64_t>(base_bytes.size()); }
  // The byte count of one target; throws naming the id if either id is outside the table.
  int64_t bytes(int64_t prev, int64_t tgt) const;
};

// Pure: the table of length table_size (>= pieces.size(), normally max(model vocab, tokenizer vocab)).
// Control/unknown/unused: boundary, 0 bytes. Byte pieces: 1 byte. Others: strip one leading U+2581 (and set
// has_leading_space), count the UTF-8 bytes of the rest. Ids past the tokenizer: boundary, 0 bytes.
// Pieces named in zero_byte_pieces count 0 bytes without being boundaries (markers such as "<cap>").
ByteLut build_byte_lut(const std::vector<std::string>& pieces, const std::vector<PieceType>& types,
                       int64_t table_size, const std::set<std::string>& zero_byte_pieces = {});

// The ByteCounter over a ByteLut (registered as "lut", built from the recipe's tokenizer).
class LutByteCounter : public ByteCounter {
 public:
  explicit LutByteCounter(ByteLut lut, std::string source = "byte LUT", int64_t tokenizer_vocab = 0);
  int64_t tokenizer_vocab_size() const override { return tokenizer_vocab_; }
  torch::Tensor target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt,
                             const torch::Tensor& target_pos) const override;
  const ByteLut& lut() const { return lut_; }

 private:
  struct Tables {
    torch::Tensor base, space, boundary;
  };
  const Tables& tables_on(const torch::Device& device) const;
  void check_range(const torch::Tensor& ids, const char* what) const;

  ByteLut lut_;
  int64_t tokenizer_vocab_ = 0;
  std::string source_;
  mutable std::mutex mu_;
  mutable std::map<std::string, Tables> tables_;  // by device string: evaluation may run on CUDA
};

}  // namespace pgolf
