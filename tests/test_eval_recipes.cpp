// Each seed recipe's evaluation path end to end on the CPU at a tiny size (its own pipeline, sizes shrunk
// with --set): the trainer runs every evaluate stage the recipe lists and summary.json carries each stage's
// val_bpb and seconds, val_bpb being the last (the TTT) one. Also #461's TTT freeze list against the spec's
// trainable-parameter count.
#include <gtest/gtest.h>

#include <fnmatch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "framework/io.h"
#include "tests/component_testing.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;
const std::string kSrc = PGOLF_SOURCE_DIR;

TEST(EvalRecipes, Pr461FreezesBlocksZeroOneAndTheirCores) {
  Recipe r = load_recipe(kSrc + "/recipes/pr461.json", {"model.linear_init=default"});  // counts only: no QR init
  const Json raw = Json::parse(read_file(kSrc + "/recipes/pr461.json"));
  const Json& ttt = raw["pipeline"][8];
  ASSERT_EQ(ttt["evaluator"]["name"], "chunked_sgd_ttt");
  const auto freeze = ttt["evaluator"]["freeze"].get<std::vector<std::string>>();
  auto m = ModelRegistry::get().build(r.section("model"));
  int64_t trainable = 0, all = 0;
  for (const auto& p : m->named_parameters()) {
    bool frozen = false;
    for (const auto& f : freeze) frozen = frozen || fnmatch(f.c_str(), p.key().c_str(), 0) == 0;
    all += p.value().numel();
    if (!frozen) trainable += p.value().numel();
  }
  EXPECT_EQ(all, 24634452);
  EXPECT_EQ(trainable, 19911748);  // spec 9.2's table
}

// The tiny run: the recipe's own pipeline, its TTT stage shrunk to the 2048 validation tokens.
void eval_path(const std::string& seed, const std::vector<std::string>& stage_sets, const std::vector<std::string>& labels) {
  ASSERT_TRUE(fs::exists(kSrc + "/data/default/READY")) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("evalpath_" + seed);
  const fs::path out = tmp.file("run");
  std::string args = "--recipe recipes/" + seed + ".json";
  for (const std::string& s : {"model.dim=32", "model.heads=4", "model.kv_heads=2", "model.attention.rope_dims=4",
                               "model.vocab_size=1024", "data.train=data/default/default_train_*.bin",
                               "data.val=data/default/default_val_*.bin", "data.tokenizer=data/default/tokenizer.model",
                               "data.seq_len=128", "data.batch_tokens=512", "data.micro_batches=1",
                               "data.val_max_tokens=2048", "train.iterations=4", "train.max_wallclock_seconds=0",
                               "train.warmup_steps=0", "train.warmup_looped_steps=0", "eval.batch_tokens=1024",
                               "train.threads=1", "'eval.byte_counter={\"name\":\"lut\"}'"})
    args += " --set " + s;
  // "T." in a stage key stands for the index of the recipe's TTT stage (its last), wherever calibrate puts it.
  const Json raw = Json::parse(read_file(kSrc + "/recipes/" + seed + ".json"));
  const std::string ttt = "pipeline." + std::to_string(raw["pipeline"].size() - 1) + ".";
  for (const auto& s : stage_sets) args += " --set " + (s.rfind("T.", 0) == 0 ? ttt + s.substr(2) : s);
  // Two calibration batches instead of the recipes' 16 or 64: GPTQ still gets a Hessian for every matrix.
  for (size_t i = 0; i < raw["pipeline"].size(); ++i)
    if (raw["pipeline"][i]["name"] == "calibrate") args += " --set pipeline." + std::to_string(i) + ".batches=2";
  auto r = testing::run_command("cd " + kSrc + " && " + std::string(PGOLF_BIN_DIR) + "/trainer " + args + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const Json s = Json::parse(read_file((out / "summary.json").string()));
  for (const auto& l : labels) {
    ASSERT_TRUE(s.contains(l + "_val_bpb")) << l << ": " << s.dump();
    EXPECT_TRUE(std::isfinite(s[l + "_val_bpb"].get<double>())) << l;
    EXPECT_GT(s[l + "_val_bpb"].get<double>(), 0.0) << l;
    ASSERT_TRUE(s["eval_seconds"].contains(l)) << s.dump();
  }
  EXPECT_EQ(s["val_bpb"], s[labels.back() + "_val_bpb"]) << "the headline is the last stage's";
}

const std::vector<std::string> kChunked = {"T.evaluator.chunk_tokens=512", "T.evaluator.train_seq_len=128",
                                           "T.evaluator.train_batch=2", "T.evaluator.epochs=1"};
// chunk = context = 128: each document still scored, then trained on, a chunk at a time (8 chunks of the ~1k-token
// documents), in half chunk 64's time.
const std::vector<std::string> kPhased = {
    "T.evaluator.rank=4",           "T.evaluator.doc_batch=4",   "T.evaluator.context=128", "T.evaluator.chunk=128",
    "T.evaluator.prefix_docs=6",    "T.evaluator.sgd_chunk_tokens=256",
    "T.evaluator.sgd_seq_len=64",   "T.evaluator.sgd_batch=2"};

TEST(EvalRecipes, Pr1755SlidingThenChunkedTtt) { eval_path("pr1755", kChunked, {"pre_quant", "quantized", "sliding", "ttt"}); }
TEST(EvalRecipes, Pr461SlidingThenChunkedTtt) {
  auto sets = kChunked;
  sets.push_back("model.attention.rope_ntk_train_seq_len=64");
  eval_path("pr461", sets, {"pre_quant", "quantized", "sliding", "ttt"});
}
TEST(EvalRecipes, Pr1693VarlenThenPhasedTtt) { eval_path("pr1693", kPhased, {"pre_quant", "quantized", "ttt"}); }
TEST(EvalRecipes, Pr1855VarlenThenPhasedTtt) { eval_path("pr1855", kPhased, {"pre_quant", "quantized", "ttt"}); }
TEST(EvalRecipes, Pr1938VarlenThenPhasedTtt) { eval_path("pr1938", kPhased, {"pre_quant", "quantized", "ttt"}); }

}  // namespace
}  // namespace pgolf
