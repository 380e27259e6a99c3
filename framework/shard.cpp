#include "framework/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "framework/io.h"

namespace pgolf {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}
}  // namespace

ShardView::ShardView(const std::string& path) : path_(path) {
  if (const std::string dir = directory_problem(path, "a token shard file"); !dir.empty()) throw std::runtime_error(dir);
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open shard (") + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat shard");
  }
  const int64_t file_bytes = st.st_size;
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail(path, "truncated: " + std::to_string(file_bytes) + " bytes, shorter than the 1024-byte header");
  }
  map_bytes_ = static_cast<size_t>(file_bytes);
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("mmap failed (") + std::strerror(errno) + ")");
  }
  int32_t header[3];
  std::memcpy(header, map_, sizeof(header));  // the format is little-endian, as is every target we build for
  try {
    if (header[0] != kShardMagic)
      fail(path, "not a token shard: magic " + std::to_string(header[0]) + ", expected " + std::to_string(kShardMagic));
    if (header[1] != kShardVersion)
      fail(path, "unsupported shard version " + std::to_string(header[1]) + ", expected 1");
    if (header[2] < 0) fail(path, "negative token count in header");
    n_ = header[2];
    const int64_t expected = kShardHeaderBytes + 2 * n_;
    if (file_bytes != expected)
      fail(path, (file_bytes < expected ? "truncated" : "trailing bytes") + std::string(": size ") +
                     std::to_string(file_bytes) + " bytes, header says " + std::to_string(n_) + " tokens = " +
                     std::to_string(expected) + " bytes");
  } catch (...) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw;
  }
  tokens_ = reinterpret_cast<const uint16_t*>(static_cast<const char*>(map_) + kShardHeaderBytes);
}

ShardView::~ShardView() {
  if (map_) ::munmap(map_, map_bytes_);
}

void write_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) fail(path, "too many tokens for one shard (max 2^31-1)");
  std::string bytes(static_cast<size_t>(kShardHeaderBytes) + 2 * tokens.size(), '\0');
  int32_t header[3] = {kShardMagic, kShardVersion, static_cast<int32_t>(tokens.size())};
  std::memcpy(bytes.data(), header, sizeof(header));
  if (!tokens.empty()) std::memcpy(bytes.data() + kShardHeaderBytes, tokens.data(), 2 * tokens.size());
  write_file_atomic(path, bytes);
}

int64_t count_shard_tokens(const std::vector<std::string>& files) {
  int64_t n = 0;
  for (const auto& f : files) n += ShardView(f).size();
  return n;
}

TokenAt first_id_at_least(const std::vector<std::string>& files, int64_t limit, int64_t max_tokens) {
  int64_t seen = 0;
  for (const auto& f : files) {
    ShardView v(f);
    const int64_t k = max_tokens > 0 ? std::min(v.size(), max_tokens - seen) : v.size();
    for (int64_t i = 0; i < k; ++i)
      if (v.data()[i] >= limit) return TokenAt{true, f, i, v.data()[i]};
    seen += k;
    if (max_tokens > 0 && seen >= max_tokens) break;
  }
  return {};
}

std::string describe_bad_id(const TokenAt& at, int64_t vocab) {
  return "token id " + std::to_string(at.id) + " at position " + std::to_string(at.pos) + " of " + at.file +
         " is outside the model's vocabulary (model.vocab_size " + std::to_string(vocab) +
         "); the shards were made with another tokenizer, or model.vocab_size is too small";
}

namespace {

std::vector<std::string> matching(const std::string& pattern, bool skip_sidecars) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::string p = g.gl_pathv[i];
      const std::string base = p.substr(p.find_last_of('/') + 1);
      if (skip_sidecars && base.find("_bytes_") != std::string::npos) continue;
      out.push_back(p);
    }
  ::globfree(&g);
  return out;  // glob(3) returns names sorted
}

}  // namespace

bool shards_exist(const std::string& pattern) { return !matching(pattern, true).empty(); }

std::vector<std::string> glob_shards(const std::string& pattern, bool skip_sidecars) {
  std::vector<std::string> out = matching(pattern, skip_sidecars);
  if (out.empty())
    throw std::runtime_error("no shard files match '" + pattern +
                             "' (prepare data with `make data` or pgolf-data, or point the recipe's data keys at them)");
  return out;
}

}  // namespace pgolf
