// The trainer binary end to end on the default data (made by `make data`): a short CPU run whose loss
// falls and whose summary.json holds a finite val_bpb; --dry-run's parameter count; bad recipes.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = PGOLF_SOURCE_DIR;
const std::string kTrainer = std::string(PGOLF_BIN_DIR) + "/trainer";

testing::CommandResult run(const std::string& args) {
  return testing::run_command("cd " + kSrc + " && " + kTrainer + " " + args);
}

bool default_data_ready() { return fs::exists(kSrc + "/data/default/READY"); }

TEST(TrainerCli, DryRunPrintsTheBaselineParameterCount) {
  auto r = run("--recipe recipes/baseline.json --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("params: 17059912"), std::string::npos) << r.out;
}

TEST(TrainerCli, UnknownKeyFailsNamingItAndLeavesNoRunDirectory) {
  const testing::TempDir tmp("e2e_unknown");
  const std::string out = tmp.file("run");
  auto r = run("--recipe recipes/default.json --set model.layerz=3 --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("recipes/default.json: model.layerz: unknown key"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST(TrainerCli, WrongTypeAndBadArguments) {
  auto r = run("--recipe recipes/default.json --set train.iterations='\"many\"' --dry-run");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("train.iterations: expected an integer"), std::string::npos) << r.out;
  EXPECT_NE(run("--recipe").code, 0);
  EXPECT_NE(run("--frobnicate").code, 0);
  auto missing = run("--recipe recipes/no_such_recipe.json");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("no_such_recipe.json"), std::string::npos) << missing.out;
}

TEST(TrainerCli, MissingTokenizerAndVocabMismatchAreRefused) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("e2e_tok");
  const std::string out = tmp.file("run");
  auto r = run("--recipe recipes/default.json --set data.tokenizer=data/default/nope.model --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("nope.model"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
  auto v = run("--recipe recipes/default.json --set model.vocab_size=2048 --out " + out);
  EXPECT_NE(v.code, 0);
  EXPECT_NE(v.out.find("vocab"), std::string::npos) << v.out;
  EXPECT_FALSE(fs::exists(out));
  // --dry-run checks the data as the run would, where it exists (baseline.json's data/sp1024 does not here)
  auto dv = run("--recipe recipes/default.json --set model.vocab_size=2048 --dry-run");
  EXPECT_NE(dv.code, 0);
  EXPECT_NE(dv.out.find("the size of the tokenizer data/default/tokenizer.model"), std::string::npos) << dv.out;
  auto ok = run("--recipe recipes/default.json --dry-run");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("data: checked"), std::string::npos) << ok.out;
}

TEST(TrainerE2E, ShortRunLearnsAndWritesTheRunDirectory) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("e2e_train");
  const std::string out = tmp.file("run");
  // 40 steps of 2 x 256 tokens on one thread: the loss falls from ln(1024) = 6.93 to about 5.4 (5.0 at 8 x 256,
  // at 2.3x the time; the threshold below is 0.5).
  auto r = run("--recipe recipes/default.json --set train.iterations=40 --set train.log_every=10 "
               "--set train.val_every=0 --set data.val_max_tokens=4096 --set data.batch_tokens=512 "
               "--set train.threads=1 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const Json summary = Json::parse(read_file(out + "/summary.json"));
  EXPECT_EQ(summary["steps"], 40);
  const double first = summary["first_train_loss"], last = summary["final_train_loss"];
  EXPECT_LT(last, first - 0.5) << "loss did not fall: " << first << " -> " << last;
  for (const char* k : {"val_bpb", "pre_quant_val_bpb", "val_loss"}) {
    EXPECT_TRUE(std::isfinite(summary[k].get<double>())) << k;
    EXPECT_GT(summary[k].get<double>(), 0.0) << k;
  }
  // The artifact's score stays close to the pre-quantisation score (int8 per row).
  EXPECT_NEAR(summary["val_bpb"].get<double>(), summary["pre_quant_val_bpb"].get<double>(), 0.05);
  EXPECT_GT(summary["artifact_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(summary["artifact_bytes"].get<int64_t>(),
            summary["artifact_model_bytes"].get<int64_t>() + summary["artifact_code_bytes"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(out + "/artifact.bin")), summary["artifact_model_bytes"].get<int64_t>());
  for (const char* k : {"params", "steps", "train_seconds", "tokens_per_second"}) EXPECT_TRUE(summary.contains(k)) << k;
  // metrics.jsonl: one object per logged step (10, 20, ... plus the first 10) and per evaluation.
  std::ifstream m(out + "/metrics.jsonl");
  std::string line;
  int train = 0, eval = 0;
  while (std::getline(m, line)) {
    const Json j = Json::parse(line);
    (j["type"] == "train" ? train : eval)++;
  }
  EXPECT_EQ(train, 13);  // steps 1..10, 20, 30, 40
  EXPECT_EQ(eval, 2);    // final pre-quant and artifact round trip
  const Json recipe = Json::parse(read_file(out + "/recipe.json"));
  EXPECT_EQ(recipe["train"]["iterations"], 40);
  EXPECT_TRUE(recipe["model"].contains("attention"));  // fully resolved, defaults included
  EXPECT_NE(read_file(out + "/train.log").find("val_bpb"), std::string::npos);
  // The same --out again is refused: a run directory is never overwritten.
  EXPECT_NE(run("--recipe recipes/default.json --set train.iterations=1 --out " + out).code, 0);
}

// --profile: steps 6-8 are traced; the step is split into the phases the trainer marks, one line per
// optimizer group of the recipe, and the phase shares add up to the whole step. 4 x 256 tokens per step: what the
// shares add up to does not depend on the batch (the default 8,192 tokens made this test 6x slower).
TEST(TrainerE2E, ProfileSplitsTheStepIntoPhases) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("e2e_profile");
  const std::string out = tmp.file("run");
  const std::string trace = tmp.file("trace.json");
  auto r = run("--recipe recipes/default.json --set train.iterations=9 --set train.val_every=0 "
               "--set data.val_max_tokens=4096 --set data.batch_tokens=1024 "
               "--set 'pipeline=[{\"name\":\"apply_averaging\"},{\"name\":\"evaluate\"}]' --set train.threads=1 --profile " + trace +
               " --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(trace));
  const auto at = r.out.find("profile: step phases");
  ASSERT_NE(at, std::string::npos) << r.out;
  const Json recipe = Json::parse(read_file(out + "/recipe.json"));
  std::vector<std::string> phases = {"forward + backward", "gradient norm, clip, all-reduce", "between steps"};
  for (size_t i = 0; i < recipe["optim"]["groups"].size(); ++i)
    phases.push_back("optimizer groups[" + std::to_string(i) + "] " + recipe["optim"]["groups"][i]["name"].get<std::string>());
  double share = 0;
  for (const auto& p : phases) {
    const auto line = r.out.find("%  " + p + "\n", at);
    ASSERT_NE(line, std::string::npos) << "no phase '" << p << "' in:\n" << r.out.substr(at);
    const auto pct_end = r.out.rfind('%', line);
    const auto pct_start = r.out.rfind(' ', pct_end - 1) + 1;
    share += std::stod(r.out.substr(pct_start, pct_end - pct_start));
  }
  EXPECT_NEAR(share, 100.0, 0.5);
}

}  // namespace
}  // namespace pgolf
