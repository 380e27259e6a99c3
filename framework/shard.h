// The challenge's token shard format (spec posttrain §2.1): a 256 x int32 little-endian header
// (magic 20240520, version 1, token count N, the rest zero) followed by N little-endian uint16 values.
// The file size must be exactly 1024 + 2N. Byte sidecars (`*_bytes_*`) use the same layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pgolf {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr int64_t kShardHeaderBytes = 256 * 4;
// The token that starts every document in a shard (SentencePiece's <s> as pgolf-data trains it); the one
// document boundary: shards hold no EOS.
constexpr int64_t kBosId = 1;

// A read-only memory-mapped shard. Throws std::runtime_error naming the file and what is wrong
// (missing, truncated, foreign magic or version, size not matching the header).
class ShardView {
 public:
  explicit ShardView(const std::string& path);
  ~ShardView();
  ShardView(const ShardView&) = delete;
  ShardView& operator=(const ShardView&) = delete;

  const uint16_t* data() const { return tokens_; }
  int64_t size() const { return n_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
  int64_t n_ = 0;
};

// Opens every shard (header and size checked as ShardView does; the tokens are not read) and returns the
// total token count, so a damaged shard anywhere stops the run at start-up, not at the step that reaches it.
int64_t count_shard_tokens(const std::vector<std::string>& files);

// Where the first token id >= `limit` lies in `files` read in order (only their first `max_tokens` tokens
// when max_tokens > 0): found = false when there is none.
struct TokenAt {
  bool found = false;
  std::string file;
  int64_t pos = 0, id = 0;
};
TokenAt first_id_at_least(const std::vector<std::string>& files, int64_t limit, int64_t max_tokens = 0);
// "token id 1500 at position 37 of F is outside the model's vocabulary (model.vocab_size 1024)"
std::string describe_bad_id(const TokenAt& at, int64_t vocab);

// Writes a shard atomically (temp file + rename). Values must fit uint16.
void write_shard(const std::string& path, const std::vector<uint16_t>& tokens);

// Sorted paths matching a glob. With skip_sidecars, names containing "_bytes_" are left out (the
// val glob fineweb_val_*.bin also matches the byte sidecars). Throws naming the pattern if none match.
std::vector<std::string> glob_shards(const std::string& pattern, bool skip_sidecars = true);
// Whether any file (sidecars aside) matches `pattern`.
bool shards_exist(const std::string& pattern);

}  // namespace pgolf
