// The five seed recipes: exact parameter counts through the registry (spec §2.12), parameter names the
// optimizer groups and quantisers select by, finite gradients of every seed model at tiny dims (before and
// after loop activation, packed rows for the document-packing seeds), and a short CPU training run of each
// recipe through the trainer binary on the default data (`make data`).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "framework/io.h"
#include "tests/component_testing.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

const std::string kSrc = PGOLF_SOURCE_DIR;

std::shared_ptr<LanguageModel> seed_model(const std::string& recipe, const std::vector<std::string>& overrides = {}) {
  testing::SingleThreaded one_thread;
  Recipe r = load_recipe(kSrc + "/recipes/" + recipe + ".json", overrides);
  return ModelRegistry::get().build(r.section("model"));
}

// The same model for counting and naming its parameters: shapes and names do not depend on the init, and the
// seeds' orthogonal init (a QR per matrix) is two thirds of building a full-size model (~0.65 s of ~1 s).
// Pr461ParameterCount, which checks an orthogonal init's values, builds the recipe's own.
std::shared_ptr<LanguageModel> seed_model_shapes(const std::string& recipe) {
  return seed_model(recipe, {"model.linear_init=default"});
}

TEST(SeedModels, Pr1755ParameterCount) {
  // 4,194,304 embedding + 11 x 2,883,584 matrices + 22,616 block scalars + 8,192 skip tensors.
  ASSERT_EQ(4194304 + 11 * 2883584 + 22616 + 8192, 35944536);
  auto m = seed_model_shapes("pr1755");
  EXPECT_EQ(count_parameters(*m), 35944536);
  auto p = testing::params_of(*m);
  for (const char* n : {"tok_emb.weight", "blocks.0.attn.c_q.weight", "blocks.10.mlp.proj.weight", "blocks.3.attn.q_gain",
                        "blocks.7.resid_mix", "skip.skip_weights", "skip.skip_gates"})
    EXPECT_EQ(p.count(n), 1u) << n;
  EXPECT_TRUE(torch::allclose(p.at("blocks.4.attn.q_gain"), torch::full({8}, 5.0)));
}

TEST(SeedModels, Pr1855ParameterCount) {
  // #1755 + 66 lane lambdas + 1,056 sparse gate weights + 13 smear parameters.
  auto m = seed_model_shapes("pr1855");
  EXPECT_EQ(count_parameters(*m), 35944536 + 66 + 1056 + 13);
  EXPECT_EQ(count_parameters(*m), 35945671);
  auto p = testing::params_of(*m);
  for (const char* n : {"blocks.5.attn.gate.attn_gate_w", "lanes.parallel_resid_lambdas", "lanes.parallel_post_lambdas",
                        "smear.smear_gate.weight", "smear.smear_lambda"})
    EXPECT_EQ(p.count(n), 1u) << n;
}

TEST(SeedModels, Pr1693ParameterCount) {
  auto m = seed_model_shapes("pr1693");
  EXPECT_EQ(count_parameters(*m), 35945671);
  auto p = testing::params_of(*m);
  for (const char* n : {"blocks.5.attn.gate.attn_out_gate_w", "smear.smear_w", "smear.smear_lambda"})
    EXPECT_EQ(p.count(n), 1u) << n;
}

TEST(SeedModels, Pr1938ParameterCount) {
  // V = 7972 instead of 8192 (-220 x 512), + 66 lane lambdas, no gates.
  auto m = seed_model_shapes("pr1938");
  EXPECT_EQ(count_parameters(*m), 35944536 - 220 * 512 + 66);
  EXPECT_EQ(count_parameters(*m), 35831962);
}

TEST(SeedModels, Pr461ParameterCount) {
  auto m = seed_model("pr461");
  // 1024x512 embedding + bigram (2048x128 + 512x128 + 1) + value embedding (1024x128 + 256x128 + 1 + 2)
  // + 512 smear + 10 cores x (4 attention matrices + 2 MLP matrices of 1536 + 8 q_gain)
  // + 11 blocks x 2048 + 5 x 512 skip weights.
  const int64_t core = 2 * 512 * 512 + 2 * 256 * 512 + 2 * 1536 * 512 + 8;
  const int64_t expected = 1024 * 512 + (2048 * 128 + 512 * 128 + 1) + (1024 * 128 + 256 * 128 + 1 + 2) + 512 +
                           10 * core + 11 * 2048 + 5 * 512;
  ASSERT_EQ(expected, 24634452);
  EXPECT_EQ(count_parameters(*m), 24634452);
  auto p = testing::params_of(*m);
  for (const char* n : {"cores.2.attn.c_k.weight", "cores.0.attn.q_gain", "blocks.10.resid_mix", "bigram.embed.weight",
                        "bigram.proj.weight", "bigram.scale", "ve_shared.embed.weight", "ve_shared.proj.weight",
                        "ve_shared.scale", "ve_shared.ve_layer_scales.1", "smear.gate", "skip.skip_weights"})
    EXPECT_EQ(p.count(n), 1u) << n;
  // #461's generic init leaves bigram.proj and ve_shared.proj orthogonal x 1/sqrt(22), not zero.
  auto P = p.at("bigram.proj.weight");
  EXPECT_TRUE(torch::allclose(torch::matmul(P.t(), P), torch::eye(128) / 22.0, 1e-4, 1e-5));
}

