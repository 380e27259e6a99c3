// Issue 14 class 9 (messages) and issue 9 items 5 and 7, through the trainer binary and the functions
// behind it:
//  - errors and warnings go to stderr (and train.log), progress to stdout;
//  - a directory given where a file is expected is named as one;
//  - a key given twice in a recipe (or a --set value) is refused naming the file and the key path;
//  - an empty flag value, a --profile path that cannot be written and a non-empty --out that holds no run
//    are refused before anything is built or written;
//  - cross-key checks (Config::check) name the file, the keys and the values, exit 2, and run before the
//    members they guard are built;
//  - a model too large for the machine stops naming its size, not with an abort;
//  - --list names the file of every registered component.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "framework/recipe.h"
#include "framework/shard.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = PGOLF_SOURCE_DIR;
const std::string kTrainer = std::string(PGOLF_BIN_DIR) + "/trainer";

const std::string& kTiny = testing::kTinyRun;

bool data_ready() { return fs::exists(kSrc + "/data/default/READY"); }

#define REQUIRE_DATA() \
  if (!data_ready()) GTEST_SKIP() << "default data missing: run `make data`"

testing::CommandResult trainer(const std::string& args, const std::string& env = "") {
  return testing::run_command("cd " + kSrc + " && " + env + " " + kTrainer + " " + args);
}

// The trainer with its two streams apart: `out` is stdout alone, `err` stderr alone.
struct Streams {
  int code;
  std::string out, err;
};
Streams trainer_streams(const testing::TempDir& t, const std::string& args, const std::string& env = "") {
  const std::string err_file = t.file("stderr.txt");
  const auto r = testing::run_command("(cd " + kSrc + " && " + env + " " + kTrainer + " " + args + " 2> " + err_file + ")");
  return {r.code, r.out, read_file(err_file)};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- errors and warnings on stderr ----------------------------------------------------------------------

TEST(MessagesStreams, ConfigErrorGoesToStderrNotStdout) {
  testing::TempDir t("streams");
  const Streams r = trainer_streams(t, "--recipe recipes/default.json --set model.layerz=3 --dry-run");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "error: recipes/default.json: model.layerz: unknown key")) << r.err;
  EXPECT_FALSE(has(r.out, "error")) << r.out;
}

TEST(MessagesStreams, TrainingWarningsAndErrorsGoToStderrAndTheLogProgressToStdout) {
  REQUIRE_DATA();
  testing::TempDir t("streams");
  const std::string out = t.file("run");
  // LR 0 keeps the loss at ln(vocab): the stuck-loss warning after 2 steps; a NaN at step 5 is the error.
  const std::string stuck =
      "--set 'schedule={\"name\":\"constant\"}' --set train.iterations=6 --set train.stuck_loss_steps=2 "
      "--set 'optim.groups=[{\"name\":\"adam\",\"params\":{\"include\":[\"*\"]},\"lr\":0}]' ";
  const Streams r = trainer_streams(t, kTiny + stuck + "--out " + out, "PGOLF_INJECT_NAN_AT_STEP=5");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "step 1/6")) << r.out;  // progress on stdout ...
  EXPECT_FALSE(has(r.err, "step 1/6")) << r.err;
  EXPECT_FALSE(has(r.out, "warning:")) << r.out;  // ... problems on stderr alone
  EXPECT_FALSE(has(r.out, "error:")) << r.out;
  EXPECT_TRUE(has(r.err, "warning: the training loss has stayed at ln(vocab_size)")) << r.err;
  EXPECT_TRUE(has(r.err, "error: ")) << r.err;
  EXPECT_TRUE(has(r.err, "training diverged")) << r.err;
  const std::string log = read_file(out + "/train.log");  // and everything in the log
  EXPECT_TRUE(has(log, "step 1/6")) << log;
  EXPECT_TRUE(has(log, "warning: the training loss has stayed")) << log;
  EXPECT_TRUE(has(log, "error: ")) << log;
}

// ---- a directory where a file is expected ---------------------------------------------------------------

