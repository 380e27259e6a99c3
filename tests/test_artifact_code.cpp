// Code accounting (posttrain §7.4, §11.9, §12.8): the budget vector of the spec; comment stripping by hand-made
// vectors (strings, characters, raw strings and digit separators kept) and idempotent; the minimal bundle of a
// recipe holds its components and not the others, and counts the same every time; a missing code source or
// a missing lrzip is refused when the pipeline is built (so by --dry-run, and before any run directory); an
// artifact is scored from its bytes alone by --eval-artifact; pgolf-artifact inspect reads it and refuses a
// damaged one.
#include <gtest/gtest.h>

#include <filesystem>

#include "framework/code_size.h"
#include "framework/io.h"
#include "framework/pipeline.h"
#include "framework/recipe.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;
const std::string kSrc = PGOLF_SOURCE_DIR;
const std::string kBin = PGOLF_BIN_DIR;

TEST(ArtifactCode, SpecBudgetVector) {
  // §11.9: #1855 seed 42 fits, #1938 seed 42 does not (decimal bytes).
  const Json a = budget_summary(15865260, CodeCount{31999, "pyminify"}, 16000000);
  EXPECT_EQ(a["artifact_bytes"], 15897259);
  EXPECT_EQ(a["artifact_model_bytes"], 15865260);
  EXPECT_EQ(a["artifact_code_bytes"], 31999);
  EXPECT_EQ(a["code_counting"], "pyminify");
  EXPECT_TRUE(a["within_budget"].get<bool>());
  const Json b = budget_summary(16839335, CodeCount{31085, "lzma"}, 16000000);
  EXPECT_EQ(b["artifact_bytes"], 16870420);
  EXPECT_FALSE(b["within_budget"].get<bool>());
  EXPECT_TRUE(budget_summary(15999999, CodeCount{1, ""}, 16000000)["within_budget"].get<bool>());
  EXPECT_FALSE(budget_summary(16000000, CodeCount{1, ""}, 16000000)["within_budget"].get<bool>());
}

TEST(ArtifactCode, StripCppRemovesCommentsAndBlankLinesOnly) {
  const std::string in =
      "// header comment\n"
      "#include \"a.h\"  // why\n"
      "\n"
      "int x = 1'000'000; /* block\n still block */ int y = 2;\n"
      "const char* s = \"// not a comment /* nor this */\";\n"
      "char c = '/', d = '\\'', e = '\"';\n"
      "auto r = R\"x(raw // kept\n /* kept */)x\";   \n"
      "   \n"
      "int z; // trailing\n";
  const std::string want =
      "#include \"a.h\"\n"
      "int x = 1'000'000;   int y = 2;\n"
      "const char* s = \"// not a comment /* nor this */\";\n"
      "char c = '/', d = '\\'', e = '\"';\n"
      "auto r = R\"x(raw // kept\n"
      " /* kept */)x\";\n"
      "int z;\n";
  EXPECT_EQ(strip_cpp(in), want);
  EXPECT_EQ(strip_cpp(want), want);  // stable: stripping the stripped changes nothing
  EXPECT_EQ(strip_cmake("# c\nset(A \"x#y\")  # why\n\n  add(B)\n"), "set(A \"x#y\")\n  add(B)\n");
}

Recipe recipe_with(const Json& write_artifact) {
  Json raw = Json::parse(read_file(kSrc + "/recipes/default.json"));
  raw.erase("extends");
  Json base = Json::parse(read_file(kSrc + "/recipes/baseline.json"));
  for (auto& [k, v] : raw.items()) base[k] = v;  // a shallow merge is enough for the pipeline key
  base["pipeline"] = Json::array({Json{{"name", "quantize"}}, write_artifact, Json{{"name", "reload_artifact"}}});
  return resolve_recipe(base, "test.json", {});
}

