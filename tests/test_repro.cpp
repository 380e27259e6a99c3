// pgolf-repro with a stand-in trainer (a shell script): per-seed directories, the aggregate, a failed seed
// reported and not dropped, a rerun that runs only what is unfinished, refusals before DIR exists.
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

// The stand-in: --dry-run passes; seed 314 fails unless FIXED exists; every call is appended to calls.txt.
// val_bpb = 1 + seed / 1000, so seeds 42, 314, 999 give 1.042, 1.314, 1.999.
const char* kFakeTrainer = R"(#!/bin/sh
here=$(dirname "$0")
echo "$@" >> "$here/calls.txt"
seed=""; out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) echo "params: 1"; exit 0;;
    --seed) seed=$2; shift;;
    --out) out=$2; shift;;
  esac
  shift
done
mkdir -p "$out"
echo '{"seed": '$seed'}' > "$out/recipe.json"
if [ "$seed" = 314 ] && [ ! -e "$here/FIXED" ]; then echo "error: data shard 2 is corrupt"; exit 1; fi
echo "{\"recipe\": \"r.json\", \"val_bpb\": 1.$(printf %03d $seed), \"steps\": 7}" > "$out/summary.json"
)";

struct ReproFixture : ::testing::Test {
  TempDir dir{"repro"};
  std::string trainer;
  void SetUp() override {
    trainer = dir.write("trainer", kFakeTrainer);
    fs::permissions(trainer, fs::perms::owner_all);
    dir.write("r.json", "{}");
  }
  CommandResult repro(const std::string& extra = "") {
    return run_command("cd " + dir.path + " && CUDA_VISIBLE_DEVICES= " + kBin + "/pgolf-repro --recipe r.json --seeds 42,314,999 --out multi --trainer " +
                       trainer + " " + extra);
  }
  nlohmann::json summary() { return nlohmann::json::parse(std::ifstream(dir.file("multi/summary.json"))); }
  std::string calls() {
    std::stringstream ss;
    ss << std::ifstream(dir.file("calls.txt")).rdbuf();
    return ss.str();
  }
};

TEST_F(ReproFixture, ReproReportsFailedSeedAndAggregatesTheRest) {
  const CommandResult r = repro("--set train.iterations=7");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("seed 314 FAILED (exit 1): error: data shard 2 is corrupt"), std::string::npos) << r.out;
  const nlohmann::json s = summary();
  ASSERT_EQ(s["seeds"].size(), 3u);
  EXPECT_EQ(s["seeds"][1]["seed"], 314);
  EXPECT_EQ(s["seeds"][1]["status"], "failed");
  EXPECT_EQ(s["seeds"][1]["exit_code"], 1);
  EXPECT_EQ(s["failed"], nlohmann::json::array({314}));
  EXPECT_EQ(s["count"], 2);
  EXPECT_NEAR(s["metrics"]["val_bpb"]["mean"].get<double>(), (1.042 + 1.999) / 2, 1e-12);
  EXPECT_NEAR(s["metrics"]["val_bpb"]["sd"].get<double>(), (1.999 - 1.042) / std::sqrt(2.0), 1e-12);
  EXPECT_EQ(s["metrics"]["val_bpb"]["count"], 2);
  EXPECT_TRUE(fs::exists(dir.file("multi/seed-42/summary.json")));
  EXPECT_NE(calls().find("--recipe r.json --seed 999 --out multi/seed-999 --set train.iterations=7"), std::string::npos) << calls();
}

TEST_F(ReproFixture, ReproRerunRunsOnlyUnfinishedSeeds) {
  ASSERT_EQ(repro().code, 1);
  dir.write("FIXED", "");
  fs::remove(dir.file("calls.txt"));
  const CommandResult r = repro();
  EXPECT_EQ(r.code, 0) << r.out;
  // one dry run and seed 314 alone; its failed directory is kept aside
  EXPECT_EQ(calls(), "--recipe r.json --seed 42 --dry-run\n--recipe r.json --seed 314 --out multi/seed-314\n");
  EXPECT_TRUE(fs::exists(dir.file("multi/seed-314.failed-1/recipe.json")));
  const nlohmann::json s = summary();
  EXPECT_EQ(s["count"], 3);
  EXPECT_TRUE(s["failed"].empty());
  EXPECT_NEAR(s["metrics"]["val_bpb"]["mean"].get<double>(), (1.042 + 1.314 + 1.999) / 3, 1e-12);
  EXPECT_NE(r.out.find("seed 42 already finished, skipped"), std::string::npos) << r.out;
}

TEST_F(ReproFixture, ReproRefusesBadSeedsAndFailedDryRunBeforeDirExists) {
  CommandResult r = run_command(kBin + "/pgolf-repro --recipe r.json --seeds 1,x --out " + dir.file("m") + " --trainer " + trainer);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("'x' is not a non-negative integer"), std::string::npos) << r.out;
  r = run_command(kBin + "/pgolf-repro --recipe r.json --seeds 1,1 --out " + dir.file("m") + " --trainer " + trainer);
  EXPECT_NE(r.out.find("seed 1 is given twice"), std::string::npos) << r.out;
  const std::string failing = dir.write("failing", "#!/bin/sh\necho 'recipe.json: model.dim: expected an integer'\nexit 2\n");
  fs::permissions(failing, fs::perms::owner_all);
  r = run_command(kBin + "/pgolf-repro --recipe r.json --seeds 1 --out " + dir.file("m") + " --trainer " + failing);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("model.dim: expected an integer"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("m")));
}

TEST_F(ReproFixture, ReproRunsOneTrainerPerVisibleGpu) {
  dir.write("FIXED", "");
  const std::string gpu_trainer = dir.write("gpu_trainer", std::string(kFakeTrainer) + "echo \"$CUDA_VISIBLE_DEVICES $seed\" >> \"$here/gpus.txt\"\n");
  fs::permissions(gpu_trainer, fs::perms::owner_all);
  const CommandResult r = run_command("cd " + dir.path + " && CUDA_VISIBLE_DEVICES=3,5 " + kBin +
                                      "/pgolf-repro --recipe r.json --seeds 42,314,999 --out multi --trainer " + gpu_trainer);
  ASSERT_EQ(r.code, 0) << r.out;
  std::stringstream ss;
  ss << std::ifstream(dir.file("gpus.txt")).rdbuf();
  const std::string gpus = ss.str();
  EXPECT_NE(gpus.find("3 42\n"), std::string::npos) << gpus;
  EXPECT_NE(gpus.find("5 314\n"), std::string::npos) << gpus;
  EXPECT_TRUE(gpus.find("3 999\n") != std::string::npos || gpus.find("5 999\n") != std::string::npos) << gpus;
  EXPECT_NE(r.out.find("seed 314: --recipe on GPU 5"), std::string::npos) << r.out;
  EXPECT_EQ(summary()["count"], 3);
}

}  // namespace
}  // namespace pgolf::testing
