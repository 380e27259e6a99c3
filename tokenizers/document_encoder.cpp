#include "tokenizers/document_encoder.h"

#include <stdexcept>

#include "framework/shard.h"
#include "tokenizers/casefold.h"
#include "tokenizers/caseops.h"

namespace pgolf {

Transform parse_transform(const std::string& name) {
  if (name == "none") return Transform::None;
  if (name == "caseops") return Transform::CaseOps;
  if (name == "casefold") return Transform::Casefold;
  if (name == "cap") return Transform::Cap;
  throw std::runtime_error("unknown transform '" + name + "'; expected none, caseops, casefold or cap");
}

const char* transform_name(Transform t) {
  switch (t) {
    case Transform::None: return "none";
    case Transform::CaseOps: return "caseops";
    case Transform::Casefold: return "casefold";
    case Transform::Cap: return "cap";
  }
  return "?";
}

std::string transform_text(Transform t, std::string_view doc) {
  switch (t) {
    case Transform::CaseOps: return caseops_encode(doc);
    case Transform::Casefold: return casefold(doc);
    case Transform::None:
    case Transform::Cap: break;
  }
  if (const size_t bad = utf8_invalid_offset(doc); bad != std::string::npos)
    throw std::runtime_error("the text is not valid UTF-8 at byte " + std::to_string(bad));
  return std::string(doc);
}

bool is_caseops_tokenizer(const SentencePieceModel& sp) {
  int found = 0;
  for (char32_t op : {caseops::kTitle, caseops::kAllCaps, caseops::kCapNext, caseops::kEsc}) {
    const std::string s = caseops::utf8(op);
    for (int i = 0; i < sp.vocab_size(); ++i)
      if (sp.piece(i) == s) {
        ++found;
        break;
      }
  }
  return found == 4;
}

DocumentEncoder::DocumentEncoder(Transform t, const std::string& tokenizer, const std::string& base_tokenizer)
    : transform_(t) {
  if (t == Transform::Cap) {
    if (base_tokenizer.empty())
      throw std::runtime_error("the cap transform needs the base model the cap tokenizer was made from "
                               "(--base-tokenizer)");
    cap_ = std::make_unique<CapEncoder>(tokenizer, base_tokenizer);
  } else {
    if (!base_tokenizer.empty())
      throw std::runtime_error("a base tokenizer is only used by the cap transform, not by '" +
                               std::string(transform_name(t)) + "'");
    sp_ = std::make_unique<SentencePieceModel>(tokenizer);
  }
  const SentencePieceModel& sp = this->tokenizer();
  if (sp.vocab_size() > 65536)
    throw std::runtime_error(tokenizer + ": " + std::to_string(sp.vocab_size()) +
                             " pieces; shards store uint16 ids, so the vocabulary must be at most 65536");
  if (sp.bos_id() != kBosId)
    throw std::runtime_error(tokenizer + ": bos_id is " + std::to_string(sp.bos_id()) +
                             ", but shards mark documents with BOS = " + std::to_string(kBosId) + " (train with pgolf-data train-tokenizer)");
  const bool caseops_tok = is_caseops_tokenizer(sp);
  if (caseops_tok && t != Transform::CaseOps)
    throw std::runtime_error(tokenizer + " is a CaseOps tokenizer (pieces U+E001..U+E004): prepare its text with "
                             "--transform caseops");
  if (!caseops_tok && t == Transform::CaseOps)
    throw std::runtime_error(tokenizer + " has no CaseOps operator pieces U+E001..U+E004: train one with "
                             "`pgolf-data train-tokenizer --transform caseops`");
}

void DocumentEncoder::encode(std::string_view doc, std::vector<uint16_t>& tokens, std::vector<uint16_t>* bytes) const {
  if (bytes && !sidecar_supported())
    throw std::runtime_error(std::string("the ") + transform_name(transform_) +
                             " transform has no byte sidecar (its text no longer maps to the original bytes)");
  const std::string text = transform_text(transform_, doc);  // validates UTF-8 in every case
  std::vector<int> ids;
  std::vector<int64_t> counts;
  if (!bytes) {
    ids = cap_ ? cap_->from_base(cap_->base().encode(text)) : sp_->encode(text);
  } else if (cap_) {
    const auto spans = cap_->base().encode_spans(text);
    const auto base_bytes = span_bytes(spans, text, [](std::string_view s) { return int64_t(s.size()); });
    for (size_t k = 0; k < spans.size(); ++k) {
      if (cap_->is_removed(spans[k].id)) {
        ids.push_back(cap_->cap_id());
        counts.push_back(0);  // <cap> stands for no byte of its own
      }
      ids.push_back(cap_->mapped(spans[k].id));
      counts.push_back(base_bytes[k]);
    }
  } else {
    const auto spans = sp_->encode_spans(text);
    for (const auto& s : spans) ids.push_back(s.id);
    if (transform_ == Transform::CaseOps) {
      CaseOpsByteCounter counter;
      counts = span_bytes(spans, text, [&](std::string_view s) { return counter.count(s); });
    } else {
      counts = span_bytes(spans, text, [](std::string_view s) { return int64_t(s.size()); });
    }
  }
  tokens.reserve(tokens.size() + ids.size() + 1);
  tokens.push_back(static_cast<uint16_t>(kBosId));  // the only document boundary in the stream (no EOS)
  for (int id : ids) {
    if (id < 0 || id > 65535)
      throw std::runtime_error("token id " + std::to_string(id) + " does not fit the shards' uint16");
    tokens.push_back(static_cast<uint16_t>(id));
  }
  if (bytes) {
    bytes->reserve(bytes->size() + counts.size() + 1);
    bytes->push_back(0);
    for (int64_t c : counts) {
      if (c > 65535)
        throw std::runtime_error("one token stands for " + std::to_string(c) +
                                 " bytes of text (a long whitespace run?), more than a uint16 sidecar entry holds");
      bytes->push_back(static_cast<uint16_t>(c));
    }
  }
}

}  // namespace pgolf
