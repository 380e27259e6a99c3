// ByteCounter "lut": per-target byte counts from the SentencePiece pieces (spec posttrain §8.2).
#include <algorithm>
#include <stdexcept>

#include "framework/registry.h"
#include "tokenizers/byte_lut.h"
#include "tokenizers/cap_tokenizer.h"
#include "tokenizers/document_encoder.h"

namespace pgolf {

namespace {
const std::string kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's word-boundary marker
}

int64_t ByteLut::bytes(int64_t prev, int64_t tgt) const {
  for (int64_t id : {prev, tgt})
    if (id < 0 || id >= size())
      throw std::runtime_error("byte LUT: token id " + std::to_string(id) + " is outside the table [0, " +
                               std::to_string(size()) + ")");
  return base_bytes[tgt] + ((has_leading_space[tgt] && !is_boundary[prev]) ? 1 : 0);
}

ByteLut build_byte_lut(const std::vector<std::string>& pieces, const std::vector<PieceType>& types,
                       int64_t table_size, const std::set<std::string>& zero_byte_pieces) {
  if (pieces.size() != types.size())
    throw std::runtime_error("byte LUT: " + std::to_string(pieces.size()) + " pieces but " +
                             std::to_string(types.size()) + " piece types");
  if (table_size < static_cast<int64_t>(pieces.size()))
    throw std::runtime_error("byte LUT: table size " + std::to_string(table_size) + " is smaller than the " +
                             std::to_string(pieces.size()) + " tokenizer pieces");
  ByteLut lut;
  // Ids past the tokenizer's pieces (a model vocabulary padded beyond it) never occur in real text.
  lut.base_bytes.assign(table_size, 0);
  lut.has_leading_space.assign(table_size, 0);
  lut.is_boundary.assign(table_size, 1);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const PieceType t = types[i];
    if (t == PieceType::Control || t == PieceType::Unknown || t == PieceType::Unused) continue;
    lut.is_boundary[i] = 0;
    if (t == PieceType::Byte) {
      lut.base_bytes[i] = 1;
      continue;
    }
    if (zero_byte_pieces.count(pieces[i])) continue;
    std::string rest = pieces[i];
    if (rest.compare(0, kSpaceMarker.size(), kSpaceMarker) == 0) {
      lut.has_leading_space[i] = 1;
      rest.erase(0, kSpaceMarker.size());  // exactly one marker: "▁▁" keeps its second as 3 bytes
    }
    lut.base_bytes[i] = static_cast<int32_t>(rest.size());  // std::string holds UTF-8 bytes
  }
  return lut;
}

LutByteCounter::LutByteCounter(ByteLut lut, std::string source, int64_t tokenizer_vocab)
    : lut_(std::move(lut)), tokenizer_vocab_(tokenizer_vocab), source_(std::move(source)) {}

const LutByteCounter::Tables& LutByteCounter::tables_on(const torch::Device& device) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = device.str();
  auto it = tables_.find(key);
  if (it != tables_.end()) return it->second;
  const int64_t n = lut_.size();
  auto base = torch::from_blob(const_cast<int32_t*>(lut_.base_bytes.data()), {n}, torch::kInt32)
                  .to(torch::kFloat64);
  auto space = torch::from_blob(const_cast<uint8_t*>(lut_.has_leading_space.data()), {n}, torch::kUInt8)
                   .to(torch::kBool);
  auto boundary =
      torch::from_blob(const_cast<uint8_t*>(lut_.is_boundary.data()), {n}, torch::kUInt8).to(torch::kBool);
  Tables t{base.to(device), space.to(device), boundary.to(device)};
  return tables_.emplace(key, std::move(t)).first->second;
}

void LutByteCounter::check_range(const torch::Tensor& ids, const char* what) const {
  if (ids.numel() == 0) return;
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= lut_.size())
    throw std::runtime_error(std::string("byte counter lut: ") + what + " token id " +
                             std::to_string(lo < 0 ? lo : hi) + " is outside the byte table [0, " +
                             std::to_string(lut_.size()) + ") built from " + source_ +
                             "; the model's vocab_size or the data do not match the tokenizer");
}

torch::Tensor LutByteCounter::target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt,
                                           const torch::Tensor& target_pos) const {
  if (!prev.sizes().equals(tgt.sizes()))
    throw std::runtime_error("byte counter lut: prev and tgt have different shapes");
  check_range(prev, "previous");
  check_range(tgt, "target");
  const Tables& t = tables_on(tgt.device());
  auto p = prev.to(tgt.device(), torch::kInt64), g = tgt.to(torch::kInt64);
  auto space = t.space.index({g}).logical_and(t.boundary.index({p}).logical_not());
  return t.base.index({g}) + space.to(torch::kFloat64);
}

namespace {
Schema lut_schema() {
  Schema s;
  s.string_list("zero_byte_pieces", {},
                "pieces counted as 0 bytes without being boundaries (text markers such as \"<cap>\")");
  return s;
}
}  // namespace

PGOLF_REGISTER(
    ByteCounterRegistry, "lut", lut_schema(),
    [](const Config& cfg, const ByteCounterContext& ctx) -> std::shared_ptr<ByteCounter> {
      SentencePieceModel sp(ctx.tokenizer_path);
      const auto zero = cfg.strings("zero_byte_pieces");
      const std::set<std::string> zero_set(zero.begin(), zero.end());
      const auto pieces = sp.pieces();
      // Operators stand for no byte, yet the LUT would count each as its 3 UTF-8 bytes.
      if (is_caseops_tokenizer(sp))
        throw ConfigError(cfg.key_path("name") + ": the tokenizer " + ctx.tokenizer_path +
                          " is a CaseOps tokenizer (pieces U+E001..U+E004), which the LUT would count as 3 bytes "
                          "each; set eval.byte_counter = {\"name\": \"sidecar\"} and make the val shards with "
                          "`pgolf-data prepare --transform caseops --sidecar`");
      if (std::find(pieces.begin(), pieces.end(), kCapPiece) != pieces.end() && !zero_set.count(kCapPiece))
        throw ConfigError(cfg.key_path("zero_byte_pieces") + ": the tokenizer " + ctx.tokenizer_path +
                          " is a cap tokenizer; list \"<cap>\" here so that it counts 0 bytes (not 5)");
      for (const auto& z : zero_set)
        if (std::find(pieces.begin(), pieces.end(), z) == pieces.end())
          throw ConfigError(cfg.key_path("zero_byte_pieces") + ": piece '" + z + "' is not in the tokenizer " +
                            ctx.tokenizer_path);
      const int64_t table = std::max<int64_t>(ctx.vocab_size, sp.vocab_size());
      return std::make_shared<LutByteCounter>(build_byte_lut(pieces, sp.types(), table, zero_set),
                                              "tokenizer " + ctx.tokenizer_path, sp.vocab_size());
    },
    "bytes per target from the SentencePiece pieces (base + leading space unless after a boundary)");

}  // namespace pgolf
