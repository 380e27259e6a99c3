// pgolf-submit on a hand-made pgolf-repro directory: the record folder's files and fields, and each refusal
// (artifact over 16,000,000 bytes, fewer than 3 finished seeds, train or eval time over 600 s) writing nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/test_support.h"

namespace pgolf::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = PGOLF_BIN_DIR;

std::string slurp(const std::string& path) {
  std::stringstream ss;
  ss << std::ifstream(path, std::ios::binary).rdbuf();
  return ss.str();
}

struct SubmitFixture : ::testing::Test {
  TempDir dir{"submit"};
  // seeds 42, 314, 999 with val_bpb 1.10, 1.12, 1.11 (mean 1.11, sd 0.01) and val_loss 2 × val_bpb.
  void SetUp() override {
    fs::create_directories(dir.file("recipes"));
    dir.write("recipes/base.json", "{}");
    dir.write("recipes/mine.json", R"({"extends": "base.json", "description": "d", "model": {"mlp": {"name": "swiglu"}}})");
    const int seeds[] = {42, 314, 999};
    const double bpb[] = {1.10, 1.12, 1.11};
    for (int i = 0; i < 3; ++i) seed(seeds[i], bpb[i], 15000000 + i, 550.5, 100.0);
    dir.write("multi/seed-42/artifact.bin", "ARTIFACT");
    fs::create_directories(dir.file("multi/seed-42/code/src"));
    dir.write("multi/seed-42/code/src/a.cpp", "int main() {}\n");
    write_repro({42, 314, 999}, {});
  }
  void seed(int s, double bpb, int64_t bytes, double train, double eval) {
    const std::string d = "multi/seed-" + std::to_string(s);
    fs::create_directories(dir.file(d));
    nlohmann::json sum{{"recipe", "recipes/mine.json"}, {"val_bpb", bpb}, {"val_loss", 2 * bpb}, {"artifact_bytes", bytes},
                       {"artifact_code_bytes", 40000}, {"steps", 4000}, {"train_seconds", train},
                       {"eval_seconds", {{"pre_quant", eval / 2}, {"quantized", eval / 2}}}};
    dir.write(d + "/summary.json", sum.dump());
    dir.write(d + "/recipe.json", nlohmann::json{{"seed", s}, {"description", "SwiGLU on the base"}}.dump());
    dir.write(d + "/train.log", "log of seed " + std::to_string(s) + "\n");
  }
  void write_repro(const std::vector<int>& ok, const std::vector<int>& failed) {
    nlohmann::json seeds = nlohmann::json::array();
    for (int s : ok) seeds.push_back({{"seed", s}, {"status", "ok"}, {"dir", "seed-" + std::to_string(s)}});
    for (int s : failed) seeds.push_back({{"seed", s}, {"status", "failed"}, {"dir", "seed-" + std::to_string(s)}});
    dir.write("multi/summary.json", nlohmann::json{{"recipe", "recipes/mine.json"}, {"seeds", seeds}}.dump());
  }
  CommandResult submit() {
    return run_command("cd " + dir.path + " && " + kBin + "/pgolf-submit multi --out records/my_record --author A --github-id g");
  }
};

TEST_F(SubmitFixture, SubmitWritesTheRecordFolder) {
  const CommandResult r = submit();
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string rec = dir.file("records/my_record");
  const nlohmann::json j = nlohmann::json::parse(slurp(rec + "/submission.json"));
  EXPECT_EQ(j["name"], "my_record");
  EXPECT_EQ(j["author"], "A");
  EXPECT_EQ(j["github_id"], "g");
  EXPECT_EQ(j["track"], "10min_16mb");
  EXPECT_EQ(j["seeds"], nlohmann::json::array({42, 314, 999}));
  EXPECT_NEAR(j["val_bpb"].get<double>(), 1.11, 1e-12);
  EXPECT_NEAR(j["val_bpb_std"].get<double>(), 0.01, 1e-12);
  EXPECT_NEAR(j["val_loss"].get<double>(), 2.22, 1e-12);
  EXPECT_EQ(j["seed_results"]["314"]["artifact_bytes"], 15000001);
  EXPECT_NEAR(j["seed_results"]["999"]["eval_seconds"].get<double>(), 100.0, 1e-12);
  EXPECT_EQ(j["bytes_total"], 15000002);
  EXPECT_EQ(j["bytes_code"], 40000);
  EXPECT_EQ(j["blurb"], "SwiGLU on the base");
  EXPECT_EQ(j["technique_summary"], "`model.mlp.name` = `\"swiglu\"`");
  EXPECT_EQ(j["compliance"], nlohmann::json::parse(R"({"train_under_600s": true, "artifact_under_16mb": true,
                                                       "eval_under_600s": true, "three_seeds": true})"));
  EXPECT_EQ(slurp(rec + "/train_seed314.log"), "log of seed 314\n");
  EXPECT_EQ(slurp(rec + "/artifact.bin"), "ARTIFACT");
  EXPECT_EQ(slurp(rec + "/code/src/a.cpp"), "int main() {}\n");
  const std::string md = slurp(rec + "/README.md");
  EXPECT_NE(md.find("**val_bpb 1.11000 ± 0.01000** (mean ± sample sd over 3 seeds"), std::string::npos) << md;
  EXPECT_NE(md.find("| 314 | 2.24000 | 1.12000 | 4000 | 550.5 | 100.0 | 15000001 |"), std::string::npos) << md;
  EXPECT_NE(md.find("## What the recipe changes against `base.json`\n\n- `model.mlp.name` = `\"swiglu\"`"), std::string::npos) << md;
  EXPECT_NE(md.find("Largest artifact: 15000002 bytes (code 40000), 999998 under"), std::string::npos) << md;
}

void expect_refused(SubmitFixture& f, const std::string& why) {
  const CommandResult r = f.submit();
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("multi cannot be a record:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(why), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(f.dir.file("records/my_record")));
  EXPECT_FALSE(fs::exists(f.dir.file("records")));
}

TEST_F(SubmitFixture, SubmitRefusesOverBudgetArtifact) {
  seed(314, 1.12, 16000001, 550.5, 100);
  expect_refused(*this, "seed 314 (multi/seed-314): artifact is 16000001 bytes, over the 16000000-byte limit");
}

TEST_F(SubmitFixture, SubmitRefusesFewerThanThreeSeeds) {
  write_repro({42, 999}, {314});
  expect_refused(*this, "2 seed(s) finished; a record needs at least 3 (failed: 314)");
}

TEST_F(SubmitFixture, SubmitRefusesTrainOrEvalOverTheLimit) {
  seed(42, 1.10, 15000000, 600.5, 100);
  seed(999, 1.11, 15000000, 550, 601);
  expect_refused(*this, "seed 42 (multi/seed-42): training took 600.5 s, over the 600 s limit");
  expect_refused(*this, "seed 999 (multi/seed-999): evaluation took 601.0 s, over the 600 s limit");
}

}  // namespace
}  // namespace pgolf::testing
