#include "tokenizers/cap_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "framework/io.h"

namespace pgolf {

const char* const kCapPiece = "<cap>";

namespace {

const std::string kSpaceMarker = "\xE2\x96\x81";  // U+2581

// ---- a minimal protobuf reader/writer: the cap model is the base ModelProto with other pieces --------

struct Field {
  uint32_t number = 0, wire = 0;
  uint64_t varint = 0;  // wire 0
  std::string bytes;    // wire 2 payload, or the 4/8 raw bytes of wire 5/1
};

uint64_t read_varint(const std::string& b, size_t& i) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (i >= b.size()) throw std::runtime_error("truncated varint");
    const uint8_t c = static_cast<uint8_t>(b[i++]);
    v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if (!(c & 0x80)) return v;
  }
  throw std::runtime_error("bad varint");
}

std::vector<Field> parse(const std::string& b) {
  std::vector<Field> out;
  size_t i = 0;
  while (i < b.size()) {
    const uint64_t key = read_varint(b, i);
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    size_t n = 0;
    switch (f.wire) {
      case 0: f.varint = read_varint(b, i); break;
      case 1: n = 8; break;
      case 2: n = read_varint(b, i); break;
      case 5: n = 4; break;
      default: throw std::runtime_error("unsupported wire type " + std::to_string(f.wire));
    }
    if (f.wire != 0) {
      if (i + n > b.size()) throw std::runtime_error("truncated field");
      f.bytes = b.substr(i, n);
      i += n;
    }
    out.push_back(std::move(f));
  }
  return out;
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

std::string serialize(const std::vector<Field>& fields) {
  std::string out;
  for (const Field& f : fields) {
    write_varint(out, (static_cast<uint64_t>(f.number) << 3) | f.wire);
    if (f.wire == 0) {
      write_varint(out, f.varint);
    } else {
      if (f.wire == 2) write_varint(out, f.bytes.size());
      out += f.bytes;
    }
  }
  return out;
}

Field bytes_field(uint32_t number, std::string payload) {
  Field f;
  f.number = number;
  f.wire = 2;
  f.bytes = std::move(payload);
  return f;
}

// "▁The" -> "▁the" when the piece is capitalised in our sense (see the header), else "".
std::string lowercase_counterpart(const std::string& piece) {
  const size_t start = piece.compare(0, kSpaceMarker.size(), kSpaceMarker) == 0 ? kSpaceMarker.size() : 0;
  if (start >= piece.size() || piece[start] < 'A' || piece[start] > 'Z') return "";
  for (size_t i = start + 1; i < piece.size(); ++i)
    if (piece[i] >= 'A' && piece[i] <= 'Z') return "";
  std::string lower = piece;
  lower[start] = static_cast<char>(lower[start] + 32);
  return lower;
}

std::unordered_map<std::string, int> piece_ids(const SentencePieceModel& sp) {
  std::unordered_map<std::string, int> ids;
  for (int i = 0; i < sp.vocab_size(); ++i) ids.emplace(sp.piece(i), i);
  return ids;
}

}  // namespace

