// The seed recipes' export configuration against spec posttrain §4.3: calibrate -> quantize with each seed's
// bits and k per group, calibration batches and tap policy, small-tensor threshold, LQER and the gate, and
// #461's RTN; every pipeline builds (as --dry-run does).
#include <gtest/gtest.h>

#include "framework/pipeline.h"
#include "framework/recipe.h"

namespace pgolf {
namespace {

const std::string kSrc = PGOLF_SOURCE_DIR;

struct Seed {
  std::string recipe;
  int64_t batches;
  std::string policy;
  int attn_bits, mlp_bits, embed_bits;
  double attn_k, mlp_k, embed_k;
  int64_t lqer_top_k;
  bool gate;
};

Json stage(const Recipe& r, const std::string& name) {
  for (const auto& s : r.resolved["pipeline"])
    if (s["name"] == name) return s;
  return Json();
}

TEST(QuantRecipes, GptqSeedsFollowTheSpecTable) {
  const std::vector<Seed> seeds = {{"pr1755", 64, "module_inputs", 6, 6, 8, 12.85, 12.85, 20.0, 0, false},
                                   {"pr1693", 16, "block_taps", 6, 6, 7, 13.0, 12.0, 15.0, 0, false},
                                   {"pr1855", 16, "block_taps", 6, 6, 7, 13.0, 11.5, 14.0, 3, true},
                                   {"pr1938", 16, "block_taps", 6, 6, 8, 13.0, 10.0, 20.0, 3, false}};
  for (const auto& s : seeds) {
    const Recipe r = load_recipe(kSrc + "/recipes/" + s.recipe + ".json", {});
    EXPECT_NO_THROW(build_pipeline(r.root())) << s.recipe;
    const Json c = stage(r, "calibrate"), q = stage(r, "quantize")["quantizer"];
    ASSERT_TRUE(c.is_object()) << s.recipe;
    EXPECT_EQ(c["batches"], s.batches) << s.recipe;
    EXPECT_EQ(c["tap_policy"], s.policy) << s.recipe;
    EXPECT_EQ(c["loader"]["name"], "shuffled_sequences") << s.recipe;
    EXPECT_EQ(c["loader"]["seed_source"], "rank") << s.recipe;
    EXPECT_EQ(q["name"], "gptq") << s.recipe;
    EXPECT_EQ(q["attn"]["bits"], s.attn_bits) << s.recipe;
    EXPECT_EQ(q["mlp"]["bits"], s.mlp_bits) << s.recipe;
    EXPECT_EQ(q["embed"]["bits"], s.embed_bits) << s.recipe;
    EXPECT_DOUBLE_EQ(q["attn"]["k"].get<double>(), s.attn_k) << s.recipe;
    EXPECT_DOUBLE_EQ(q["mlp"]["k"].get<double>(), s.mlp_k) << s.recipe;
    EXPECT_DOUBLE_EQ(q["embed"]["k"].get<double>(), s.embed_k) << s.recipe;
    EXPECT_DOUBLE_EQ(q["other"]["k"].get<double>(), 12.85) << s.recipe;
    EXPECT_EQ(q["small"]["max_numel"], 65536) << s.recipe;
    EXPECT_EQ(q["small"]["gate_int8_row"], s.gate) << s.recipe;
    EXPECT_EQ(q["lqer"]["top_k"], s.lqer_top_k) << s.recipe;
    if (s.lqer_top_k) EXPECT_EQ(q["lqer"]["rank"], 4) << s.recipe;
  }
}

TEST(QuantRecipes, Pr461UsesItsRtnAndTheDefaultKeepsInt8Row) {
  const Recipe r461 = load_recipe(kSrc + "/recipes/pr461.json", {});
  EXPECT_NO_THROW(build_pipeline(r461.root()));
  EXPECT_FALSE(stage(r461, "calibrate").is_object());
  const Json q = stage(r461, "quantize")["quantizer"];
  EXPECT_EQ(q["name"], "rtn461");
  EXPECT_EQ(q["attn_bits"], 6);
  EXPECT_EQ(q["mlp_bits"], 5);
  EXPECT_EQ(q["small_max_numel"], 8192);
  const Recipe def = load_recipe(kSrc + "/recipes/default.json", {});
  EXPECT_EQ(stage(def, "quantize")["quantizer"]["name"], "int8_row");
  EXPECT_FALSE(stage(def, "calibrate").is_object());
}

}  // namespace
}  // namespace pgolf