TEST(MessagesFiles, ReadersNameADirectoryAsOne) {
  testing::TempDir t("dirs");
  EXPECT_TRUE(has(error_of([&] { read_file(t.path); }), t.path + " is a directory, expected a file"));
  EXPECT_TRUE(has(error_of([&] { ShardView v(t.path); }), t.path + " is a directory, expected a token shard file"));
  // A recipe that is a directory, also one reached through "extends".
  EXPECT_TRUE(has(error_of([&] { load_recipe(t.path, {}); }), t.path + " is a directory"));
  fs::create_directories(t.file("base.json"));
  const std::string child = t.write("child.json", R"({"extends": "base.json"})");
  const std::string e = error_of([&] { load_recipe(child, {}); });
  EXPECT_TRUE(has(e, t.file("base.json") + " is a directory")) << e;
  EXPECT_FALSE(has(e, "not valid JSON")) << e;
}

TEST(MessagesFiles, TrainerNamesADirectoryGivenForAFile) {
  testing::TempDir t("dirs");
  const std::string dir = t.file("d");
  fs::create_directories(dir);
  auto recipe = trainer("--recipe " + dir + " --dry-run");
  EXPECT_EQ(recipe.code, 2) << recipe.out;
  EXPECT_TRUE(has(recipe.out, dir + " is a directory")) << recipe.out;
  auto plugin = trainer("--plugin " + dir + " --list");
  EXPECT_EQ(plugin.code, 2) << plugin.out;
  EXPECT_TRUE(has(plugin.out, "is a directory")) << plugin.out;
  auto artifact = trainer(kTiny + "--eval-artifact " + dir + " --out " + t.file("eval"));
  EXPECT_EQ(artifact.code, 2) << artifact.out;
  EXPECT_TRUE(has(artifact.out, "--eval-artifact " + dir + " is a directory, expected an artifact file")) << artifact.out;
  EXPECT_FALSE(fs::exists(t.file("eval")));
}

TEST(MessagesFiles, DataDirectoriesAreNamedBeforeTheRunDirectoryExists) {
  REQUIRE_DATA();
  testing::TempDir t("dirs");
  const std::string dir = t.file("d");
  fs::create_directories(dir);
  auto shard = trainer(kTiny + "--set train.iterations=1 --set data.train=" + dir + " --out " + t.file("a"));
  EXPECT_NE(shard.code, 0) << shard.out;
  EXPECT_TRUE(has(shard.out, dir + " is a directory, expected a token shard file")) << shard.out;
  EXPECT_FALSE(has(shard.out, "mmap failed")) << shard.out;
  EXPECT_FALSE(fs::exists(t.file("a")));
  auto tok = trainer(kTiny + "--set train.iterations=1 --set data.tokenizer=" + dir + " --out " + t.file("b"));
  EXPECT_NE(tok.code, 0) << tok.out;
  EXPECT_TRUE(has(tok.out, "tokenizer model: " + dir + " is a directory")) << tok.out;
  EXPECT_FALSE(has(tok.out, "does not exist")) << tok.out;
  EXPECT_FALSE(fs::exists(t.file("b")));
}

// ---- duplicate keys ---------------------------------------------------------------------------------------

TEST(MessagesRecipe, DuplicateKeysAreRefusedNamingFileAndKeyPath) {
  testing::TempDir t("dup");
  auto top = t.write("top.json", R"({"seed": 1, "seed": 2})");
  EXPECT_TRUE(has(error_of([&] { load_recipe(top, {}); }), top + ": seed: duplicate key")) << error_of([&] { load_recipe(top, {}); });
  auto nested = t.write("nested.json", R"({"model": {"name": "gpt", "dim": 64, "layers": 2, "dim": 128}})");
  EXPECT_TRUE(has(error_of([&] { load_recipe(nested, {}); }), nested + ": model.dim: duplicate key"));
  auto listed = t.write("listed.json",
                        R"({"pipeline": [{"name": "evaluate"}, {"name": "evaluate", "label": "a", "label": "b"}]})");
  const std::string e = error_of([&] { load_recipe(listed, {}); });
  EXPECT_TRUE(has(e, listed + ": pipeline[1].label: duplicate key")) << e;
  // The same key in different objects is no duplicate.
  auto fine = t.write("fine.json", R"({"model": {"name": "gpt", "mlp": {"name": "relu2"}}, "pipeline": [{"name": "evaluate"}, {"name": "evaluate"}]})");
  EXPECT_EQ(error_of([&] { load_recipe(fine, {}); }), "");
  // In a base recipe: its own file is named.
  t.write("base.json", R"({"train": {"iterations": 3, "iterations": 4}})");
  auto child = t.write("child.json", R"({"extends": "base.json"})");
  EXPECT_TRUE(has(error_of([&] { load_recipe(child, {}); }), t.file("base.json") + ": train.iterations: duplicate key"));
  // In a --set value: the path within the recipe.
  const std::string s = error_of([] { resolve_recipe(Json::object(), "x.json", {R"(pipeline=[{"name":"evaluate","name":"prune"}])"}); });
  EXPECT_TRUE(has(s, "x.json: --set pipeline=")) << s;
  EXPECT_TRUE(has(s, ": pipeline[0].name: duplicate key")) << s;
}

