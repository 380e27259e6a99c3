// Checkpoint and resume through the trainer binary on the default data (`make data`):
//  - a run killed with SIGKILL twice and resumed each time reproduces the uninterrupted run's per-step
//    losses, evaluations and final score bit for bit, with no step lost or repeated in metrics.jsonl (the
//    killed run also warms up for 2 rolled-back steps, which must change nothing; EMA and late QAT state
//    travel in the checkpoint);
//  - resume refuses what would not continue the same run: unsafe overrides, an edited recipe.json, a
//    damaged checkpoint, another world size, a finished run, a run without a checkpoint;
//  - a NaN loss stops the run naming the step and the last good checkpoint, which predates the NaN.
//  (Local against global clipping: test_data_parallel.cpp, with one process and with two ranks.)
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "framework/checkpoint.h"
#include "framework/io.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = PGOLF_SOURCE_DIR;
const std::string kTrainer = std::string(PGOLF_BIN_DIR) + "/trainer";

// Small and fast on one thread: the default model at 2 of its 4 layers, 1 sequence of 256 per step, a 4k-token
// validation, no artifact (what is checked, the same state after a resume, does not depend on the sizes; 4 layers
// and 4 sequences made these tests 3x slower).
const std::string kQuick =
    "--recipe recipes/default.json --set model.layers=2 --set train.iterations=40 --set train.log_every=1 "
    "--set train.val_every=20 --set data.val_max_tokens=4096 "
    "--set 'pipeline=[{\"name\":\"apply_averaging\"},{\"name\":\"evaluate\"}]' --set train.threads=1 "
    "--set data.batch_tokens=256 --set train.checkpoint_every=5 ";

testing::CommandResult run(const std::string& args, const std::string& env = "") {
  return testing::run_command("cd " + kSrc + " && " + env + " " + kTrainer + " " + args);
}

// Words as the shell would split them, for the arguments used here: spaces separate, '...' quotes.
std::vector<std::string> split_args(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '\'') {
      quoted = !quoted;
    } else if (c == ' ' && !quoted) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// Runs the trainer in the source tree with its output in `log` and `env` ("NAME=value") added to the
