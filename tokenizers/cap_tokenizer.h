// The cap tokenizer (spec posttrain §3.5, reconstructed [inferred]: #1938 did not publish it). From a base
// SentencePiece model, a random share p of the "eligible" capitalised pieces is removed and one piece
// "<cap>" added; where the base encoding uses a removed piece, the cap encoding has <cap> followed by the
// piece's lowercase counterpart. <cap> stands for 0 bytes and is no boundary (lut zero_byte_pieces).
//
// Choices (ours): eligible = a NORMAL piece whose text, after one optional leading U+2581, starts with an
// ASCII capital and has no other ASCII capital, and whose lowercased-first-letter form is a NORMAL piece
// too; removal picks round(p * eligible) of them without replacement with weight 1 / (1 + count), count =
// how often the base encoding of the training text uses the piece (Efraimidis-Spirakis keys from a
// seeded mt19937_64); <cap> is a USER_DEFINED piece appended after the kept pieces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizers/sentencepiece_model.h"

namespace pgolf {

extern const char* const kCapPiece;  // "<cap>"

// Indices of k of the weights' items, drawn without replacement with probability proportional to weight
// (a deterministic function of the seed); sorted ascending. Throws if k > count or a weight is not > 0.
std::vector<size_t> weighted_sample_without_replacement(const std::vector<double>& weights, size_t k,
                                                        uint64_t seed);

// The eligible piece ids of `base`, ascending.
std::vector<int> cap_eligible_pieces(const SentencePieceModel& base);

struct CapModel {
  std::string model_bytes;  // a serialized SentencePiece ModelProto
  std::vector<int> eligible, removed;  // base ids
};
// Builds the cap model from the base model file; counts[id] = uses of base piece id in the training text.
CapModel build_cap_model(const std::string& base_model_path, const std::vector<int64_t>& counts, double p,
                         uint64_t seed);

// Encodes with the base model and rewrites into the cap vocabulary. Both models are checked to belong
// together (same pieces but the removed capitalised ones, plus <cap>).
class CapEncoder {
 public:
  CapEncoder(const std::string& cap_model_path, const std::string& base_model_path);
  const SentencePieceModel& cap() const { return cap_; }
  const SentencePieceModel& base() const { return base_; }
  int cap_id() const { return cap_id_; }
  // Cap ids of base ids (one or two per base id).
  std::vector<int> from_base(const std::vector<int>& base_ids) const;
  // The inverse: base ids of cap ids; throws on a <cap> not followed by a capitalisable piece.
  std::vector<int> to_base(const std::vector<int>& cap_ids) const;
  // Whether a base piece was removed (it becomes <cap> + its lowercase counterpart), and the cap id it maps to.
  bool is_removed(int base_id) const { return removed_[base_id] != 0; }
  int mapped(int base_id) const { return map_[base_id]; }

 private:
  SentencePieceModel cap_, base_;
  int cap_id_ = -1;
  std::vector<int> map_;          // base id -> cap id (of its lowercase counterpart when removed)
  std::vector<uint8_t> removed_;  // base id -> 1 when removed
  std::vector<int> unmap_;        // cap id -> base id
  std::vector<int> capitalised_;  // cap id -> base id of its removed capitalised form, or -1
};

}  // namespace pgolf
