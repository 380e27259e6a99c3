// Recipe loading: extends, --set overrides, validation messages that name the file and the key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "framework/recipe.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Recipe, ExtendsMergesSectionsAndOverridesApplyLast) {
  TempDir d;
  d.write("base.json", R"({"seed": 1, "model": {"name": "gpt", "layers": 9, "dim": 64}, "train": {"iterations": 5}})");
  auto child = d.write("child.json", R"({"extends": "base.json", "model": {"layers": 3}})");
  Recipe r = load_recipe(child, {"train.iterations=7", "model.attention.rope_base=500"});
  EXPECT_EQ(r.resolved["model"]["layers"], 3);
  EXPECT_EQ(r.resolved["model"]["dim"], 64);            // inherited
  EXPECT_EQ(r.resolved["seed"], 1);
  EXPECT_EQ(r.resolved["train"]["iterations"], 7);      // override
  EXPECT_EQ(r.resolved["model"]["attention"]["rope_base"], 500.0);
  EXPECT_EQ(r.resolved["model"]["heads"], 8);           // default filled in
  EXPECT_EQ(r.resolved["model"]["attention"]["name"], "gqa");
}

TEST(Recipe, UnknownKeyNamesFileAndPath) {
  TempDir d;
  auto f = d.write("r.json", R"({"model": {"name": "gpt", "layerz": 3}})");
  const std::string e = error_of([&] { load_recipe(f, {}); });
  EXPECT_NE(e.find("r.json"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layerz: unknown key"), std::string::npos) << e;
}

TEST(Recipe, WrongTypeAndOutOfRange) {
  EXPECT_NE(error_of([] { resolve_recipe(Json{{"model", {{"name", "gpt"}, {"dim", "wide"}}}}, "x.json", {}); })
                .find("x.json: model.dim: expected an integer in [8, 16384], got \"wide\""),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_recipe(Json{{"train", {{"iterations", -1}}}}, "x.json", {}); }).find("train.iterations"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_recipe(Json{{"model", {{"name", "gpt"}, {"dim", 2.5}}}}, "x.json", {}); }).find("model.dim"),
            std::string::npos);
  EXPECT_NE(error_of([] { resolve_recipe(Json{{"train", {{"device", "tpu"}}}}, "x.json", {}); }).find("one of: auto, cpu, cuda"),
            std::string::npos);
}

TEST(Recipe, UnknownComponentListsKnownNames) {
  const std::string e = error_of([] { resolve_recipe(Json{{"model", {{"name", "gpt"}, {"mlp", {{"name", "swiglu"}}}}}}, "x.json", {}); });
  EXPECT_NE(e.find("model.mlp.name: unknown mlp 'swiglu'; known: "), std::string::npos) << e;
  EXPECT_NE(e.find("relu2"), std::string::npos) << e;
}

TEST(Recipe, MalformedJsonAndMissingFile) {
  TempDir d;
  auto f = d.write("bad.json", "{\"seed\": 1,,}");
  EXPECT_NE(error_of([&] { load_recipe(f, {}); }).find("bad.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([&] { load_recipe(d.file("nope.json"), {}); }).find("nope.json"), std::string::npos);
  auto cyc = d.write("a.json", R"({"extends": "a.json"})");
  EXPECT_NE(error_of([&] { load_recipe(cyc, {}); }).find("cycle"), std::string::npos);
}

TEST(Recipe, OverrideSyntax) {
  EXPECT_NE(error_of([] { resolve_recipe(Json::object(), "x", {"novalue"}); }).find("key.path=value"), std::string::npos);
  Recipe r = resolve_recipe(Json::object(), "x", {"description=hello world", "seed=7"});
  EXPECT_EQ(r.resolved["description"], "hello world");
  EXPECT_EQ(r.resolved["seed"], 7);
}

}  // namespace
}  // namespace pgolf