// environment; returns how it ended (waitpid's status).
int run_logged(const std::string& args, const std::string& log, const std::string& env) {
  std::vector<std::string> words = split_args(args);
  std::vector<char*> argv{const_cast<char*>(kTrainer.c_str())};
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(env.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    if (chdir(kSrc.c_str()) != 0) _exit(126);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    execve(kTrainer.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// The trainer SIGKILLs itself right after step `step` (PGOLF_INJECT_KILL_AFTER_STEP): the kill lands at a
// known step, never racing the next checkpoint.
bool killed_after(const std::string& args, const std::string& log, int64_t step) {
  const int status = run_logged(args, log, "PGOLF_INJECT_KILL_AFTER_STEP=" + std::to_string(step));
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

struct Record {
  std::string type;
  int64_t step;
  double value;  // loss for train records, val_loss for evaluations
  double lr_scale;
  bool operator==(const Record& o) const {
    return type == o.type && step == o.step && value == o.value && lr_scale == o.lr_scale;
  }
};

std::vector<Record> records(const std::string& dir) {
  std::vector<Record> out;
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const Json j = Json::parse(line);
    const bool train = j["type"] == "train";
    out.push_back({j["type"], j["step"], train ? j["loss"].get<double>() : j["val_loss"].get<double>(),
                   train ? j["lr_scale"].get<double>() : 0.0});
  }
  return out;
}

bool default_data_ready() { return fs::exists(kSrc + "/data/default/READY"); }

const std::string kAveraging = "--set 'train.hooks=[{\"name\":\"ema\",\"decay\":0.9},{\"name\":\"late_qat\",\"scale_below\":0.3}]' ";

TEST(Resume, KilledTwiceAndResumedReproducesTheUninterruptedRunBitForBit) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("resume");
  const std::string a = tmp.file("a"), b = tmp.file("b");
  auto full = run(kQuick + kAveraging + "--out " + a);
  ASSERT_EQ(full.code, 0) << full.out;

  ASSERT_TRUE(killed_after(kQuick + kAveraging + "--set train.warmup_steps=2 --out " + b, b + ".log1", 12))
      << read_file(b + ".log1");  // checkpoint 10 exists, 11-12 are lost
  ASSERT_TRUE(killed_after("--resume " + b, b + ".log2", 27)) << read_file(b + ".log2");  // past the evaluation at 20
  auto last = run("--resume " + b);
  ASSERT_EQ(last.code, 0) << last.out;
  EXPECT_NE(last.out.find("resumed from " + b + "/checkpoint.bin at step 25/40"), std::string::npos) << last.out;
  EXPECT_NE(read_file(b + ".log2").find("at step 10/40"), std::string::npos);

  const auto ra = records(a), rb = records(b);
  ASSERT_EQ(ra.size(), 42u);  // 40 steps + evaluations at 20 and 40
  EXPECT_TRUE(ra == rb) << "resumed metrics differ from the uninterrupted run's";
  for (size_t i = 0; i < std::min(ra.size(), rb.size()); ++i)
    if (!(ra[i] == rb[i])) {
      ADD_FAILURE() << "first difference at record " << i << ": " << ra[i].type << " step " << ra[i].step << " "
                    << ra[i].value << " vs " << rb[i].type << " step " << rb[i].step << " " << rb[i].value;
      break;
    }
  const Json sa = Json::parse(read_file(a + "/summary.json")), sb = Json::parse(read_file(b + "/summary.json"));
  EXPECT_EQ(sa["val_loss"], sb["val_loss"]);
  EXPECT_EQ(sa["first_train_loss"], sb["first_train_loss"]);
  EXPECT_EQ(sa["final_train_loss"], sb["final_train_loss"]);
  EXPECT_EQ(sb["steps"], 40);
  for (const auto& e : fs::directory_iterator(b))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Resume, RefusesWhatWouldNotContinueTheSameRun) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("resume_refuse");
  const std::string d = tmp.file("run");
  auto first = run(kQuick + "--set train.iterations=10 --set train.val_every=0 --out " + d);
  ASSERT_EQ(first.code, 0) << first.out;
  auto refused = [&](const std::string& args, int code, const std::string& expect) {
    auto r = run(args);
    EXPECT_EQ(r.code, code) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(expect), std::string::npos) << args << "\n" << r.out;
  };
  refused("--resume " + d, 2, "the run is complete (summary.json exists)");
  fs::remove(d + "/summary.json");  // from here on the run looks interrupted after its last checkpoint (step 10)

  refused("--resume " + d + " --set data.seq_len=128", 2, "'data.seq_len' cannot change in a resumed run");
  refused("--resume " + d + " --seed 7", 2, "'seed' cannot change");
  refused("--resume " + d + " --recipe recipes/default.json", 2, "drop --recipe and --out");

  const std::string recipe = read_file(d + "/recipe.json");
  Json edited = Json::parse(recipe);
  edited["optim"]["groups"][0]["lr"] = 0.5;
  write_file_atomic(d + "/recipe.json", edited.dump(2));
  refused("--resume " + d, 2, "was written by another recipe than " + d + "/recipe.json (optim.groups[0].lr: 0.05 vs 0.5");
  write_file_atomic(d + "/recipe.json", recipe);

  const std::string ckpt = read_file(d + "/checkpoint.bin");
  std::string damaged = ckpt;
  damaged[damaged.size() / 3] ^= 0x01;
  write_file_atomic(d + "/checkpoint.bin", damaged);
  refused("--resume " + d, 1, "checksum mismatch");

  Json meta;
  const TrainingState state = decode_checkpoint(ckpt, "ckpt", &meta);
  meta["world"] = 2;
  write_file_atomic(d + "/checkpoint.bin", encode_checkpoint(state, meta));
  refused("--resume " + d, 2, "was written by 2 process(es), this run has 1");

  fs::remove(d + "/checkpoint.bin");
  refused("--resume " + d, 2, "no checkpoint.bin");

  write_file_atomic(d + "/checkpoint.bin", ckpt);  // the genuine one, with a safe override: continues
  auto ok = run("--resume " + d + " --set train.log_every=2");
  ASSERT_EQ(ok.code, 0) << ok.out;
  EXPECT_TRUE(fs::exists(d + "/summary.json"));
  EXPECT_EQ(Json::parse(read_file(d + "/recipe.json"))["train"]["log_every"], 2);  // what the resumed part used
}

TEST(Guard, NanLossStopsTheRunNamingTheStepAndTheLastGoodCheckpoint) {
  ASSERT_TRUE(default_data_ready()) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("resume_nan");
  const std::string d = tmp.file("run");
  // Checked only at checkpoints (every 5) and logs (steps 1-10, then every 100): step 12's NaN is noticed at 15.
  auto r = run(kQuick + "--set train.log_every=100 --set train.nan_check_every=0 --out " + d, "PGOLF_INJECT_NAN_AT_STEP=12");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("NaN/Inf at step 12 (noticed at step 15); the last good checkpoint is " + d +
                       "/checkpoint.bin (step 10"),
            std::string::npos)
      << r.out;
  Json meta;
  read_checkpoint(d + "/checkpoint.bin", &meta);
  EXPECT_EQ(meta["step"], 10);  // the diverged state was never written
  EXPECT_FALSE(fs::exists(d + "/summary.json"));
}

}  // namespace
}  // namespace pgolf