TEST(ArtifactCode, BundleHoldsTheRecipesComponentsAndCountsStably) {
  const Recipe r = recipe_with(Json{{"name", "write_artifact"}, {"container", "zstd22"}});
  const auto files = bundle_files(r.resolved, "k");
  auto has = [&](const std::string& f) { return std::find(files.begin(), files.end(), f) != files.end(); };
  for (const char* f : {"framework/trainer.cpp", "framework/registry.h", "apps/trainer_main.cpp", "apps/bundle.cmake",
                        "quant/archive_container.cpp", "quant/zstd_compressor.cpp", "quant/int8_row_quantizer.cpp",
                        "framework/stage_write_artifact.cpp", "framework/stage_reload_artifact.cpp",
                        "quant/byte_shuffle.cpp"})
    EXPECT_TRUE(has(f)) << f;
  for (const char* f : {"quant/pergroup_container.cpp", "quant/lzma_compressor.cpp", "framework/stage_evaluate.cpp",
                        "framework/stage_compare_quantizer.cpp",
                        "tests/test_support.h", "apps/pgolf_data_main.cpp"})
    EXPECT_FALSE(has(f)) << f;
  const Config code(Json{{"count", "bundle"}, {"sources", Json::array()}}, "pipeline[1].code");
  if (!SchemaCatalog::get().find("compressor", "brotli")) GTEST_SKIP() << "no brotli in this build";
  const CodeCount a = count_code(code, r.resolved), b = count_code(code, r.resolved);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_NE(a.how.find("brotli-11"), std::string::npos) << a.how;
  const Config raw(Json{{"count", "raw"}, {"sources", Json::array({"framework", "quant"})}}, "c");
  EXPECT_LT(a.bytes, count_code(raw, r.resolved).bytes / 2);  // stripped and compressed
  EXPECT_GT(a.bytes, 10000);
}

TEST(ArtifactCode, MissingCodeSourceIsRefusedWhenThePipelineIsBuilt) {
  const Recipe r = recipe_with(Json{{"name", "write_artifact"},
                                    {"code", {{"count", "sources"}, {"sources", Json::array({"framework", "no_such_dir"})}}}});
  try {
    build_pipeline(r.root());
    FAIL() << "accepted a missing code source";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline[1].code.sources: 'no_such_dir'"), std::string::npos) << e.what();
  }
}

testing::CommandResult trainer(const std::string& args, const std::string& env = "") {
  return testing::run_command("cd " + kSrc + " && " + env + " " + kBin + "/trainer " + args);
}

// A recipe file (extending the default one) whose artifact stage is `write_artifact`, after `before` (stages
// between quantize and it).
std::string recipe_file(const testing::TempDir& d, const Json& write_artifact, const Json& before = Json::array()) {
  Json pipeline = Json::array({Json{{"name", "quantize"}}});
  for (const auto& s : before) pipeline.push_back(s);
  for (const Json& s : {write_artifact, Json{{"name", "reload_artifact"}}, Json{{"name", "evaluate"}, {"label", "quantized"}}})
    pipeline.push_back(s);
  return d.write("r.json", Json{{"extends", kSrc + "/recipes/default.json"}, {"pipeline", pipeline}}.dump());
}

TEST(ArtifactCode, DryRunAndRunStopBeforeTrainingOnMissingSourcesOrLrzip) {
  testing::TempDir d("artifact_cli");
  const std::string src = recipe_file(d, Json{{"name", "write_artifact"},
                                              {"code", {{"count", "raw"}, {"sources", Json::array({"no_such_dir"})}}}});
  auto r = trainer("--recipe " + src + " --dry-run");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("pipeline[1].code.sources: 'no_such_dir'"), std::string::npos) << r.out;
  const std::string pg = recipe_file(d, Json{{"name", "write_artifact"}, {"container", "pergroup"}});
  for (const std::string& extra : std::vector<std::string>{" --dry-run", " --out " + d.file("run")}) {
    auto m = trainer("--recipe " + pg + extra, "PATH=/nonexistent-pgolf-dir");
    EXPECT_EQ(m.code, 2) << m.out;
    EXPECT_NE(m.out.find("Debian package lrzip"), std::string::npos) << m.out;
    EXPECT_FALSE(fs::exists(d.file("run"))) << "a run directory was made before the check";
  }
}