TEST(MessagesRecipe, TrainerExitsTwoOnADuplicateKey) {
  testing::TempDir t("dup");
  auto f = t.write("r.json", R"({"extends": ")" + kSrc + R"(/recipes/default.json", "train": {"iterations": 1, "iterations": 2}})");
  auto r = trainer("--recipe " + f + " --dry-run");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(has(r.out, f + ": train.iterations: duplicate key")) << r.out;
}

// ---- output paths ----------------------------------------------------------------------------------------

TEST(MessagesOut, EmptyFlagValuesAreRefused) {
  for (const std::string flag : {"--out", "--recipe", "--profile", "--set"}) {
    auto r = trainer("--recipe recipes/default.json --dry-run " + flag + " ''");
    EXPECT_EQ(r.code, 2) << flag << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "trainer: " + flag + ": the value is empty")) << r.out;
  }
}

TEST(MessagesOut, NonEmptyDirectoryWithoutARunIsRefused) {
  testing::TempDir t("foreign");
  const std::string dir = t.file("mine");
  fs::create_directories(dir);
  const std::string notes = dir + "/notes.txt";
  { std::ofstream(notes) << "my notes"; }
  auto r = trainer("--recipe recipes/default.json --dry-run --out " + dir);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "--out " + dir + ": is not empty and holds no run (it has 'notes.txt'")) << r.out;
  EXPECT_TRUE(has(r.out, "choose a new or empty directory")) << r.out;
  EXPECT_FALSE(has(r.out, "params:")) << r.out;  // refused before the model was built
  EXPECT_EQ(read_file(notes), "my notes");
  EXPECT_FALSE(fs::exists(dir + "/recipe.json"));
  fs::remove(notes);  // an empty directory is a fine --out
  auto ok = trainer("--recipe recipes/default.json --dry-run --out " + dir);
  EXPECT_EQ(ok.code, 0) << ok.out;
}

TEST(MessagesOut, ProfilePathThatCannotBeWrittenIsRefusedBeforeTraining) {
  testing::TempDir t("profile");
  const std::string out = t.file("run");
  auto missing = trainer(kTiny + "--set train.iterations=8 --profile " + t.file("nodir/trace.json") + " --out " + out);
  EXPECT_EQ(missing.code, 2) << missing.out;
  EXPECT_TRUE(has(missing.out, "--profile " + t.file("nodir/trace.json") + ": cannot be written, " + t.file("nodir") +
                                   " does not exist")) << missing.out;
  EXPECT_FALSE(has(missing.out, "params:")) << missing.out;
  EXPECT_FALSE(fs::exists(out));
  auto dir = trainer(kTiny + "--set train.iterations=8 --profile " + t.path + " --out " + out);
  EXPECT_EQ(dir.code, 2) << dir.out;
  EXPECT_TRUE(has(dir.out, "--profile " + t.path + ": is a directory")) << dir.out;
  EXPECT_FALSE(fs::exists(out));
}

// ---- one checking helper -------------------------------------------------------------------------------------

