// Issue 14's failure classes, each through the trainer binary on a tiny model (default data, `make data`):
//  1. one run directory, one trainer: a second claimant of an --out, and a --resume of a live run, are
//     refused naming the holder's pid; two trainers started together leave one consistent run;
//  2. bad data is refused at start-up: a damaged later shard, a train set smaller than a step (empty, one
//     token), val ids outside the vocabulary; train ids outside it stop the run at the step, naming shard,
//     position and id;
//  3. nothing is written before the checks pass; a failure during training leaves failed.json, which a
//     rerun replaces with --overwrite;
//  5. a non-finite evaluation score is an error naming the stage; a loss stuck at ln(vocab) is warned about;
//  7. a failed write (metrics.jsonl, train.log, a checkpoint) stops the run at once naming the file;
//  a fatal signal prints the native stack and still dies of it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/guards.h"
#include "framework/io.h"
#include "framework/run_lock.h"
#include "framework/shard.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = PGOLF_SOURCE_DIR;
const std::string kTrainer = std::string(PGOLF_BIN_DIR) + "/trainer";

const std::string& kTiny = testing::kTinyRun;

bool data_ready() { return fs::exists(kSrc + "/data/default/READY"); }

testing::CommandResult trainer(const std::string& args, const std::string& env = "") {
  return testing::run_command("cd " + kSrc + " && " + env + " " + kTrainer + " " + args);
}

// The first `n` tokens of the default training data, to build damaged copies of it from.
std::vector<uint16_t> default_tokens(int64_t n) {
  ShardView v(glob_shards(kSrc + "/data/default/default_train_*.bin").front());
  return std::vector<uint16_t>(v.data(), v.data() + std::min(n, v.size()));
}

// Every line of metrics.jsonl parses as JSON (two writers interleaving would break that).
bool metrics_valid(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!Json::accept(line)) return false;
  return true;
}

pid_t spawn_shell(const std::string& command) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int wait_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define REQUIRE_DATA() \
  if (!data_ready()) GTEST_SKIP() << "default data missing: run `make data`"

// ---- class 1: one run directory, one trainer -------------------------------------------------------------

TEST(ReliabilityLock, SecondClaimantIsRefusedNamingTheHolder) {
  REQUIRE_DATA();
  testing::TempDir t("lock");
  const std::string out = t.file("run");
  fs::create_directories(out);
  RunLock held(out);  // this test process is the live holder
  auto r = trainer(kTiny + "--set train.iterations=2 --out " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("in use by another trainer (pid " + std::to_string(::getpid()) + " "), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/recipe.json"));
  EXPECT_FALSE(fs::exists(out + "/metrics.jsonl"));
}

TEST(ReliabilityLock, ResumeOfALiveRunIsRefused) {
  REQUIRE_DATA();
  testing::TempDir t("lockresume");
  const std::string out = t.file("run");
  // A run killed after its step-2 checkpoint is resumable; while another process holds it, it is not.
  auto first = trainer(kTiny + "--set train.iterations=4 --set train.checkpoint_every=2 --out " + out,
                       "PGOLF_INJECT_NAN_AT_STEP=3");
  ASSERT_EQ(first.code, 1) << first.out;
  ASSERT_TRUE(fs::exists(out + "/checkpoint.bin"));
  const std::string metrics_before = read_file(out + "/metrics.jsonl");
  {
    RunLock held(out);
    auto r = trainer("--resume " + out);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("in use by another trainer (pid " + std::to_string(::getpid()) + " "), std::string::npos) << r.out;
    EXPECT_EQ(read_file(out + "/metrics.jsonl"), metrics_before);  // nothing cut back or appended
  }
  auto r = trainer("--resume " + out);  // released: the resume goes ahead (and diverges no more)
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(out + "/summary.json"));
  EXPECT_FALSE(fs::exists(out + "/failed.json"));
}

