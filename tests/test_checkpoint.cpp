// Training state capture/restore, the warmup rollback and the checkpoint file: after warmup_and_rollback
// the weights, optimizer states (bf16 Muon momentum included), training-hook state, loader position and RNG
// are bit-identical to before and the depth loop is off again; a checkpoint file round-trips exactly;
// damaged or foreign files and states of another model are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "framework/artifact.h"
#include "framework/checkpoint.h"
#include "framework/io.h"
#include "framework/recipe.h"
#include "framework/shard.h"
#include "framework/warmup.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// A small GPT with family A's segment loop (on from training fraction 0.5), Muon with bf16 momentum on
// the matrices, Adam on the rest, an EMA, and a token_stream loader over two random shards.
struct Rig {
  Recipe recipe;
  std::shared_ptr<LanguageModel> model;
  std::vector<std::shared_ptr<Optimizer>> optimizers;
  TrainingHooks hooks;
  std::shared_ptr<TrainLoader> loader;
  LoaderContext lctx;

  Rig(const TempDir& dir, uint64_t init_seed, int64_t dim = 32) {
    const Json raw = {
        {"model",
         {{"name", "gpt"}, {"vocab_size", 64}, {"layers", 4}, {"dim", dim}, {"heads", 2}, {"kv_heads", 1},
          {"recurrence", {{"name", "segment_loop"}, {"loop_start", 1}, {"loop_end", 2}, {"num_loops", 1}, {"activate_at", 0.5}}}}},
        {"optim",
         {{"groups", Json::array({Json{{"name", "muon"}, {"momentum_dtype", "bf16"},
                                       {"params", {{"min_ndim", 2}, {"max_ndim", 2}, {"exclude", {"tok_emb.weight"}}}}},
                                  Json{{"name", "adam"}, {"lr", 0.01}}})}}},
        {"train", {{"hooks", Json::array({Json{{"name", "ema"}, {"decay", 0.9}}})}}}};
    recipe = resolve_recipe(raw, "test", {});
    torch::manual_seed(init_seed);
    model = ModelRegistry::get().build(recipe.section("model"));
    std::vector<NamedParam> params;
    for (const auto& p : model->named_parameters(true)) params.push_back({p.key(), p.value()});
    optimizers = build_optimizers(recipe.section("optim"), params);
    for (const auto& h : recipe.section("train").list("hooks")) hooks.push_back(TrainingHookRegistry::get().build(h));
    std::vector<std::string> files;
    for (int s = 0; s < 2; ++s) {
      std::vector<uint16_t> tokens;
      for (int i = 0; i < 700; ++i) tokens.push_back(static_cast<uint16_t>((i * 37 + s * 11 + i * i) % 64));
      files.push_back(dir.file("train_00000" + std::to_string(s) + ".bin"));
      write_shard(files.back(), tokens);
    }
    lctx = LoaderContext{files, /*seq_len=*/16, /*local_tokens=*/64, 0, 1, /*seed=*/5};
    loader = LoaderRegistry::get().build(recipe.section("data").sub("loader"), lctx);
    model->train();
    for (auto& h : hooks) h->begin(*model);
  }

  TrainingParts parts() { return TrainingParts{*model, optimizers, *loader, hooks}; }

  void step(double scale, int64_t n) {
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    Batch b = loader->next();
    model->loss(b.x, b.y).backward();
    for (auto& o : optimizers) o->step(scale, n);
    for (auto& h : hooks) h->after_step(*model, scale, n + 1);
    (void)torch::rand({3});  // the CPU generator moves too
  }
};

void expect_same(const TrainingState& a, const TrainingState& b) {
  ASSERT_EQ(a.model.size(), b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    EXPECT_EQ(a.model[i].first, b.model[i].first);
    EXPECT_TRUE(torch::equal(a.model[i].second, b.model[i].second)) << a.model[i].first;
  }
  auto same_maps = [](const std::vector<std::map<std::string, torch::Tensor>>& x,
                      const std::vector<std::map<std::string, torch::Tensor>>& y, const char* what) {
    ASSERT_EQ(x.size(), y.size()) << what;
    for (size_t g = 0; g < x.size(); ++g) {
      ASSERT_EQ(x[g].size(), y[g].size()) << what << " " << g;
      for (const auto& [k, t] : x[g]) {
        ASSERT_TRUE(y[g].count(k)) << what << " " << k;
        EXPECT_EQ(t.scalar_type(), y[g].at(k).scalar_type()) << what << " " << k;
        EXPECT_TRUE(torch::equal(t, y[g].at(k))) << what << " " << k;
      }
    }
  };
  same_maps(a.optimizers, b.optimizers, "optimizer");
  same_maps(a.hooks, b.hooks, "hook");
  EXPECT_EQ(a.hook_meta, b.hook_meta);
  EXPECT_EQ(a.loader, b.loader);
  EXPECT_TRUE(torch::equal(a.cpu_rng, b.cpu_rng));
}

bool differs(const TrainingState& a, const TrainingState& b) {
  for (size_t i = 0; i < a.model.size(); ++i)
    if (!torch::equal(a.model[i].second, b.model[i].second)) return true;
  return false;
}