std::vector<size_t> weighted_sample_without_replacement(const std::vector<double>& weights, size_t k,
                                                        uint64_t seed) {
  if (k > weights.size())
    throw std::runtime_error("weighted sample: " + std::to_string(k) + " items wanted from " +
                             std::to_string(weights.size()));
  std::mt19937_64 rng(seed);
  // Efraimidis-Spirakis: the k largest log(u) / w, u ~ U(0, 1), are a weighted sample without replacement.
  std::vector<std::pair<double, size_t>> keys(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(weights[i] > 0) || !std::isfinite(weights[i]))
      throw std::runtime_error("weighted sample: weight " + std::to_string(i) + " is not a positive number");
    const double u = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1), exact from 53 bits
    keys[i] = {std::log(u) / weights[i], i};
  }
  // Ties (practically impossible) resolve to the lower index, so the result is a function of the seed.
  std::partial_sort(keys.begin(), keys.begin() + k, keys.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<size_t> out;
  for (size_t i = 0; i < k; ++i) out.push_back(keys[i].second);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int> cap_eligible_pieces(const SentencePieceModel& base) {
  const auto ids = piece_ids(base);
  std::vector<int> out;
  for (int i = 0; i < base.vocab_size(); ++i) {
    if (base.type(i) != PieceType::Normal) continue;
    const std::string lower = lowercase_counterpart(base.piece(i));
    if (lower.empty()) continue;
    auto it = ids.find(lower);
    if (it != ids.end() && base.type(it->second) == PieceType::Normal) out.push_back(i);
  }
  return out;
}

CapModel build_cap_model(const std::string& base_model_path, const std::vector<int64_t>& counts, double p,
                         uint64_t seed) {
  if (!(p >= 0 && p <= 1)) throw std::runtime_error("cap tokenizer: p = " + std::to_string(p) + ", expected 0..1");
  SentencePieceModel base(base_model_path);
  if (static_cast<int>(counts.size()) != base.vocab_size())
    throw std::runtime_error("cap tokenizer: " + std::to_string(counts.size()) + " piece counts for " +
                             std::to_string(base.vocab_size()) + " pieces");
  const auto ids = piece_ids(base);
  if (ids.count(kCapPiece))
    throw std::runtime_error(base_model_path + ": already has a piece \"<cap>\" (is it a cap tokenizer?)");
  CapModel out;
  out.eligible = cap_eligible_pieces(base);
  std::vector<double> weights;
  for (int id : out.eligible) weights.push_back(1.0 / (1.0 + static_cast<double>(counts[id])));
  const size_t k = static_cast<size_t>(std::llround(p * static_cast<double>(out.eligible.size())));
  for (size_t i : weighted_sample_without_replacement(weights, k, seed)) out.removed.push_back(out.eligible[i]);

  std::vector<uint8_t> drop(base.vocab_size(), 0);
  for (int id : out.removed) drop[id] = 1;
  const std::vector<Field> top = parse(read_file(base_model_path));
  std::vector<Field> pieces, rest;
  int index = 0;
  for (const Field& f : top) {
    if (f.number == 1 && f.wire == 2) {
      if (!drop.at(index++)) pieces.push_back(f);
    } else {
      rest.push_back(f);
    }
  }
  if (index != base.vocab_size()) throw std::runtime_error(base_model_path + ": piece count does not match the model");
  // SentencePiece message: 1 piece, 2 score (float), 3 type (4 = USER_DEFINED).
  std::string cap = serialize({bytes_field(1, kCapPiece)});
  Field score;
  score.number = 2;
  score.wire = 5;
  score.bytes.assign(4, '\0');  // 0.0f
  Field type;
  type.number = 3;
  type.varint = 4;
  cap += serialize({score, type});
  pieces.push_back(bytes_field(1, cap));
  for (Field& f : rest)
    if (f.number == 2 && f.wire == 2) {  // TrainerSpec: vocab_size (4) becomes the new piece count
      auto spec = parse(f.bytes);
      for (Field& g : spec)
        if (g.number == 4 && g.wire == 0) g.varint = pieces.size();
      f.bytes = serialize(spec);
    }
  pieces.insert(pieces.end(), rest.begin(), rest.end());
  out.model_bytes = serialize(pieces);
  return out;
}

CapEncoder::CapEncoder(const std::string& cap_model_path, const std::string& base_model_path)
    : cap_(cap_model_path), base_(base_model_path) {
  const std::string pair = "cap tokenizer " + cap_model_path + " with base " + base_model_path + ": ";
  const auto cap_ids = piece_ids(cap_);
  auto it = cap_ids.find(kCapPiece);
  if (it == cap_ids.end())
    throw std::runtime_error(cap_model_path + " has no \"<cap>\" piece: not a cap tokenizer (make one with "
                             "`pgolf-data make-cap-tokenizer`)");
  cap_id_ = it->second;
  if (base_.vocab_size() > 0 && piece_ids(base_).count(kCapPiece))
    throw std::runtime_error(pair + "the base has a \"<cap>\" piece itself: pass the plain model the cap "
                             "tokenizer was made from");
  map_.assign(base_.vocab_size(), -1);
  removed_.assign(base_.vocab_size(), 0);
  unmap_.assign(cap_.vocab_size(), -1);
  capitalised_.assign(cap_.vocab_size(), -1);
  for (int b = 0; b < base_.vocab_size(); ++b) {
    const std::string& piece = base_.piece(b);
    auto c = cap_ids.find(piece);
    if (c != cap_ids.end()) {
      map_[b] = c->second;
      unmap_[c->second] = b;
      continue;
    }
    const std::string lower = lowercase_counterpart(piece);
    auto l = lower.empty() ? cap_ids.end() : cap_ids.find(lower);
    if (l == cap_ids.end())
      throw std::runtime_error(pair + "base piece '" + piece +
                               "' is missing from the cap model and has no lowercase counterpart there; "
                               "the base is not the model the cap tokenizer was made from");
    map_[b] = l->second;
    removed_[b] = 1;
    capitalised_[l->second] = b;
  }
  for (int c = 0; c < cap_.vocab_size(); ++c)
    if (c != cap_id_ && unmap_[c] < 0)
      throw std::runtime_error(pair + "cap piece '" + cap_.piece(c) + "' is not in the base model");
}

std::vector<int> CapEncoder::from_base(const std::vector<int>& base_ids) const {
  std::vector<int> out;
  out.reserve(base_ids.size() + base_ids.size() / 16);
  for (int b : base_ids) {
    if (removed_[b]) out.push_back(cap_id_);
    out.push_back(map_[b]);
  }
  return out;
}

std::vector<int> CapEncoder::to_base(const std::vector<int>& cap_ids) const {
  std::vector<int> out;
  for (size_t i = 0; i < cap_ids.size(); ++i) {
    const int c = cap_ids[i];
    if (c < 0 || c >= cap_.vocab_size()) throw std::runtime_error("cap id " + std::to_string(c) + " out of range");
    if (c != cap_id_) {
      out.push_back(unmap_[c]);
      continue;
    }
    if (i + 1 >= cap_ids.size() || capitalised_[cap_ids[i + 1]] < 0)
      throw std::runtime_error("<cap> at position " + std::to_string(i) +
                               " is not followed by a piece whose capitalised form was removed");
    out.push_back(capitalised_[cap_ids[++i]]);
  }
  return out;
}

}  // namespace pgolf
