// One document -> [BOS] + token ids (+ the §3.3 byte sidecar), for each tokenization of spec posttrain §3:
// none (plain SentencePiece), caseops, casefold and cap. What `pgolf-data prepare` runs per document.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizers/cap_tokenizer.h"
#include "tokenizers/sentencepiece_model.h"

namespace pgolf {

enum class Transform { None, CaseOps, Casefold, Cap };
// "none" | "caseops" | "casefold" | "cap"; throws listing them otherwise.
Transform parse_transform(const std::string& name);
const char* transform_name(Transform t);
// The text transform a tokenizer is trained on (none, caseops, casefold; cap trains nothing: it is made
// from a base model). Throws naming the byte offset on invalid UTF-8.
std::string transform_text(Transform t, std::string_view doc);
// True when the tokenizer has the four CaseOps operators U+E001..U+E004 as pieces.
bool is_caseops_tokenizer(const SentencePieceModel& sp);

// Original UTF-8 bytes per piece from the spans the pieces cover in `text` (the text SentencePiece saw).
// count(span) gives the original bytes of a run of `text` and is called on consecutive runs in order.
// Bytes of `text` that no piece covers (whitespace SentencePiece strips at the ends) go to a neighbouring
// piece that stands for bytes of its own (never to an operator): leading ones to the first such piece,
// the others to the last such piece before them. So the counts add up to count(text).
template <class Count>
std::vector<int64_t> span_bytes(const std::vector<PieceSpan>& spans, std::string_view text, Count&& count) {
  const size_t n = spans.size();
  std::vector<int64_t> own(n, 0), gap_before(n + 1, 0);  // gap_before[n]: the trailing gap
  size_t covered = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t b = std::min<size_t>(spans[k].begin, text.size()), e = std::min<size_t>(spans[k].end, text.size());
    if (b > covered) gap_before[k] = count(text.substr(covered, b - covered));
    const size_t from = std::max(b, covered);
    if (e > from) own[k] = count(text.substr(from, e - from));
    covered = std::max(covered, e);
  }
  if (n == 0) return own;
  if (covered < text.size()) gap_before[n] = count(text.substr(covered));
  size_t first = 0;
  while (first < n && own[first] == 0) ++first;
  if (first == n) first = 0;
  std::vector<int64_t> out = own;
  size_t last = first;  // the last piece with bytes of its own seen so far
  for (size_t k = 0; k <= n; ++k) {
    if (gap_before[k]) out[k <= first ? first : last] += gap_before[k];
    if (k < n && own[k] > 0) last = k;
  }
  return out;
}

class DocumentEncoder {
 public:
  // base_tokenizer: the base model of a cap tokenizer (Transform::Cap only). Throws when the tokenizer
  // does not suit the transform (a CaseOps tokenizer without caseops or the reverse, more than 65536
  // pieces, BOS not 1).
  DocumentEncoder(Transform t, const std::string& tokenizer, const std::string& base_tokenizer = "");
  Transform transform() const { return transform_; }
  // The vocabulary of the ids written (the cap model's for cap).
  const SentencePieceModel& tokenizer() const { return cap_ ? cap_->cap() : *sp_; }
  // Casefold loses the original text, so it has no sidecar (it is scored with the LUT, §3.4).
  bool sidecar_supported() const { return transform_ != Transform::Casefold; }
  // Appends [BOS] + the ids of `doc` to tokens and, when bytes is given, 0 (BOS) + the original UTF-8
  // bytes of each token (§3.3: operators and ESC 0, <cap> 0). Throws on invalid UTF-8, an id or a byte
  // count that does not fit uint16.
  void encode(std::string_view doc, std::vector<uint16_t>& tokens, std::vector<uint16_t>* bytes) const;

 private:
  Transform transform_;
  std::unique_ptr<SentencePieceModel> sp_;
  std::unique_ptr<CapEncoder> cap_;
};

}  // namespace pgolf