TEST(WarmupRollback, RestoresWeightsOptimizersHooksLoaderAndRngBitForBit) {
  TempDir dir;
  Rig s(dir, 1);
  s.step(1.0, 0);  // non-zero moments and a moved loader before the snapshot
  auto probe_x = torch::randint(0, 64, {2, 16}, torch::kLong), probe_y = torch::randint(0, 64, {2, 16}, torch::kLong);
  const auto loss_before = s.model->loss(probe_x, probe_y).detach().clone();
  const TrainingState before = capture_state(s.parts());

  int calls = 0;
  TrainingState during;
  warmup_and_rollback(s.parts(), 3, 2, [&] {
    s.step(1.0, 0);
    if (++calls == 5) during = capture_state(s.parts());
  });
  EXPECT_EQ(calls, 5);
  ASSERT_TRUE(differs(before, during)) << "the warmup steps changed nothing; the test would prove nothing";
  EXPECT_NE(before.loader, during.loader);

  expect_same(before, capture_state(s.parts()));
  // The loader continues where it was: the same batch a twin loader gives after the one pre-snapshot batch.
  auto twin = LoaderRegistry::get().build(s.recipe.section("data").sub("loader"), s.lctx);
  twin->next();
  Batch a = s.loader->next(), b = twin->next();
  EXPECT_TRUE(torch::equal(a.x, b.x));
  EXPECT_TRUE(torch::equal(a.y, b.y));
  // The late warmup steps switched the depth loop on; the rollback switched it off again.
  EXPECT_TRUE(torch::equal(s.model->loss(probe_x, probe_y), loss_before));
  s.model->on_train_progress(1.0);
  EXPECT_FALSE(torch::equal(s.model->loss(probe_x, probe_y), loss_before)) << "looping should change the loss";
}

TEST(WarmupRollback, NoStepsIsANoOp) {
  TempDir dir;
  Rig s(dir, 2);
  int calls = 0;
  const TrainingState before = capture_state(s.parts());
  warmup_and_rollback(s.parts(), 0, 0, [&] { ++calls; });
  EXPECT_EQ(calls, 0);
  expect_same(before, capture_state(s.parts()));
}

TEST(Checkpoint, FileRoundTripRestoresExactlyIntoAFreshRun) {
  TempDir dir;
  Rig s(dir, 3);
  for (int i = 0; i < 3; ++i) s.step(0.5, i);
  const TrainingState saved = capture_state(s.parts());
  write_checkpoint(dir.file("checkpoint.bin"), saved, Json{{"step", 3}, {"note", "x"}});
  EXPECT_FALSE(fs::exists(dir.file("checkpoint.bin.tmp." + std::to_string(::getpid()))));

  Rig fresh(dir, 99);  // other initial weights
  ASSERT_TRUE(differs(saved, capture_state(fresh.parts())));
  Json meta;
  restore_state(fresh.parts(), read_checkpoint(dir.file("checkpoint.bin"), &meta), "checkpoint");
  EXPECT_EQ(meta["step"], 3);
  EXPECT_EQ(meta["note"], "x");
  expect_same(saved, capture_state(fresh.parts()));
  // And both continue identically.
  s.step(0.5, 3);
  fresh.step(0.5, 3);
  expect_same(capture_state(s.parts()), capture_state(fresh.parts()));
}

TEST(Checkpoint, DamagedOrForeignFilesAreRefused) {
  TempDir dir;
  Rig s(dir, 4);
  const std::string bytes = encode_checkpoint(capture_state(s.parts()), Json::object());
  auto refused = [&](const std::string& b, const std::string& expect) {
    try {
      decode_checkpoint(b, "ck.bin", nullptr);
      ADD_FAILURE() << "accepted; expected a message with '" << expect << "'";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("ck.bin"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  refused(flipped, "checksum");
  refused(bytes.substr(0, bytes.size() - 100), "truncated");
  refused("hello", "not a pgolf checkpoint");
  QuantizedState other;  // a valid container that is not a checkpoint (an artifact, say)
  other.tensors.emplace_back("w", torch::ones({2}));
  refused(serialize_state(other), "not a pgolf checkpoint");
}

TEST(Checkpoint, StateOfAnotherModelIsRefusedNamingTheTensor) {
  TempDir dir;
  Rig small(dir, 5, 32), wide(dir, 5, 48);
  try {
    restore_state(wide.parts(), capture_state(small.parts()), "ck.bin");
    FAIL() << "a 32-wide state went into a 48-wide model";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ck.bin: tensor '"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, FirstDifferenceNamesTheKeyPath) {
  const Json a = {{"train", {{"iterations", 10}}}, {"optim", {{"groups", {{{"lr", 0.1}}, {{"lr", 0.2}}}}}}};
  Json b = a;
  EXPECT_EQ(first_difference(a, b), "");
  b["optim"]["groups"][1]["lr"] = 0.3;
  EXPECT_EQ(first_difference(a, b), "optim.groups[1].lr: 0.2 vs 0.3");
  b = a;
  b["train"]["extra"] = true;
  EXPECT_EQ(first_difference(a, b), "train.extra: absent vs true");
}

}  // namespace
}  // namespace pgolf
