// Loader "shuffled_sequences": #1755's ShuffledSequenceLoader (spec training §3.2). Rank r owns shards
// r, r+world, ...; each shard gets a random phase and its seq_len-spaced starts in random order; every row
// picks a shard with probability proportional to its remaining starts and pops that shard's last start.
// When every owned shard is used up, all get new phases and permutations from the continuing generator.
//
// The generator is std::mt19937_64 (its output sequence is fixed by the C++ standard) with our own unbiased
// bounded draws, so batches are identical on every platform; numpy's PCG64 bit stream is not reproduced.
#include <memory>
#include <random>
#include <stdexcept>

#include "framework/loader.h"
#include "framework/shard.h"

namespace pgolf {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

class ShuffledSequenceLoader : public TrainLoader {
 public:
  ShuffledSequenceLoader(const Config& cfg, const LoaderContext& ctx) : ctx_(ctx) {
    const int64_t T = ctx.seq_len;
    if (T <= 0 || ctx.local_tokens <= 0 || ctx.local_tokens % T != 0)
      throw ConfigError(cfg.path() + " shuffled_sequences: tokens per rank per micro-step (" +
                        std::to_string(ctx.local_tokens) + " = data.batch_tokens / data.micro_batches) must be "
                        "a positive multiple of data.seq_len (" + std::to_string(T) + ")");
    if (ctx.world <= 0 || ctx.rank < 0 || ctx.rank >= ctx.world)
      throw std::runtime_error("shuffled_sequences loader: rank " + std::to_string(ctx.rank) +
                               " is outside world size " + std::to_string(ctx.world));
    if (static_cast<int64_t>(ctx.files.size()) <= ctx.rank)
      throw ConfigError(cfg.path() + " shuffled_sequences: rank " + std::to_string(ctx.rank) + " owns no shard: " +
                        std::to_string(ctx.files.size()) + " training shards for " + std::to_string(ctx.world) +
                        " ranks (each rank needs at least one; use more shards or the token_stream loader)");
    for (size_t i = static_cast<size_t>(ctx.rank); i < ctx.files.size(); i += static_cast<size_t>(ctx.world))
      shards_.push_back(Shard{std::make_unique<ShardView>(ctx.files[i]), {}});
    // "rank" reproduces the reference, which seeds by rank alone so every run sees the same order.
    seed_ = cfg.s("seed_source") == "rank" ? static_cast<uint64_t>(ctx.rank)
                                           : splitmix64(splitmix64(ctx.seed) + static_cast<uint64_t>(ctx.rank));
    start_over();
    int64_t total = 0;
    for (const auto& s : shards_) total += static_cast<int64_t>(s.starts.size());
    if (total == 0)
      throw std::runtime_error("shuffled_sequences loader: rank " + std::to_string(ctx.rank) + "'s shards (" +
                               shards_.front().view->path() + ", ...) each hold fewer than seq_len + 1 = " +
                               std::to_string(T + 1) + " tokens");
  }

  Batch next() override {
    const int64_t T = ctx_.seq_len, rows = ctx_.local_tokens / T;
    auto x = torch::empty({rows, T}, torch::kInt64), y = torch::empty({rows, T}, torch::kInt64);
    int64_t* px = x.data_ptr<int64_t>();
    int64_t* py = y.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const auto [shard, start] = draw();
      const uint16_t* src = shards_[shard].view->data() + start;
      for (int64_t t = 0; t < T; ++t) {
        px[r * T + t] = src[t];
        py[r * T + t] = src[t + 1];
      }
    }
    return Batch{x, y};
  }

  // The state is the number of rows drawn; restore replays the draws (no token reads), which is cheap and
  // keeps the state tiny. Every rank draws the same number of rows, so one rank's state fits all ranks.
  Json state() const override { return Json{{"rows", rows_drawn_}}; }

  void restore(const Json& s) override {
    if (!s.is_object() || !s.contains("rows") || !s["rows"].is_number_integer() || s["rows"].get<int64_t>() < 0)
      throw std::runtime_error("shuffled_sequences loader: cannot restore from " + s.dump() +
                               "; expected {\"rows\": <rows drawn so far>}");
    const int64_t rows = s["rows"].get<int64_t>();
    start_over();
    for (int64_t i = 0; i < rows; ++i) draw();
  }

 private:
  struct Shard {
    std::unique_ptr<ShardView> view;
    std::vector<int64_t> starts;  // remaining starts; rows pop from the back
  };

  // Uniform in [0, n) without modulo bias: reject the 2^64 mod n lowest outputs.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    while (true) {
      const uint64_t v = rng_();
      if (v >= threshold) return v % n;
    }
  }

  void start_over() {
    rng_.seed(seed_);
    rows_drawn_ = 0;
    reset_all();
  }

  void reset_all() {
    const int64_t T = ctx_.seq_len;
    for (auto& s : shards_) {
      s.starts.clear();
      const int64_t n = s.view->size();
      if (n < T + 1) continue;  // too short for one sequence: never picked
      const int64_t phase = static_cast<int64_t>(below(static_cast<uint64_t>(std::min(T - 1, n - T - 1) + 1)));
      const int64_t count = (n - 1 - phase) / T;
      s.starts.resize(static_cast<size_t>(count));
      for (int64_t k = 0; k < count; ++k) s.starts[static_cast<size_t>(k)] = phase + k * T;
      for (int64_t i = count - 1; i > 0; --i)  // Fisher-Yates
        std::swap(s.starts[static_cast<size_t>(i)], s.starts[below(static_cast<uint64_t>(i + 1))]);
    }
    remaining_ = 0;
    for (const auto& s : shards_) remaining_ += static_cast<int64_t>(s.starts.size());
  }

  std::pair<size_t, int64_t> draw() {
    if (remaining_ == 0) reset_all();
    int64_t u = static_cast<int64_t>(below(static_cast<uint64_t>(remaining_)));
    size_t i = 0;
    while (u >= static_cast<int64_t>(shards_[i].starts.size())) u -= static_cast<int64_t>(shards_[i++].starts.size());
    const int64_t start = shards_[i].starts.back();
    shards_[i].starts.pop_back();
    --remaining_;
    ++rows_drawn_;
    return {i, start};
  }

  LoaderContext ctx_;
  std::vector<Shard> shards_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  int64_t remaining_ = 0;
  int64_t rows_drawn_ = 0;
};

Schema shuffled_schema() {
  Schema s;
  s.choice("seed_source", "rank", {"rank", "run"},
           "what seeds the data order: the rank alone (as the reference) or the run seed and the rank");
  return s;
}

}  // namespace

PGOLF_REGISTER(
    LoaderRegistry, "shuffled_sequences", shuffled_schema(),
    [](const Config& cfg, const LoaderContext& ctx) -> std::shared_ptr<TrainLoader> {
      return std::make_shared<ShuffledSequenceLoader>(cfg, ctx);
    },
    "random seq_len windows from the rank's own shards, sampled without replacement per epoch (#1755)");

}  // namespace pgolf