TEST(MessagesChecks, ConfigCheckNamesFileKeyValueAndExpectation) {
  const Config model(Json{{"dim", 130}, {"heads", 4}}, "model", "r.json");
  EXPECT_NO_THROW(model.check(true, "dim", "anything"));
  try {
    model.check(false, "dim", "a multiple of model.heads (4)");
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "r.json: model.dim: expected a multiple of model.heads (4), got 130");
  }
  // A section read from a recipe carries its file down to its sub-sections and list entries.
  const Recipe r = resolve_recipe(Json::object(), "x.json", {});
  EXPECT_EQ(r.section("model").sub("attention").file(), "x.json");
  EXPECT_EQ(r.root().sub("optim").list("groups").size(), r.resolved["optim"]["groups"].size());
  for (const auto& g : r.root().sub("optim").list("groups")) EXPECT_EQ(g.file(), "x.json");
}

TEST(MessagesChecks, ModelShapeErrorsNameFileKeysValuesAndExitTwo) {
  const std::string base = "--recipe recipes/default.json --dry-run ";  // dim 128, heads 4, kv_heads 2
  struct Case {
    std::string sets;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"--set model.dim=256 --set model.attention.rope_dims=128",  // head dim 64
       {"recipes/default.json: model.attention.rope_dims: expected an even number of channels at most the head dim "
        "d_h = model.dim / model.heads = 256 / 4 = 64",
        "got 128"}},
      {"--set model.attention.rope_dims=7", {"model.attention.rope_dims: expected an even number", "got 7"}},
      {"--set model.dim=36",  // head dim 9, rope_dims 0: the shape is at fault, not rope_dims
       {"recipes/default.json: model.dim: expected an even head dim for RoPE over the whole head",
        "36 / 4 = 9 is odd", "got 36"}},
      {"--set model.dim=130", {"recipes/default.json: model.dim: expected a multiple of model.heads (4)", "got 130"}},
      {"--set model.kv_heads=3", {"recipes/default.json: model.heads: expected a multiple of model.kv_heads (3)", "got 4"}},
      {"--set model.attention.rope_dims=2 --set model.attention.rope_ntk_train_seq_len=128",
       {"model.attention.rope_ntk_train_seq_len: expected 0 when only 2 channels rotate", "got 128"}},
  };
  for (const auto& c : cases) {
    auto r = trainer(base + c.sets);
    EXPECT_EQ(r.code, 2) << c.sets << "\n" << r.out;
    for (const auto& e : c.expect) EXPECT_TRUE(has(r.out, e)) << c.sets << "\nwanted: " << e << "\n" << r.out;
    EXPECT_FALSE(has(r.out, "params:")) << r.out;
  }
  auto fine = trainer(base + "--set model.attention.rope_dims=16");  // partial RoPE within the head
  EXPECT_EQ(fine.code, 0) << fine.out;
}

// ---- a model too large for the machine ----------------------------------------------------------------------

TEST(MessagesAlloc, ModelTooLargeForTheMemoryStopsNamingItsSize) {
  // 64 MB "available": on the CPU a third of it for the weights. dim 1024 x 4 layers is ~29M parameters.
  const std::string env = "PGOLF_MODEL_MEMORY_BYTES=64000000";
  auto big = trainer("--recipe recipes/default.json --dry-run --set model.dim=1024 --set model.heads=8 --set model.kv_heads=4", env);
  EXPECT_EQ(big.code, 2) << big.out;
  EXPECT_TRUE(has(big.out, "recipes/default.json: model: too large for this machine: its parameters and buffers passed"))
      << big.out;
  EXPECT_TRUE(has(big.out, "fp32 values")) << big.out;
  EXPECT_TRUE(has(big.out, "0.06 GiB available")) << big.out;
  EXPECT_TRUE(has(big.out, "model.dim, model.layers")) << big.out;
  auto small = trainer("--recipe recipes/default.json --dry-run", env);  // the default fits the same limit
  EXPECT_EQ(small.code, 0) << small.out;
  EXPECT_TRUE(has(small.out, "params: ")) << small.out;
}

// ---- --list -------------------------------------------------------------------------------------------------

TEST(MessagesList, ListNamesTheFileOfEveryComponent) {
  auto r = trainer("--list");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "  gqa - ")) << r.out;
  EXPECT_TRUE(has(r.out, "      in models/gqa_attention.cpp\n")) << r.out;
  EXPECT_TRUE(has(r.out, "      in optim/muon.cpp\n")) << r.out;
  EXPECT_TRUE(has(r.out, "      in framework/stage_write_artifact.cpp\n")) << r.out;
}

}  // namespace
}  // namespace pgolf
