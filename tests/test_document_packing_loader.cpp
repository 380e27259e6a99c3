// Loader "document_packing" (spec §3.2): entering a shard at its first BOS, contiguous (1, n) rows, the
// rank's slice of the world span, dropping a tail that does not fit, the wrap, state/restore, and
// cu_seqlens (BOS positions, documents cut into pieces of at most seq_len, padding with the end value).
#include <gtest/gtest.h>


#include <filesystem>

#include "framework/loader.h"
#include "framework/shard.h"
#include "tests/test_support.h"

namespace pgolf {

torch::Tensor packed_cu_seqlens(const int64_t* x, int64_t n, int64_t bos_id, int64_t max_len, int64_t pad);

namespace {

namespace fs = std::filesystem;

using Ints = std::vector<int64_t>;

Ints values(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  return Ints(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

struct Shards {
  testing::TempDir tmp{"docpack"};
  fs::path dir = tmp.path;
  std::vector<std::string> files;
  Shards() {
    // Shard A: first BOS at 2. Shard B: first BOS at 3.
    files.push_back((dir / "train_000000.bin").string());
    write_shard(files[0], {5, 5, 1, 10, 11, 12, 1, 20, 21, 22, 23, 24, 25, 1, 30, 31, 32, 33});
    files.push_back((dir / "train_000001.bin").string());
    write_shard(files[1], {7, 7, 7, 1, 40, 41, 42, 43, 44, 45, 1, 50});
  }
};

std::shared_ptr<TrainLoader> loader(const std::vector<std::string>& files, int rank, int world, int64_t pad = 8) {
  const Json filled = SchemaCatalog::get().find("loader", "document_packing")->validate(Json{{"cu_seqlens_pad", pad}}, "l", "t");
  Json cfg = Json{{"name", "document_packing"}};
  for (auto& [k, v] : filled.items()) cfg[k] = v;
  LoaderContext ctx{files, /*seq_len=*/3, /*local_tokens=*/6, rank, world, /*seed=*/0};
  return LoaderRegistry::get().build(Config(cfg, "data.loader"), ctx);
}

TEST(PackedCuSeqlens, BosStartsPiecesAndPadding) {
  const Ints x = {3, 1, 1, 5, 6, 7, 8, 9, 1};
  // Documents [0,1) [1,2) [2,8) [8,9); [2,8) in pieces of at most 2.
  EXPECT_EQ(values(packed_cu_seqlens(x.data(), 9, 1, 2, 1)), (Ints{0, 1, 2, 4, 6, 8, 9}));
  EXPECT_EQ(values(packed_cu_seqlens(x.data(), 9, 1, 100, 4)), (Ints{0, 1, 2, 8, 9, 9, 9, 9}));
  EXPECT_EQ(packed_cu_seqlens(x.data(), 9, 1, 2, 1).scalar_type(), torch::kInt32);
}

TEST(DocumentPackingLoader, RowsFromTheFirstBosThroughShardsAndTheWrap) {
  Shards s;
  auto l = loader(s.files, 0, 1);
  Batch b = l->next();  // tokens [2, 9) of A
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{1, 6}));
  EXPECT_EQ(values(b.x), (Ints{1, 10, 11, 12, 1, 20}));
  EXPECT_EQ(values(b.y), (Ints{10, 11, 12, 1, 20, 21}));
  EXPECT_EQ(values(b.cu_seqlens), (Ints{0, 3, 4, 6, 6, 6, 6, 6}));  // [0,4) cut at 3, then [4,6), padded to 8
  EXPECT_EQ(b.max_seqlen, 3);
  const Json after_first = l->state();
  b = l->next();  // tokens [9, 16) of A
  EXPECT_EQ(values(b.x), (Ints{22, 23, 24, 25, 1, 30}));
  EXPECT_EQ(values(b.y), (Ints{23, 24, 25, 1, 30, 31}));
  b = l->next();  // 16 + 7 > 18: A's tail is dropped, B is entered at its first BOS (3)
  EXPECT_EQ(values(b.x), (Ints{1, 40, 41, 42, 43, 44}));
  EXPECT_EQ(values(b.cu_seqlens), (Ints{0, 3, 6, 6, 6, 6, 6, 6}));
  b = l->next();  // wraps to A
  EXPECT_EQ(values(b.x), (Ints{1, 10, 11, 12, 1, 20}));

  auto again = loader(s.files, 0, 1);
  again->restore(after_first);
  EXPECT_EQ(values(again->next().x), (Ints{22, 23, 24, 25, 1, 30}));
}

TEST(DocumentPackingLoader, EachRankTakesItsSliceOfTheWorldSpan) {
  Shards s;
  auto r0 = loader(s.files, 0, 2), r1 = loader(s.files, 1, 2);
  EXPECT_EQ(values(r0->next().x), (Ints{1, 10, 11, 12, 1, 20}));
  Batch b1 = r1->next();
  EXPECT_EQ(values(b1.x), (Ints{22, 23, 24, 25, 1, 30}));
  EXPECT_EQ(values(b1.cu_seqlens), (Ints{0, 3, 4, 6, 6, 6, 6, 6}));
  // The next 14-token span fits neither A's rest nor B (17 > 12): the walk wraps to A.
  EXPECT_EQ(values(r0->next().x), (Ints{1, 10, 11, 12, 1, 20}));
  // A world span longer than every shard is refused with the numbers.
  auto too_wide = loader(s.files, 0, 3);
  try {
    too_wide->next();
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("21 tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgolf
