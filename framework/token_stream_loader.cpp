// Loader "token_stream": the challenge baseline's DistributedTokenLoader (spec training §3.2). One sequential
// stream over the sorted shards, wrapping after the last; each next() takes world*(n+1) contiguous tokens
// (n = local_tokens) and rank r keeps the r-th (n+1)-slice: x = slice[:-1], y = slice[1:], as (n/T, T).
#include <memory>
#include <stdexcept>

#include "framework/loader.h"
#include "framework/shard.h"

namespace pgolf {

namespace {

class TokenStreamLoader : public TrainLoader {
 public:
  explicit TokenStreamLoader(const LoaderContext& ctx) : ctx_(ctx) {
    if (ctx.files.empty()) throw ConfigError("data.loader token_stream: no training shards (check data.train)");
    if (ctx.seq_len <= 0 || ctx.local_tokens <= 0 || ctx.local_tokens % ctx.seq_len != 0)
      throw ConfigError("data.loader token_stream: tokens per rank per micro-step (" +
                        std::to_string(ctx.local_tokens) + " = data.batch_tokens / data.micro_batches) must be "
                        "a positive multiple of data.seq_len (" + std::to_string(ctx.seq_len) + ")");
    if (ctx.world <= 0 || ctx.rank < 0 || ctx.rank >= ctx.world)
      throw std::runtime_error("token_stream loader: rank " + std::to_string(ctx.rank) + " is outside world size " +
                               std::to_string(ctx.world));
  }

  Batch next() override {
    const int64_t span = ctx_.local_tokens + 1;
    auto out = torch::empty({span}, torch::kInt64);
    skip(span * ctx_.rank);
    copy(out.data_ptr<int64_t>(), span);
    skip(span * (ctx_.world - 1 - ctx_.rank));
    const int64_t rows = ctx_.local_tokens / ctx_.seq_len;
    return Batch{out.slice(0, 0, span - 1).view({rows, ctx_.seq_len}),
                 out.slice(0, 1, span).view({rows, ctx_.seq_len})};
  }

  Json state() const override { return Json{{"file", file_}, {"pos", pos_}}; }

  void restore(const Json& s) override {
    if (!s.is_object() || !s.contains("file") || !s.contains("pos") || !s["file"].is_number_integer() ||
        !s["pos"].is_number_integer())
      throw std::runtime_error("token_stream loader: cannot restore from " + s.dump() +
                               "; expected {\"file\": <shard index>, \"pos\": <token offset>}");
    const int64_t file = s["file"].get<int64_t>(), pos = s["pos"].get<int64_t>();
    if (file < 0 || file >= static_cast<int64_t>(ctx_.files.size()))
      throw std::runtime_error("token_stream loader: saved shard index " + std::to_string(file) + " is outside the " +
                               std::to_string(ctx_.files.size()) + " training shards (was the data.train glob changed?)");
    shard_.reset();
    file_ = file;
    open_current();
    if (pos < 0 || pos > shard_->size())
      throw std::runtime_error("token_stream loader: saved position " + std::to_string(pos) + " is outside " +
                               shard_->path() + " (" + std::to_string(shard_->size()) + " tokens)");
    pos_ = pos;
  }

 private:
  void open_current() {
    if (!shard_) shard_ = std::make_unique<ShardView>(ctx_.files[static_cast<size_t>(file_)]);
  }

  // Moves to the next shard (wrapping) when the current one is used up; only one shard stays mapped.
  void ensure_available() {
    open_current();
    int64_t empty_seen = 0;
    while (pos_ >= shard_->size()) {
      if (++empty_seen > static_cast<int64_t>(ctx_.files.size()))
        throw std::runtime_error("token_stream loader: every training shard is empty (" + ctx_.files.front() + ", ...)");
      file_ = (file_ + 1) % static_cast<int64_t>(ctx_.files.size());
      pos_ = 0;
      shard_.reset();
      open_current();
    }
  }

  void skip(int64_t n) {
    while (n > 0) {
      ensure_available();
      const int64_t k = std::min(n, shard_->size() - pos_);
      pos_ += k;
      n -= k;
    }
  }

  void copy(int64_t* dst, int64_t n) {
    while (n > 0) {
      ensure_available();
      const int64_t k = std::min(n, shard_->size() - pos_);
      const uint16_t* src = shard_->data() + pos_;
      for (int64_t i = 0; i < k; ++i) dst[i] = src[i];
      dst += k;
      pos_ += k;
      n -= k;
    }
  }

  LoaderContext ctx_;
  int64_t file_ = 0;  // index into ctx_.files of the shard the stream is in
  int64_t pos_ = 0;   // next unread token of that shard
  std::unique_ptr<ShardView> shard_;
};

}  // namespace

PGOLF_REGISTER(
    LoaderRegistry, "token_stream", Schema(),
    [](const Config&, const LoaderContext& ctx) -> std::shared_ptr<TrainLoader> {
      return std::make_shared<TokenStreamLoader>(ctx);
    },
    "one sequential stream over the sorted shards, each rank a contiguous slice (the challenge baseline)");

}  // namespace pgolf