TEST(ReliabilityLock, TwoTrainersStartedTogetherLeaveOneRun) {
  REQUIRE_DATA();
  testing::TempDir t("lockrace");
  const std::string out = t.file("run");
  const std::string cmd = "cd " + kSrc + " && exec " + kTrainer + " " + kTiny + "--set train.iterations=30 --out " + out;
  const pid_t a = spawn_shell(cmd + " > " + t.file("a.log") + " 2>&1");
  const pid_t b = spawn_shell(cmd + " --seed 7 > " + t.file("b.log") + " 2>&1");
  const int ca = wait_code(a), cb = wait_code(b);
  const std::string la = read_file(t.file("a.log")), lb = read_file(t.file("b.log"));
  ASSERT_TRUE((ca == 0) != (cb == 0)) << "exit codes " << ca << " " << cb << "\n" << la << "\n" << lb;
  const std::string& loser = ca == 0 ? lb : la;
  EXPECT_TRUE(loser.find("in use by another trainer (pid ") != std::string::npos ||
              loser.find("already holds a run") != std::string::npos)
      << loser;
  // One run's files: the winner's seed in recipe.json, valid JSONL, a summary.
  const Json recipe = Json::parse(read_file(out + "/recipe.json"));
  EXPECT_EQ(recipe["seed"].get<int64_t>(), ca == 0 ? 1337 : 7);
  EXPECT_TRUE(metrics_valid(out));
  EXPECT_TRUE(fs::exists(out + "/summary.json"));
}

// ---- class 2: bad data refused at start-up or at the step, named -----------------------------------------

TEST(ReliabilityData, GuardFlagsTheFirstStepWithAnIdOutsideTheVocabulary) {
  NonFiniteGuard g(torch::kCPU, /*id_limit=*/1024);
  const auto id = [](int64_t v) { return torch::full({}, v, torch::kInt64); };
  const auto one = torch::ones({});
  g.observe(one, one, 1, id(1023));  // the largest valid id
  EXPECT_EQ(g.first_bad_step(), -1);
  g.observe(one, one, 2, id(1024));
  g.observe(torch::full({}, NAN), one, 3, id(5000));  // later bad steps change neither figure
  EXPECT_EQ(g.first_bad_step(), 2);
  EXPECT_EQ(g.bad_id().item<int64_t>(), 1024);
  NonFiniteGuard nan(torch::kCPU, 1024);
  nan.observe(torch::full({}, NAN), one, 4, id(7));  // a NaN step: no id to report
  EXPECT_EQ(nan.first_bad_step(), 4);
  EXPECT_EQ(nan.bad_id().item<int64_t>(), -1);
}

TEST(ReliabilityData, FirstIdAtLeastNamesShardAndPosition) {
  testing::TempDir t("firstid");
  write_shard(t.file("a.bin"), {1, 2, 3});
  write_shard(t.file("b.bin"), {4, 900, 5, 1000});
  const auto at = first_id_at_least({t.file("a.bin"), t.file("b.bin")}, 512);
  ASSERT_TRUE(at.found);
  EXPECT_EQ(at.file, t.file("b.bin"));
  EXPECT_EQ(at.pos, 1);
  EXPECT_EQ(at.id, 900);
  EXPECT_FALSE(first_id_at_least({t.file("a.bin"), t.file("b.bin")}, 512, /*max_tokens=*/4).found);  // 900 is token 5
  EXPECT_EQ(count_shard_tokens({t.file("a.bin"), t.file("b.bin")}), 7);
}