TEST(SeedModels, AblationRecipesChangeOneComponent) {
  // recipes/ablations/*.json extend a seed recipe and switch one component off or replace it.
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"ablations/pr1855_no_xsa", 35945671},                  // XSA has no parameters
      {"ablations/pr1855_no_sparse_gate", 35945671 - 1056},   // 11 x 8 x 12 gate weights
      {"ablations/pr1855_single_lane", 35945671 - 66},        // the lane lambdas
      {"ablations/pr1855_no_loop", 35945671 - 3 * 2 * 512},   // 5 skip slots instead of 8
      {"ablations/pr1855_quintic", 35945671},
      {"ablations/pr1755_dense_gate", 35944536 + 11 * 8 * 512}};
  for (const auto& [recipe, count] : expected) EXPECT_EQ(count_parameters(*seed_model_shapes(recipe)), count) << recipe;
  const Recipe q = load_recipe(kSrc + "/recipes/ablations/pr1855_quintic.json", {});
  EXPECT_EQ(q.section("optim").list("groups")[1].s("coefficients"), "quintic");
  EXPECT_EQ(load_recipe(kSrc + "/recipes/pr1855.json", {}).section("optim").list("groups")[1].s("coefficients"),
            "polar_express");
  const Recipe x = load_recipe(kSrc + "/recipes/ablations/pr1855_no_xsa.json", {});
  EXPECT_TRUE(x.section("model").sub("attention").json()["xsa_layers"].empty());
}

const std::vector<std::string> kTiny = {"model.dim=32", "model.heads=4", "model.kv_heads=2",
                                        "model.attention.rope_dims=4", "model.vocab_size=64"};

void expect_finite_gradients(LanguageModel& m, const std::string& what, const torch::Tensor& cu = {}) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
  auto x = torch::randint(1, 64, {1, 24}, torch::kLong), y = torch::randint(0, 64, {1, 24}, torch::kLong);
  x[0][0] = 1;
  x[0][10] = 1;
  auto loss = m.loss(x, y, cu, 12);
  ASSERT_TRUE(std::isfinite(loss.item<double>())) << what;
  loss.backward();
  for (const auto& p : m.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << what << ": " << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << what << ": " << p.key();
  }
}

TEST(SeedModels, GradientsAreFiniteForEverySeedModel) {
  testing::SingleThreaded one_thread;
  torch::manual_seed(0);
  for (const std::string seed : {"pr1755", "pr1855", "pr1693", "pr1938", "pr461"}) {
    auto overrides = kTiny;
    if (seed == "pr461") overrides.push_back("model.attention.rope_ntk_train_seq_len=16");  // NTK active at T = 24
    auto m = seed_model(seed, overrides);
    testing::perturb(*m, 0.02);  // zero-initialised projections and gates would give trivially zero gradients
    m->train();
    expect_finite_gradients(*m, seed + " before looping");
    m->on_train_progress(1.0);
    expect_finite_gradients(*m, seed + " looped");
    if (seed != "pr1755" && seed != "pr461")
      expect_finite_gradients(*m, seed + " packed", torch::tensor({0, 10, 22, 24, 24}, torch::kInt32));
  }
}

// ---- short CPU training of each recipe -----------------------------------------------------------

testing::CommandResult run_trainer(const std::string& args) {
  return testing::run_command("cd " + kSrc + " && " + std::string(PGOLF_BIN_DIR) + "/trainer " + args);
}

void short_train(const std::string& seed, const std::string& extra = "") {
  ASSERT_TRUE(fs::exists(kSrc + "/data/default/READY")) << "the default data is missing: run `make data` first";
  const testing::TempDir tmp("seed_" + seed);
  const fs::path out = tmp.file("run");
  std::string args = "--recipe recipes/" + seed + ".json";
  for (const char* s : {"model.dim=32", "model.heads=4", "model.kv_heads=2", "model.attention.rope_dims=4",
                        "model.vocab_size=1024", "data.train=data/default/default_train_*.bin",
                        "data.val=data/default/default_val_*.bin", "data.tokenizer=data/default/tokenizer.model",
                        "data.seq_len=128", "data.batch_tokens=512", "data.micro_batches=1", "data.val_max_tokens=2048",
                        "train.iterations=6", "train.max_wallclock_seconds=0", "train.log_every=1",
                        // one rolled-back warmup step of each kind keeps that path in the run (the recipes' 20 + 20
                        // were three quarters of this test's time)
                        "train.warmup_steps=1", "train.warmup_looped_steps=1",
                        "eval.batch_tokens=2048", "'pipeline=[{\"name\":\"apply_averaging\"},{\"name\":\"evaluate\"}]'", "train.threads=1",
                        // the default data is plain SP: bytes from its LUT (the seeds count CaseOps sidecars / <cap>)
                        "'eval.byte_counter={\"name\":\"lut\"}'"})
    args += std::string(" --set ") + s;
  auto r = run_trainer(args + " " + extra + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("step 6/6 loss"), std::string::npos) << r.out;
  const Json summary = Json::parse(read_file((out / "summary.json").string()));
  EXPECT_EQ(summary["steps"].get<int64_t>(), 6);
  EXPECT_TRUE(std::isfinite(summary["final_train_loss"].get<double>())) << summary.dump();
  EXPECT_TRUE(std::isfinite(summary["val_bpb"].get<double>())) << summary.dump();
}

// Each run passes the loop activation (fraction 0.35 of 6 steps) mid-way, so both phases train.
TEST(SeedRecipesTrain, Pr1755) { short_train("pr1755"); }
TEST(SeedRecipesTrain, Pr1855) { short_train("pr1855"); }  // document packing + varlen attention
TEST(SeedRecipesTrain, Pr1693) { short_train("pr1693"); }
TEST(SeedRecipesTrain, Pr1938) { short_train("pr1938"); }
TEST(SeedRecipesTrain, Pr461) { short_train("pr461", "--set model.attention.rope_ntk_train_seq_len=64"); }

}  // namespace
}  // namespace pgolf
