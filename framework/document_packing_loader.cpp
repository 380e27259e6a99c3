// Loader "document_packing": A2's DocumentPackingLoader (spec training §3.2). Every rank walks all shards
// in sorted order, unshuffled; a shard is entered at its first BOS. Each next() takes world*(n+1)
// contiguous tokens (n = local_tokens) and rank r keeps the r-th (n+1)-slice as one row: x = slice[:-1],
// y = slice[1:], shape (1, n). A span that does not fit in the rest of the shard drops that tail and moves
// on to the next shard (wrapping after the last).
//
// cu_seqlens marks the documents of x: 0, every BOS position, with each document cut into pieces of at
// most seq_len tokens, then n; padded with n to a multiple of `cu_seqlens_pad` entries (a fixed set of
// shapes for compiled kernels; the padding segments are empty). max_seqlen = seq_len. A document's last
// token still predicts the next BOS (that target is in y and counted in the loss).
#include <algorithm>
#include <memory>
#include <stdexcept>

#include "framework/loader.h"
#include "framework/shard.h"

namespace pgolf {

// Exposed for tests: cu_seqlens of one packed row (see above).
torch::Tensor packed_cu_seqlens(const int64_t* x, int64_t n, int64_t bos_id, int64_t max_len, int64_t pad) {
  std::vector<int32_t> cu{0};
  int64_t start = 0;
  auto close = [&](int64_t end) {  // the document [start, end) in pieces of at most max_len
    for (int64_t p = start + max_len; p < end; p += max_len) cu.push_back(static_cast<int32_t>(p));
    if (end > start) cu.push_back(static_cast<int32_t>(end));
    start = end;
  };
  for (int64_t p = 1; p < n; ++p)
    if (x[p] == bos_id) close(p);
  close(n);
  if (n == 0) cu.push_back(0);
  while (pad > 1 && cu.size() % static_cast<size_t>(pad) != 0) cu.push_back(static_cast<int32_t>(n));
  return torch::tensor(cu, torch::kInt32);
}

namespace {

class DocumentPackingLoader : public TrainLoader {
 public:
  DocumentPackingLoader(const Config& cfg, const LoaderContext& ctx)
      : ctx_(ctx), bos_(cfg.i("bos_id")), pad_(cfg.i("cu_seqlens_pad")) {
    if (ctx.files.empty()) throw ConfigError(cfg.path() + " document_packing: no training shards (check data.train)");
    if (ctx.seq_len <= 0 || ctx.local_tokens <= 0)
      throw ConfigError(cfg.path() + " document_packing: data.seq_len and the tokens per micro-batch must be positive");
    if (ctx.world <= 0 || ctx.rank < 0 || ctx.rank >= ctx.world)
      throw std::runtime_error("document_packing loader: rank " + std::to_string(ctx.rank) + " is outside world size " +
                               std::to_string(ctx.world));
    if (ctx.local_tokens + 1 > (int64_t{1} << 31) / ctx.world)
      throw ConfigError(cfg.path() + " document_packing: " + std::to_string(ctx.local_tokens) +
                        " tokens per micro-batch do not fit int32 cu_seqlens");
    enter(0);
  }

  Batch next() override {
    const int64_t n = ctx_.local_tokens, span = ctx_.world * (n + 1);
    if (pos_ + span > shard_->size()) advance(span);
    auto out = torch::empty({n + 1}, torch::kInt64);
    int64_t* dst = out.data_ptr<int64_t>();
    const uint16_t* src = shard_->data() + pos_ + ctx_.rank * (n + 1);
    for (int64_t i = 0; i <= n; ++i) dst[i] = src[i];
    pos_ += span;
    Batch b{out.slice(0, 0, n).view({1, n}), out.slice(0, 1, n + 1).view({1, n})};
    b.cu_seqlens = packed_cu_seqlens(dst, n, bos_, ctx_.seq_len, pad_);
    b.max_seqlen = ctx_.seq_len;
    return b;
  }

  Json state() const override { return Json{{"file", file_}, {"pos", pos_}}; }

  void restore(const Json& s) override {
    if (!s.is_object() || !s.contains("file") || !s.contains("pos") || !s["file"].is_number_integer() ||
        !s["pos"].is_number_integer())
      throw std::runtime_error("document_packing loader: cannot restore from " + s.dump() +
                               "; expected {\"file\": <shard index>, \"pos\": <token offset>}");
    const int64_t file = s["file"].get<int64_t>(), pos = s["pos"].get<int64_t>();
    if (file < 0 || file >= static_cast<int64_t>(ctx_.files.size()))
      throw std::runtime_error("document_packing loader: saved shard index " + std::to_string(file) + " is outside the " +
                               std::to_string(ctx_.files.size()) + " training shards (was the data.train glob changed?)");
    enter(file);
    if (pos < 0 || pos > shard_->size())
      throw std::runtime_error("document_packing loader: saved position " + std::to_string(pos) + " is outside " +
                               shard_->path() + " (" + std::to_string(shard_->size()) + " tokens)");
    pos_ = pos;
  }

 private:
  // Opens shard `file` with the cursor at its first BOS (its end if it has none).
  void enter(int64_t file) {
    file_ = file;
    shard_ = std::make_unique<ShardView>(ctx_.files[static_cast<size_t>(file)]);
    const uint16_t* d = shard_->data();
    pos_ = std::find(d, d + shard_->size(), static_cast<uint16_t>(bos_)) - d;
  }

  // Moves to the next shard (wrapping) that holds a whole span after its first BOS.
  void advance(int64_t span) {
    for (size_t tried = 0; tried < ctx_.files.size(); ++tried) {
      enter((file_ + 1) % static_cast<int64_t>(ctx_.files.size()));
      if (pos_ + span <= shard_->size()) return;
    }
    throw std::runtime_error("document_packing loader: no training shard holds " + std::to_string(span) +
                             " tokens (world x (tokens per micro-batch + 1)) after its first BOS (id " +
                             std::to_string(bos_) + "); use fewer batch tokens or more data (" + ctx_.files.front() +
                             ", ...)");
  }

  LoaderContext ctx_;
  int64_t bos_, pad_;
  int64_t file_ = 0, pos_ = 0;
  std::unique_ptr<ShardView> shard_;
};

Schema schema() {
  Schema s;
  s.integer("bos_id", kBosId, 0, 65535, "the token that starts every document")
      .integer("cu_seqlens_pad", 64, 1, 1 << 20, "pad cu_seqlens with its end value to a multiple of this many entries");
  return s;
}

}  // namespace

PGOLF_REGISTER(
    LoaderRegistry, "document_packing", schema(),
    [](const Config& cfg, const LoaderContext& ctx) -> std::shared_ptr<TrainLoader> {
      return std::make_shared<DocumentPackingLoader>(cfg, ctx);
    },
    "contiguous rows over all shards in order, with cu_seqlens for document-isolated attention (A2)");

}  // namespace pgolf