TEST(ReliabilityData, DamagedLaterShardIsRefusedAtStartUp) {
  REQUIRE_DATA();
  testing::TempDir t("shards");
  write_shard(t.file("train_000000.bin"), default_tokens(4096));
  write_shard(t.file("train_000001.bin"), default_tokens(4096));
  fs::resize_file(t.file("train_000001.bin"), 1024 + 2 * 1000);  // truncated: a run of 2 steps never reads it
  auto r = trainer(kTiny + "--set train.iterations=2 --set data.train=" + t.file("train_*.bin") + " --out " + t.file("run"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(t.file("train_000001.bin") + ": truncated"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t.file("run")));
}

TEST(ReliabilityData, TrainSetSmallerThanAStepIsRefused) {
  REQUIRE_DATA();
  testing::TempDir t("small");
  // pgolf-data makes an empty .txt into a BOS-only shard; an empty shard and one a token short of a step too.
  for (const auto& tokens : {std::vector<uint16_t>{1}, std::vector<uint16_t>{}, default_tokens(256)}) {
    write_shard(t.file("train_000000.bin"), tokens);
    auto r = trainer(kTiny + "--set train.iterations=2 --set data.train=" + t.file("train_*.bin") + " --out " + t.file("run"));
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("give " + std::to_string(tokens.size()) + " tokens, fewer than one step's"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("= 257"), std::string::npos) << r.out;  // 256 tokens + 1 target for the one micro-batch
    EXPECT_FALSE(fs::exists(t.file("run")));
  }
  write_shard(t.file("train_000000.bin"), default_tokens(257));  // exactly one step's worth trains
  EXPECT_EQ(trainer(kTiny + "--set train.iterations=2 --set data.train=" + t.file("train_*.bin") + " --out " + t.file("run")).code, 0);
}

TEST(ReliabilityData, ValIdsOutsideTheVocabularyAreRefusedBeforeTraining) {
  REQUIRE_DATA();
  testing::TempDir t("valids");
  auto tokens = default_tokens(2048);
  tokens[700] = 1500;  // the default model's vocabulary is 1024
  write_shard(t.file("val_000000.bin"), tokens);
  auto r = trainer(kTiny + "--set train.iterations=2 --set data.val=" + t.file("val_*.bin") + " --out " + t.file("run"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("validation data: token id 1500 at position 700 of " + t.file("val_000000.bin")), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("index out of range"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(t.file("run")));
}

TEST(ReliabilityData, TrainIdsOutsideTheVocabularyStopTheRunNamingThem) {
  REQUIRE_DATA();
  testing::TempDir t("trainids");
  auto tokens = default_tokens(4096);
  tokens[1000] = 2000;  // in the batch of step 4 (each step reads 256 tokens + the next one)
  write_shard(t.file("train_000000.bin"), tokens);
  const std::string out = t.file("run");
  auto r = trainer(kTiny + "--set train.iterations=8 --set train.log_every=0 --set train.nan_check_every=0 --set data.train=" +
                   t.file("train_*.bin") + " --out " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("the batch of step 4 holds token id 2000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token id 2000 at position 1000 of " + t.file("train_000000.bin")), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("index out of range"), std::string::npos) << r.out;
  // class 3: the directory says the run failed, and why
  const Json failed = Json::parse(read_file(out + "/failed.json"));
  EXPECT_NE(failed["error"].get<std::string>().find("token id 2000"), std::string::npos);
  EXPECT_TRUE(failed["last_checkpoint"].is_null());
}

// ---- class 3: checks before the directory exists; failed runs say so and can be replaced -------------------

TEST(ReliabilityRunDir, OutThatCannotBeARunDirectoryIsRefusedBeforeBuilding) {
  testing::TempDir t("outfile");
  const std::string file = t.write("plain", "x");
  auto r = trainer(kTiny + "--out " + file);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--out " + file + ": exists and is not a directory"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("params:"), std::string::npos) << r.out;  // refused before the model was built
  auto u = trainer(kTiny + "--out " + file + "/below");
  EXPECT_EQ(u.code, 2) << u.out;
  EXPECT_NE(u.out.find("is not a directory"), std::string::npos) << u.out;
}

TEST(ReliabilityRunDir, FailedRunIsReplacedOnlyWithOverwrite) {
  REQUIRE_DATA();
  testing::TempDir t("overwrite");
  const std::string out = t.file("run");
  auto failed = trainer(kTiny + "--set train.iterations=4 --out " + out, "PGOLF_INJECT_NAN_AT_STEP=2");
  ASSERT_EQ(failed.code, 1) << failed.out;
  ASSERT_TRUE(fs::exists(out + "/failed.json"));
  EXPECT_NE(read_file(out + "/failed.json").find("training diverged"), std::string::npos);
  auto again = trainer(kTiny + "--set train.iterations=4 --out " + out);
  EXPECT_EQ(again.code, 2) << again.out;
  EXPECT_NE(again.out.find(out + ": already holds a failed run (failed.json)"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("--overwrite"), std::string::npos) << again.out;
  auto replaced = trainer(kTiny + "--set train.iterations=4 --overwrite --out " + out);
  EXPECT_EQ(replaced.code, 0) << replaced.out;
  EXPECT_FALSE(fs::exists(out + "/failed.json"));
  EXPECT_TRUE(fs::exists(out + "/summary.json"));
  const std::string log = read_file(out + "/train.log");
  EXPECT_EQ(log.find("training diverged"), std::string::npos);  // the old run's log went with it
}

// ---- class 5: a diverged run never reports success -------------------------------------------------------

TEST(ReliabilityDivergence, NonFiniteScoreIsAnErrorNamingTheStage) {
  REQUIRE_DATA();
  testing::TempDir t("nanscore");
  const std::string out = t.file("run");
  auto r = trainer(kTiny + "--set train.iterations=2 --out " + out, "PGOLF_INJECT_NAN_EVAL=pre_quant");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("evaluation stage 'pre_quant': the score is not finite"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/summary.json"));
  EXPECT_TRUE(fs::exists(out + "/failed.json"));
}

TEST(ReliabilityDivergence, LossStuckAtLnVocabIsWarnedAbout) {
  REQUIRE_DATA();
  const std::string constant = "--set 'schedule={\"name\":\"constant\"}' --set train.iterations=12 --set train.stuck_loss_steps=8 ";
  const std::string zero_lr = "--set 'optim.groups=[{\"name\":\"adam\",\"params\":{\"include\":[\"*\"]},\"lr\":0}]' ";
  testing::TempDir t("stuck");
  auto stuck = trainer(kTiny + constant + zero_lr + "--out " + t.file("a"));
  EXPECT_EQ(stuck.code, 0) << stuck.out;
  EXPECT_NE(stuck.out.find("warning: the training loss has stayed at ln(vocab_size) = 6.9315"), std::string::npos)
      << stuck.out;
  EXPECT_NE(stuck.out.find("since step 1 "), std::string::npos) << stuck.out;
  auto learning = trainer(kTiny + constant + "--out " + t.file("b"));  // it learns: below ln(vocab) by step 3
  EXPECT_EQ(learning.code, 0) << learning.out;
  EXPECT_EQ(learning.out.find("warning: the training loss has stayed"), std::string::npos) << learning.out;
}

// ---- class 7: a failed write stops the run at once, naming the file ----------------------------------------

TEST(ReliabilityWrites, FailedMetricsWriteStopsTheRunAtOnce) {
  REQUIRE_DATA();
  testing::TempDir t("fullmetrics");
  const std::string out = t.file("run");
  auto r = trainer(kTiny + "--set train.iterations=20 --out " + out, "PGOLF_INJECT_WRITE_FAILURE=metrics.jsonl");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(out + "/metrics.jsonl: write failed (No space left on device)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step 1/20"), std::string::npos) << r.out;  // its first record is step 1's ...
  EXPECT_EQ(r.out.find("step 2/20"), std::string::npos) << r.out;  // ... and nothing runs after it
  EXPECT_TRUE(fs::exists(out + "/failed.json"));
}

TEST(ReliabilityWrites, FailedLogAndCheckpointWritesStopTheRun) {
  REQUIRE_DATA();
  for (const std::string name : {"train.log", "checkpoint.bin"}) {
    testing::TempDir t("full");
    const std::string out = t.file("run");
    auto r = trainer(kTiny + "--set train.iterations=6 --set train.checkpoint_every=3 --out " + out,
                     "PGOLF_INJECT_WRITE_FAILURE=" + name);
    EXPECT_EQ(r.code, 1) << name << "\n" << r.out;
    EXPECT_NE(r.out.find(out + "/" + name + ": write failed (No space left on device)"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("step 4/6"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out + "/summary.json"));
  }
}

// A fatal signal prints the native stack (framework/crash.cpp) and still dies of that signal.
TEST(ReliabilityCrash, AFatalSignalPrintsTheNativeStackAndDiesOfIt) {
  const auto r = testing::run_command("PGOLF_INJECT_CRASH=1 " + kTrainer + " --help");
  EXPECT_TRUE(r.code == 128 + SIGSEGV || r.code == -1) << r.code << "\n" << r.out;
  EXPECT_NE(r.out.find("fatal signal SIGSEGV in thread 0x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("native stack (addr2line"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trainer("), std::string::npos) << "no frame of the trainer:\n" << r.out;
  // raise() sends the signal from inside libc: the faulting pc's mapping names it.
  const auto at = r.out.find("  pc is in: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  EXPECT_NE(line.find("libc"), std::string::npos) << line;
}

}  // namespace
}  // namespace pgolf
