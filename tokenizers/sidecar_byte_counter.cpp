// ByteCounter "sidecar": per-target byte counts read from the val shards' byte sidecars (posttrain §8.3).
#include <filesystem>
#include <numeric>
#include <stdexcept>

#include "framework/registry.h"
#include "framework/shard.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/sidecar.h"

namespace pgolf {

std::string sidecar_path_for(const std::string& token_shard) {
  const size_t slash = token_shard.find_last_of('/');
  const size_t name_at = slash == std::string::npos ? 0 : slash + 1;
  const size_t us = token_shard.find_last_of('_');
  const std::string tail = ".bin";
  bool ok = us != std::string::npos && us >= name_at && token_shard.size() > us + 1 + tail.size() &&
            token_shard.compare(token_shard.size() - tail.size(), tail.size(), tail) == 0;
  for (size_t i = us + 1; ok && i < token_shard.size() - tail.size(); ++i)
    ok = token_shard[i] >= '0' && token_shard[i] <= '9';
  if (!ok)
    throw std::runtime_error(token_shard + ": a val shard name must end in _<digits>.bin for its byte sidecar "
                             "(<name>_bytes_<digits>.bin) to be found");
  return token_shard.substr(0, us + 1) + "bytes_" + token_shard.substr(us + 1);
}

SidecarByteCounter::SidecarByteCounter(const std::vector<std::string>& val_files, int64_t tokenizer_vocab)
    : tokenizer_vocab_(tokenizer_vocab) {
  if (val_files.empty()) throw std::runtime_error("byte counter sidecar: no val shards given");
  for (const auto& f : val_files) {
    const std::string side = sidecar_path_for(f);
    if (!std::filesystem::exists(side))
      throw std::runtime_error("byte counter sidecar: " + side + " (the byte sidecar of " + f +
                               ") does not exist; make the val shards with `pgolf-data prepare --sidecar`");
    ShardView tokens(f), bytes(side);
    if (bytes.size() != tokens.size())
      throw std::runtime_error("byte counter sidecar: " + side + " has " + std::to_string(bytes.size()) +
                               " entries but " + f + " has " + std::to_string(tokens.size()) +
                               " tokens; they must be aligned 1:1 (made by the same prepare run)");
    for (int64_t i = 0; i < tokens.size(); ++i)
      if (tokens.data()[i] == 1 && bytes.data()[i] != 0)
        throw std::runtime_error("byte counter sidecar: " + side + " entry " + std::to_string(i) + " is " +
                                 std::to_string(bytes.data()[i]) + " where " + f +
                                 " has a BOS (which counts 0 bytes); the sidecar does not belong to these tokens");
    bytes_.insert(bytes_.end(), bytes.data(), bytes.data() + bytes.size());
    source_ += (source_.empty() ? "" : ", ") + side;
  }
}

int64_t SidecarByteCounter::total() const { return std::accumulate(bytes_.begin(), bytes_.end(), int64_t{0}); }

const torch::Tensor& SidecarByteCounter::table_on(const torch::Device& device) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = device.str();
  auto it = tables_.find(key);
  if (it != tables_.end()) return it->second;
  auto t = torch::from_blob(const_cast<int32_t*>(bytes_.data()), {size()}, torch::kInt32).to(device);
  return tables_.emplace(key, t.clone()).first->second;  // clone: never alias bytes_ (a CPU "copy" is a view)
}

torch::Tensor SidecarByteCounter::target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt,
                                               const torch::Tensor& target_pos) const {
  if (!target_pos.sizes().equals(tgt.sizes()))
    throw std::runtime_error("byte counter sidecar: target_pos and tgt have different shapes");
  if (target_pos.numel() == 0) return torch::zeros(tgt.sizes(), tgt.options().dtype(torch::kFloat64));
  const int64_t lo = target_pos.min().item<int64_t>(), hi = target_pos.max().item<int64_t>();
  if (lo < 0 || hi >= size())
    throw std::runtime_error("byte counter sidecar: target position " + std::to_string(lo < 0 ? lo : hi) +
                             " is outside the sidecar [0, " + std::to_string(size()) + ") of " + source_);
  const torch::Tensor& table = table_on(tgt.device());
  return table.index({target_pos.to(tgt.device(), torch::kInt64)}).to(torch::kFloat64);
}

PGOLF_REGISTER(
    ByteCounterRegistry, "sidecar", Schema(),
    [](const Config&, const ByteCounterContext& ctx) -> std::shared_ptr<ByteCounter> {
      // The tokenizer is optional here; when present its size still guards model.vocab_size.
      const int64_t vocab = std::filesystem::is_regular_file(ctx.tokenizer_path)
                                ? SentencePieceModel(ctx.tokenizer_path).vocab_size()
                                : 0;
      return std::make_shared<SidecarByteCounter>(ctx.val_files, vocab);
    },
    "bytes per target from the val shards' byte sidecars <name>_bytes_NNNNNN.bin (CaseOps; pgolf-data "
    "prepare --sidecar)");

}  // namespace pgolf
