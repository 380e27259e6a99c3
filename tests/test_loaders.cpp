// Training loaders: token_stream (exact slices across shard boundaries and the wrap) and shuffled_sequences
// (contiguous rows, one use of every start per epoch, determinism, rank ownership, state/restore).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "framework/loader.h"
#include "framework/shard.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::shared_ptr<TrainLoader> make_loader(const std::string& name, const LoaderContext& ctx, Json keys = Json::object()) {
  const Schema* schema = SchemaCatalog::get().find("loader", name);
  if (!schema) throw std::runtime_error("loader " + name + " is not registered");
  Json cfg = Json{{"name", name}};
  const Json filled = schema->validate(keys, "data.loader", "test.json");  // named: items() must not outlive it
  for (auto& [k, v] : filled.items()) cfg[k] = v;
  return LoaderRegistry::get().build(Config(cfg, "data.loader"), ctx);
}

std::vector<int64_t> values(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// ---- token_stream ------------------------------------------------------------------------------------

// Stream value at stream index i: starts at 65530 so it passes 65535 -> 0 (uint16 read as unsigned).
int64_t sv(int64_t i) { return (65530 + i) % 65536; }

// Two shards: a = stream indices 0..6, b = 7..12 (13 tokens in all).
std::vector<std::string> stream_shards(const TempDir& d) {
  std::vector<uint16_t> a, b;
  for (int64_t i = 0; i < 7; ++i) a.push_back(static_cast<uint16_t>(sv(i)));
  for (int64_t i = 7; i < 13; ++i) b.push_back(static_cast<uint16_t>(sv(i)));
  write_shard(d.file("train_000000.bin"), a);
  write_shard(d.file("train_000001.bin"), b);
  return {d.file("train_000000.bin"), d.file("train_000001.bin")};
}

// world 2, T = 2, n = 4 tokens per rank: each next() takes 2 * 5 = 10 stream tokens.
LoaderContext stream_ctx(const std::vector<std::string>& files, int rank) {
  return LoaderContext{files, /*seq_len=*/2, /*local_tokens=*/4, rank, /*world=*/2, /*seed=*/0};
}

void expect_batch(const Batch& b, std::vector<int64_t> stream_idx) {
  // stream_idx: the 5 stream indices of this rank's slice.
  ASSERT_EQ(b.x.sizes(), torch::IntArrayRef({2, 2}));
  ASSERT_EQ(b.y.sizes(), torch::IntArrayRef({2, 2}));
  ASSERT_EQ(b.x.scalar_type(), torch::kInt64);
  std::vector<int64_t> x, y;
  for (int i = 0; i < 4; ++i) x.push_back(sv(stream_idx[i]));
  for (int i = 1; i < 5; ++i) y.push_back(sv(stream_idx[i]));
  EXPECT_EQ(values(b.x), x);
  EXPECT_EQ(values(b.y), y);
}

TEST(LoaderTokenStream, ExactSlicesAcrossShardBoundaryAndWrap) {
  TempDir d;
  const auto files = stream_shards(d);
  auto r0 = make_loader("token_stream", stream_ctx(files, 0));
  auto r1 = make_loader("token_stream", stream_ctx(files, 1));
  // take 1: stream 0..9. rank 1's slice 5..9 crosses the a/b boundary at 7.
  expect_batch(r0->next(), {0, 1, 2, 3, 4});
  expect_batch(r1->next(), {5, 6, 7, 8, 9});
  // take 2: 10, 11, 12, then wrap to 0..6. rank 0's slice wraps.
  expect_batch(r0->next(), {10, 11, 12, 0, 1});
  expect_batch(r1->next(), {2, 3, 4, 5, 6});
  // take 3: 7..12, 0..3. rank 1's slice wraps inside.
  expect_batch(r0->next(), {7, 8, 9, 10, 11});
  expect_batch(r1->next(), {12, 0, 1, 2, 3});
}

TEST(LoaderTokenStream, UnsignedValuesAndYIsXShifted) {
  TempDir d;
  const auto files = stream_shards(d);
  auto r0 = make_loader("token_stream", stream_ctx(files, 0));
  Batch b = r0->next();
  // Hand values: stream 0..4 = 65530..65534.
  EXPECT_EQ(values(b.x), (std::vector<int64_t>{65530, 65531, 65532, 65533}));
  EXPECT_EQ(values(b.y), (std::vector<int64_t>{65531, 65532, 65533, 65534}));
}

TEST(LoaderTokenStream, StateAndRestoreContinueExactly) {
  TempDir d;
  const auto files = stream_shards(d);
  auto a = make_loader("token_stream", stream_ctx(files, 1));
  EXPECT_EQ(a->state(), (Json{{"file", 0}, {"pos", 0}}));
  a->next();
  // 10 tokens taken: all 7 of a and 3 of b.
  EXPECT_EQ(a->state(), (Json{{"file", 1}, {"pos", 3}}));
  const Json saved = a->state();
  std::vector<Batch> expected;
  for (int i = 0; i < 4; ++i) expected.push_back(a->next());

  auto b = make_loader("token_stream", stream_ctx(files, 1));
  b->restore(saved);
  for (int i = 0; i < 4; ++i) {
    Batch got = b->next();
    EXPECT_TRUE(torch::equal(got.x, expected[i].x)) << "batch " << i;
    EXPECT_TRUE(torch::equal(got.y, expected[i].y)) << "batch " << i;
  }
  // Restoring the same loader rewinds it too.
  a->restore(saved);
  EXPECT_TRUE(torch::equal(a->next().x, expected[0].x));
}

TEST(LoaderTokenStream, BadStateAndBatchShapeAreRejected) {
  TempDir d;
  const auto files = stream_shards(d);
  auto a = make_loader("token_stream", stream_ctx(files, 0));
  try {
    a->restore(Json{{"file", 5}, {"pos", 0}});
    FAIL() << "expected an error for a shard index past the list";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("shard index 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(a->restore(Json{{"file", 1}, {"pos", 7}}), std::runtime_error);  // b holds 6 tokens
  EXPECT_THROW(a->restore(Json{{"rows", 1}}), std::runtime_error);

  LoaderContext bad = stream_ctx(files, 0);
  bad.local_tokens = 5;  // not a multiple of seq_len 2
  try {
    make_loader("token_stream", bad);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("data.batch_tokens"), std::string::npos) << m;
    EXPECT_NE(m.find("data.seq_len"), std::string::npos) << m;
  }
}

// ---- shuffled_sequences --------------------------------------------------------------------------------

constexpr int64_t kT = 4;

// Shard s holds values s*1000 + i, so a token tells its shard and offset. Sizes are multiples of T, which
// makes the per-epoch start count N/T - 1 whatever the random phase: 9, 8, 6, 5 starts.
std::vector<std::string> seq_shards(const TempDir& d, std::vector<int64_t> sizes = {40, 36, 28, 24}) {
  std::vector<std::string> files;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<uint16_t> t;
    for (int64_t i = 0; i < sizes[s]; ++i) t.push_back(static_cast<uint16_t>(s * 1000 + i));
    files.push_back(d.file("train_00000" + std::to_string(s) + ".bin"));
    write_shard(files.back(), t);
  }
  return files;
}

LoaderContext seq_ctx(const std::vector<std::string>& files, int rank, int rows, uint64_t seed = 7) {
  return LoaderContext{files, kT, rows * kT, rank, /*world=*/2, seed};
}

struct Row {
  int64_t shard, start;
};

// Checks each row is a contiguous slice with y = x shifted by one, and returns where it came from.
std::vector<Row> rows_of(const Batch& b, const std::vector<int64_t>& sizes) {
  std::vector<Row> out;
  auto x = b.x.accessor<int64_t, 2>();
  auto y = b.y.accessor<int64_t, 2>();
  for (int64_t r = 0; r < b.x.size(0); ++r) {
    const int64_t shard = x[r][0] / 1000, start = x[r][0] % 1000;
    EXPECT_LT(shard, static_cast<int64_t>(sizes.size()));
    EXPECT_LE(start + kT + 1, sizes[shard]) << "row reads past the shard end";
    for (int64_t t = 0; t < kT; ++t) {
      EXPECT_EQ(x[r][t], shard * 1000 + start + t);
      EXPECT_EQ(y[r][t], shard * 1000 + start + t + 1);
    }
    out.push_back({shard, start});
  }
  return out;
}

TEST(LoaderShuffledSequences, RowsAreContiguousSlicesOfTheRanksOwnShards) {
  TempDir d;
  const std::vector<int64_t> sizes = {40, 36, 29, 27};  // odd sizes too: rows must still fit
  const auto files = seq_shards(d, sizes);
  for (int rank : {0, 1}) {
    auto l = make_loader("shuffled_sequences", seq_ctx(files, rank, 3));
    std::set<int64_t> shards;
    for (int i = 0; i < 40; ++i) {
      Batch b = l->next();
      ASSERT_EQ(b.x.sizes(), torch::IntArrayRef({3, kT}));
      for (const Row& r : rows_of(b, sizes)) {
        EXPECT_EQ(r.shard % 2, rank) << "rank " << rank << " read shard " << r.shard;
        shards.insert(r.shard);
      }
    }
    // Both owned shards get used (rank 0: 0 and 2; rank 1: 1 and 3).
    EXPECT_EQ(shards, (std::set<int64_t>{rank, rank + 2}));
  }
}

TEST(LoaderShuffledSequences, EveryStartUsedOncePerEpoch) {
  TempDir d;
  const std::vector<int64_t> sizes = {40, 36, 28, 24};
  const auto files = seq_shards(d, sizes);
  // Rank 0 owns shards 0 (40 tokens: 9 starts) and 2 (28 tokens: 6 starts): 15 rows per epoch.
  auto l = make_loader("shuffled_sequences", seq_ctx(files, 0, 1));
  std::map<int64_t, std::set<int64_t>> phases;
  for (int epoch = 0; epoch < 20; ++epoch) {
    std::map<int64_t, std::vector<int64_t>> starts;
    for (int i = 0; i < 15; ++i) {
      Row r = rows_of(l->next(), sizes)[0];
      starts[r.shard].push_back(r.start);
    }
    ASSERT_EQ(starts.size(), 2u) << "epoch " << epoch;
    for (auto& [shard, st] : starts) {
      const int64_t count = sizes[shard] / kT - 1;
      ASSERT_EQ(static_cast<int64_t>(st.size()), count) << "epoch " << epoch << " shard " << shard;
      const int64_t phase = *std::min_element(st.begin(), st.end());
      EXPECT_LT(phase, kT);
      std::set<int64_t> expect, got(st.begin(), st.end());
      for (int64_t k = 0; k < count; ++k) expect.insert(phase + k * kT);
      EXPECT_EQ(got, expect) << "epoch " << epoch << " shard " << shard;
      phases[shard].insert(phase);
    }
  }
  // Phases are drawn afresh each epoch (fixed seed: this is deterministic, not flaky).
  EXPECT_GT(phases[0].size(), 1u);
  EXPECT_GT(phases[2].size(), 1u);
}

TEST(LoaderShuffledSequences, ShardPickedInProportionToRemainingStarts) {
  TempDir d;
  const std::vector<int64_t> sizes = {40, 36, 28, 24};
  const auto files = seq_shards(d, sizes);
  // The first row of an epoch comes from shard 0 with probability 9/15 = 0.6 (a pick uniform over
  // shards would give 0.5). 2000 epochs: standard error 0.011.
  auto l = make_loader("shuffled_sequences", seq_ctx(files, 0, 15));
  int from0 = 0;
  const int epochs = 2000;
  for (int e = 0; e < epochs; ++e) {
    Batch b = l->next();
    if (b.x[0][0].item<int64_t>() / 1000 == 0) ++from0;
  }
  EXPECT_NEAR(static_cast<double>(from0) / epochs, 0.6, 0.04);
}

TEST(LoaderShuffledSequences, DeterministicPerSeedSourceAndRank) {
  TempDir d;
  const auto files = seq_shards(d);
  auto run = [&](int rank, uint64_t seed, const std::string& source) {
    auto l = make_loader("shuffled_sequences", seq_ctx(files, rank, 2, seed), Json{{"seed_source", source}});
    std::vector<int64_t> all;
    for (int i = 0; i < 12; ++i) {
      auto v = values(l->next().x);
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  EXPECT_EQ(run(0, 7, "rank"), run(0, 7, "rank"));
  EXPECT_EQ(run(0, 7, "rank"), run(0, 99, "rank"));  // "rank": the run seed does not matter
  EXPECT_EQ(run(0, 7, "run"), run(0, 7, "run"));
  EXPECT_NE(run(0, 7, "run"), run(0, 99, "run"));
  EXPECT_NE(run(0, 7, "rank"), run(1, 7, "rank"));
}

TEST(LoaderShuffledSequences, StateAndRestoreContinueExactlyAcrossEpochs) {
  TempDir d;
  const auto files = seq_shards(d);
  for (const std::string source : {"rank", "run"}) {
    auto a = make_loader("shuffled_sequences", seq_ctx(files, 1, 2), Json{{"seed_source", source}});
    for (int i = 0; i < 5; ++i) a->next();
    const Json saved = a->state();
    EXPECT_EQ(saved, (Json{{"rows", 10}}));
    std::vector<Batch> expected;
    for (int i = 0; i < 20; ++i) expected.push_back(a->next());  // 40 rows: several 13-row epochs

    auto b = make_loader("shuffled_sequences", seq_ctx(files, 1, 2), Json{{"seed_source", source}});
    b->next();  // a state is absolute: what b did before restore does not matter
    b->restore(saved);
    for (int i = 0; i < 20; ++i) {
      Batch got = b->next();
      EXPECT_TRUE(torch::equal(got.x, expected[i].x)) << source << " batch " << i;
      EXPECT_TRUE(torch::equal(got.y, expected[i].y)) << source << " batch " << i;
    }
    // Rows 0 rewinds to the first batch.
    auto c = make_loader("shuffled_sequences", seq_ctx(files, 1, 2), Json{{"seed_source", source}});
    Batch first = c->next();
    a->restore(Json{{"rows", 0}});
    EXPECT_TRUE(torch::equal(a->next().x, first.x));
  }
}

TEST(LoaderShuffledSequences, RankWithoutShardIsAnError) {
  TempDir d;
  const auto files = seq_shards(d);  // 4 shards
  LoaderContext ctx{files, kT, kT, /*rank=*/5, /*world=*/8, 0};
  try {
    make_loader("shuffled_sequences", ctx);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 5 owns no shard"), std::string::npos) << e.what();
  }
  try {
    make_loader("shuffled_sequences", seq_ctx(files, 0, 1), Json{{"seed_source", "clock"}});
    FAIL() << "expected a ConfigError for an unknown seed_source";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.loader.seed_source"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgolf
