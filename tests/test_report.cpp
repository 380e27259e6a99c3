// pgolf-report on hand-made run directories: the exact tables, the baseline test and the ablation view.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_support.h"

namespace pgolf::testing {
namespace {

namespace fs = std::filesystem;

const std::string kBin = PGOLF_BIN_DIR;

// Three recipes: base (a pgolf-repro directory, seed 3 failed), swiglu and wide (single run directories).
// val_bpb values as in the Welch cases of test_stats.cpp (p from scripts/welch_reference.py).
struct ReportFixture : ::testing::Test {
  TempDir dir{"report"};
  void run_dir(const std::string& d, const std::string& recipe, double q, double pre, int64_t bytes, const std::string& mlp,
               const std::string& extra = "") {
    fs::create_directories(dir.file(d));
    dir.write(d + "/summary.json",
              "{\"recipe\": \"recipes/" + recipe + ".json\", \"val_bpb\": " + std::to_string(q) +
                  ", \"quantized_val_bpb\": " + std::to_string(q) + ", \"pre_quant_val_bpb\": " + std::to_string(pre) +
                  ", \"val_loss\": " + std::to_string(q * 2) + ", \"artifact_bytes\": " + std::to_string(bytes) +
                  ", \"steps\": 200, \"train_seconds\": 61.25, \"tokens_per_second\": 26750" + extra + "}");
    dir.write(d + "/recipe.json", "{\"seed\": 1, \"description\": \"x\", \"model\": {\"dim\": 128, \"mlp\": {\"name\": \"" +
                                      mlp + "\", \"mult\": 2.0}}, \"pipeline\": [{\"name\": \"write_artifact\", "
                                      "\"budget_bytes\": 16000000}]}");
  }
  void SetUp() override {
    fs::create_directories(dir.file("recipes"));
    dir.write("recipes/base.json", "{}");
    dir.write("recipes/swiglu.json", "{\"extends\": \"base.json\"}");
    dir.write("recipes/wide.json", "{\"extends\": \"swiglu.json\"}");
    const double base[] = {1.0812, 1.0820, 1.0809}, swiglu[] = {1.0755, 1.0791, 1.0749}, wide[] = {1.0600, 1.0605, 1.0610};
    for (int i = 0; i < 3; ++i) {
      run_dir("base/seed-" + std::to_string(i), "base", base[i], 1.05, 15000000 + 1000 * i, "relu2");
      run_dir("swiglu-" + std::to_string(i), "swiglu", swiglu[i], 1.04, 15100000, "swiglu", ", \"mfu\": 0.25");
      run_dir("wide-" + std::to_string(i), "wide", wide[i], 1.03, 15200000 + 2000 * i, "swiglu");
    }
    dir.write("wide-0/recipe.json", "{\"seed\": 1, \"model\": {\"dim\": 192, \"mlp\": {\"name\": \"swiglu\", \"mult\": 2.0}}}");
    dir.write("base/summary.json", R"({"recipe": "recipes/base.json", "seeds": [
      {"seed": 0, "status": "ok", "dir": "seed-0"}, {"seed": 1, "status": "ok", "dir": "seed-1"},
      {"seed": 2, "status": "ok", "dir": "seed-2"}, {"seed": 3, "status": "failed", "dir": "seed-3"}]})");
  }
  CommandResult report(const std::string& args) {
    return run_command("cd " + dir.path + " && " + kBin + "/pgolf-report base swiglu-0 swiglu-1 swiglu-2 wide-0 wide-1 wide-2 " + args);
  }
};

TEST_F(ReportFixture, ReportMarkdownTablesExact) {
  const CommandResult r = report("--baseline base");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string expected =
      "| recipe | seeds | pre_quant_val_bpb | quantized_val_bpb | artifact bytes | budget left | steps | train s | tokens/s | MFU |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
      "| base | 3 (failed seeds: 3) | 1.0500 ± 0.0000 | 1.0814 ± 0.0006 | 15001000 ± 1000 | 999000 ± 1000 | 200 ± 0 | 61.2 ± 0.0 | 26750 ± 0 | - |\n"
      "| swiglu | 3 | 1.0400 ± 0.0000 | 1.0765 ± 0.0023 | 15100000 ± 0 | 900000 ± 0 | 200 ± 0 | 61.2 ± 0.0 | 26750 ± 0 | 0.250 ± 0.000 |\n"
      "| wide | 3 | 1.0300 ± 0.0000 | 1.0605 ± 0.0005 | 15202000 ± 2000 | 798000 ± 2000 | 200 ± 0 | 61.2 ± 0.0 | 26750 ± 0 | - |\n"
      "\n"
      "## Against the baseline base: val_bpb, clears at Δ ≤ -0.005 and p < 0.01 (Welch's t-test, two-sided)\n"
      "\n"
      "| recipe | seeds | val_bpb | Δ mean | t | df | p | clears |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
      "| base | 3 | 1.0814 ± 0.0006 | (baseline) | - | - | - | - |\n"
      "| swiglu | 3 | 1.0765 ± 0.0023 | -0.0049 | -3.600 | 2.25 | 0.058 | no |\n"
      "| wide | 3 | 1.0605 ± 0.0005 | -0.0209 | -47.732 | 3.94 | 1.379e-06 | yes |\n"
      "\n"
      "## Ablation: the resolved-recipe keys each recipe changes against base\n"
      "\n"
      "| recipe | extends base | Δ val_bpb | keys changed |\n"
      "| --- | --- | --- | --- |\n"
      "| swiglu | yes | -0.0049 | model.mlp.name: \"relu2\" → \"swiglu\" |\n"
      "| wide | yes | -0.0209 | model.dim: 128 → 192; model.mlp.name: \"relu2\" → \"swiglu\"; "
      "pipeline[0].budget_bytes: 16000000 → (unset); pipeline[0].name: \"write_artifact\" → (unset) |\n";
  EXPECT_EQ(r.out, expected);
}

TEST_F(ReportFixture, ReportCsvAndThresholdInNats) {
  // In nats val_loss = 2 × val_bpb here: swiglu's Δ is -0.0097 and p the same 0.058; it clears at α 0.1.
  const CommandResult r = report("--csv --baseline base --unit nats --alpha 0.1 --min-delta 0.009");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("recipe,seeds,pre_quant_val_bpb_mean,pre_quant_val_bpb_sd,quantized_val_bpb_mean,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nrecipe,seeds,val_loss_mean,val_loss_sd,delta_mean,t,df,p,clears\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nswiglu,3,2.1530,0.0045,-0.0097,-3.600,2.25,0.058,yes\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nswiglu,yes,-0.0097,\"model.mlp.name: \"\"relu2\"\" → \"\"swiglu\"\"\"\n"), std::string::npos) << r.out;
}

TEST_F(ReportFixture, ReportRefusesBadInput) {
  CommandResult r = report("--baseline nosuch");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("no runs of recipe 'nosuch'"), std::string::npos) << r.out;
  dir.write("swiglu-1/summary.json", "{not json");
  r = report("");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("swiglu-1/summary.json: not valid JSON"), std::string::npos) << r.out;
  r = run_command(kBin + "/pgolf-report " + dir.file("missing"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("missing: not a directory"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pgolf::testing
