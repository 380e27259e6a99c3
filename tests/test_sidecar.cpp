// Byte accounting with sidecars (spec posttrain §3.3, §8.3): sidecar names, the registered "sidecar"
// counter indexing the sidecar at target positions (checked through the full evaluator against a hand
// sum), its refusals, and the "lut" counter refusing a CaseOps tokenizer.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/eval.h"
#include "framework/io.h"
#include "framework/shard.h"
#include "tokenizers/caseops.h"
#include "tokenizers/sidecar.h"
#include "tokenizers/train_sentencepiece.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

using pgolf::testing::TempDir;

std::shared_ptr<pgolf::ByteCounter> build(const std::string& name, const pgolf::ByteCounterContext& ctx) {
  pgolf::Schema eval;
  eval.component("byte_counter", "byte_counter", "lut", "counter");
  const auto section = eval.validate(pgolf::Json{{"byte_counter", {{"name", name}}}}, "eval", "r.json");
  return pgolf::ByteCounterRegistry::get().build(pgolf::Config(section["byte_counter"], "eval.byte_counter"), ctx);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST(Sidecar, NamesBesideTheValShards) {
  EXPECT_EQ(pgolf::sidecar_path_for("d/fineweb_val_000003.bin"), "d/fineweb_val_bytes_000003.bin");
  EXPECT_EQ(pgolf::sidecar_path_for("t_val_000000.bin"), "t_val_bytes_000000.bin");
  EXPECT_THROW(pgolf::sidecar_path_for("d_1/val.bin"), std::runtime_error);
  EXPECT_THROW(pgolf::sidecar_path_for("d/val_12x.bin"), std::runtime_error);
  EXPECT_THROW(pgolf::sidecar_path_for("d/val_000001.txt"), std::runtime_error);
}

// Tokens [1 5 6 7 | 1 8 9] [10 | 1 11 12] in two shards; bytes [0 3 1 2 0 4 5] [6 0 7 8].
struct TwoShards {
  TempDir dir;
  std::vector<std::string> val;
  TwoShards() {
    val = {dir.path + "/t_val_000000.bin", dir.path + "/t_val_000001.bin"};
    pgolf::write_shard(val[0], {1, 5, 6, 7, 1, 8, 9});
    pgolf::write_shard(val[1], {10, 1, 11, 12});
    pgolf::write_shard(dir.path + "/t_val_bytes_000000.bin", {0, 3, 1, 2, 0, 4, 5});
    pgolf::write_shard(dir.path + "/t_val_bytes_000001.bin", {6, 0, 7, 8});
  }
};

TEST(Sidecar, CounterIndexesTheSidecarAtTargetPositions) {
  TwoShards s;
  pgolf::ByteCounterContext ctx;
  ctx.tokenizer_path = s.dir.path + "/none.model";  // optional for this counter
  ctx.val_files = s.val;
  auto counter = build("sidecar", ctx);
  const auto* side = dynamic_cast<const pgolf::SidecarByteCounter*>(counter.get());
  ASSERT_NE(side, nullptr);
  EXPECT_EQ(side->size(), 11);
  EXPECT_EQ(side->total(), 36);
  EXPECT_EQ(counter->tokenizer_vocab_size(), 0);
  // Targets at positions 1, 2, 7, 10 (the second shard continues the stream): 3, 1, 6, 8.
  auto pos = torch::tensor({1, 2, 7, 10}, torch::kInt64);
  auto ids = torch::zeros({4}, torch::kInt64);  // ids play no part
  auto b = counter->target_bytes(ids, ids, pos);
  EXPECT_EQ(b.scalar_type(), torch::kFloat64);
  EXPECT_EQ(b.sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(std::vector<double>(b.data_ptr<double>(), b.data_ptr<double>() + 4), (std::vector<double>{3, 1, 6, 8}));
  auto b2 = counter->target_bytes(ids.view({2, 2}), ids.view({2, 2}), pos.view({2, 2}));
  EXPECT_EQ(b2.sizes(), (std::vector<int64_t>{2, 2}));
  const std::string m = error_of([&] { counter->target_bytes(ids.slice(0, 0, 1), ids.slice(0, 0, 1), torch::tensor({11})); });
  EXPECT_NE(m.find("target position 11 is outside the sidecar [0, 11)"), std::string::npos) << m;
}

struct ZeroModel : pgolf::LanguageModel {
  using pgolf::LanguageModel::token_nll;
  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) override {
    return torch::full(x.sizes(), 0.5, torch::kFloat32);
  }
  int64_t vocab_size() const override { return 16; }
};

TEST(Sidecar, FullEvaluatorCountsTheBytesOfItsTargets) {
  // seq_len 3: the 11-token stream is cut to 10 = 3*3 + 1; targets are positions 1..9, whose bytes are
  // 3+1+2+0+4+5+6+0+7 = 28.
  TwoShards s;
  pgolf::ByteCounterContext ctx;
  ctx.val_files = s.val;
  auto counter = build("sidecar", ctx);
  const auto val = pgolf::load_val_stream(s.val, 3, 0);
  ASSERT_EQ(val.tokens.numel(), 10);
  auto evaluator = pgolf::EvaluatorRegistry::get().build(pgolf::Config(pgolf::Json{{"name", "full"}}, "eval.evaluator"));
  ZeroModel model;
  pgolf::EvalContext ectx;
  ectx.seq_len = 3;
  ectx.batch_tokens = 6;
  const auto r = evaluator->evaluate(model, val, *counter, ectx);
  EXPECT_EQ(r.tokens, 9);
  EXPECT_EQ(r.bytes, 28);
  EXPECT_DOUBLE_EQ(r.loss_sum, 4.5);
}

TEST(Sidecar, MissingMisalignedOrForeignSidecarsAreRefused) {
  TwoShards s;
  pgolf::ByteCounterContext ctx;
  ctx.val_files = s.val;
  fs::remove(s.dir.path + "/t_val_bytes_000001.bin");
  std::string m = error_of([&] { build("sidecar", ctx); });
  EXPECT_NE(m.find(s.dir.path + "/t_val_bytes_000001.bin"), std::string::npos) << m;
  EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
  EXPECT_NE(m.find("prepare --sidecar"), std::string::npos) << m;

  pgolf::write_shard(s.dir.path + "/t_val_bytes_000001.bin", {6, 0, 7});
  m = error_of([&] { build("sidecar", ctx); });
  EXPECT_NE(m.find("has 3 entries but"), std::string::npos) << m;
  EXPECT_NE(m.find("has 4 tokens"), std::string::npos) << m;

  pgolf::write_shard(s.dir.path + "/t_val_bytes_000001.bin", {6, 2, 7, 8});  // 2 where the BOS is
  m = error_of([&] { build("sidecar", ctx); });
  EXPECT_NE(m.find("entry 1 is 2"), std::string::npos) << m;
  EXPECT_NE(m.find("does not belong to these tokens"), std::string::npos) << m;
}

TEST(Sidecar, LutRefusesACaseOpsTokenizerAndSidecarAcceptsIt) {
  TempDir dir;
  std::string corpus;
  const char* words[] = {"The", "NASA", "iPhone", "model", "Data", "of", "the", "I", "McDonald"};
  uint32_t x = 5;
  for (int line = 0; line < 1500; ++line) {
    for (int w = 0; w < 8; ++w) {
      x = x * 1103515245u + 12345u;
      corpus += std::string(w ? " " : "") + words[(x >> 16) % 9];
    }
    corpus += ".\n";
  }
  pgolf::write_file_atomic(dir.path + "/c.txt", corpus);
  pgolf::SpTrainOptions opt;
  opt.transform = [](std::string_view s) { return pgolf::caseops_encode(s); };
  for (char32_t op : {pgolf::caseops::kTitle, pgolf::caseops::kAllCaps, pgolf::caseops::kCapNext, pgolf::caseops::kEsc})
    opt.user_defined_symbols.push_back(pgolf::caseops::utf8(op));
  pgolf::train_sentencepiece({dir.path + "/c.txt"}, 300, dir.path + "/co", 1, opt);

  TwoShards s;
  pgolf::ByteCounterContext ctx;
  ctx.tokenizer_path = dir.path + "/co.model";
  ctx.val_files = s.val;
  ctx.vocab_size = 300;
  try {
    build("lut", ctx);
    ADD_FAILURE() << "no error";
  } catch (const pgolf::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("is a CaseOps tokenizer"), std::string::npos) << m;
    EXPECT_NE(m.find("3 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("\"sidecar\""), std::string::npos) << m;
  }
  EXPECT_EQ(build("sidecar", ctx)->tokenizer_vocab_size(), 300);
}

}  // namespace