// compare_quantizer stages ride along: one repeats the artifact's own quantiser and container, so its bytes and
// score must be the artifact's exactly; one is SD-clip RTN (GPTQ without Hessians) at int4, a different state.
TEST(ArtifactCode, EvalArtifactScoresTheBytesAndInspectReadsThem) {
  ASSERT_TRUE(fs::exists(kSrc + "/data/default/READY")) << "the default data is missing: run `make data` first";
  testing::TempDir d("artifact_eval");
  const Json rtn4 = {{"name", "gptq"}, {"attn", {{"bits", 4}}}, {"mlp", {{"bits", 4}}}, {"other", {{"bits", 4}}},
                     {"small", {{"max_numel", 1024}}}};  // every matrix of the 128-wide model quantised
  const Json compare = Json::array(
      {Json{{"name", "compare_quantizer"}, {"label", "same"}, {"container", "zstd22"}},
       Json{{"name", "compare_quantizer"}, {"label", "rtn4"}, {"quantizer", rtn4}, {"hessians", false}, {"container", "zstd22"}}});
  const std::string rf = recipe_file(d, Json{{"name", "write_artifact"}, {"container", "zstd22"}}, compare);
  const std::string fast = " --set train.iterations=2 --set train.val_every=0 --set data.val_max_tokens=4096"
                           " --set data.batch_tokens=1024 --set train.warmup_steps=0";
  auto t = trainer("--recipe " + rf + fast + " --out " + d.file("run"));
  ASSERT_EQ(t.code, 0) << t.out;
  const Json trained = Json::parse(read_file(d.file("run/summary.json")));
  for (const char* k : {"artifact_bytes", "artifact_model_bytes", "artifact_code_bytes", "code_counting", "within_budget"})
    EXPECT_TRUE(trained.contains(k)) << k;
  EXPECT_EQ(trained["same_model_bytes"], trained["artifact_model_bytes"]);
  EXPECT_EQ(trained["same_val_bpb"], trained["quantized_val_bpb"]);
  EXPECT_EQ(trained["val_bpb"], trained["quantized_val_bpb"]);  // a compared quantiser is never the headline
  EXPECT_LT(trained["rtn4_model_bytes"].get<int64_t>(), trained["artifact_model_bytes"].get<int64_t>());
  EXPECT_NE(trained["rtn4_val_bpb"].get<double>(), trained["quantized_val_bpb"].get<double>());
  auto e = trainer("--recipe " + rf + fast + " --eval-artifact " + d.file("run/artifact.bin") + " --out " + d.file("eval"));
  ASSERT_EQ(e.code, 0) << e.out;
  const Json scored = Json::parse(read_file(d.file("eval/summary.json")));
  EXPECT_EQ(scored["val_bpb"], trained["val_bpb"]);  // the same bytes, the same model, the same score
  EXPECT_EQ(scored["artifact_bytes"], trained["artifact_bytes"]);
  EXPECT_FALSE(scored.contains("same_val_bpb"));  // scoring an artifact runs nothing before it
  auto i = testing::run_command(kBin + "/pgolf-artifact inspect " + d.file("run/artifact.bin"));
  ASSERT_EQ(i.code, 0) << i.out;
  EXPECT_NE(i.out.find("tok_emb.weight"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("left"), std::string::npos) << i.out;
  const std::string code = std::to_string(trained["artifact_code_bytes"].get<int64_t>());  // from summary.json beside it
  EXPECT_NE(i.out.find("+ code " + code + " = " + std::to_string(trained["artifact_bytes"].get<int64_t>())), std::string::npos)
      << i.out;
  auto given = testing::run_command(kBin + "/pgolf-artifact inspect " + d.file("run/artifact.bin") + " --code-bytes 7");
  EXPECT_NE(given.out.find("+ code 7 = "), std::string::npos) << given.out;
  std::string bad = read_file(d.file("run/artifact.bin"));
  bad[bad.size() / 2] ^= 0x21;
  const std::string bad_path = d.write("bad.bin", bad);
  auto bi = testing::run_command(kBin + "/pgolf-artifact inspect " + bad_path);
  EXPECT_EQ(bi.code, 1) << bi.out;
  EXPECT_NE(bi.out.find(bad_path), std::string::npos) << bi.out;
  auto be = trainer("--recipe " + rf + fast + " --eval-artifact " + bad_path + " --out " + d.file("eval2"));
  EXPECT_EQ(be.code, 1) << be.out;
  EXPECT_NE(be.out.find(bad_path), std::string::npos) << be.out;
}

}  // namespace
}  // namespace pgolf
