// optim.groups: first-match assignment by name glob, rank and control pattern, and the two errors.
#include <gtest/gtest.h>

#include "framework/optimizer.h"
#include "framework/recipe.h"

namespace pgolf {
namespace {

// The optim section validated by the recipe's own schema (defaults filled, groups' schemas checked).
Config optim_config(const Json& optim) {
  const KeySpec* k = recipe_schema().find("optim");
  return Config(k->section->validate(optim, "optim", "test.json"), "optim");
}

std::vector<NamedParam> model_like_params() {
  auto p = [](const std::string& n, std::vector<int64_t> shape) { return NamedParam{n, torch::zeros(shape)}; };
  return {p("tok_emb.weight", {16, 4}),       p("blocks.0.attn.c_q.weight", {4, 4}), p("blocks.0.attn_scale", {4}),
          p("blocks.0.attn.q_gain", {2}),     p("blocks.0.mlp.fc.weight", {8, 4}),   p("skip_weights", {2, 4}),
          p("final.bias", {4}),               p("blocks.1.bank", {2, 4, 4})};
}

std::vector<std::string> names(const Optimizer& o) {
  std::vector<std::string> out;
  for (const auto& p : o.params()) out.push_back(p.name);
  return out;
}

std::string error_of(const Json& optim) {
  try {
    build_optimizers(optim_config(optim), model_like_params());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const Json kBaselineGroups = Json::array({
    {{"name", "adam"}, {"lr", 0.05}, {"params", {{"include", {"tok_emb.weight"}}}}},
    {{"name", "muon"}, {"params", {{"include", {"blocks.*"}}, {"min_ndim", 2}, {"max_ndim", 3}, {"control", "exclude"}}}},
    {{"name", "adam"}},  // params.include defaults to ["*"]
});

TEST(ParamGroups, FirstMatchWinsWithNdimAndControlPatterns) {
  const auto opts = build_optimizers(optim_config({{"groups", kBaselineGroups}}), model_like_params());
  ASSERT_EQ(opts.size(), 3u);
  EXPECT_EQ(names(*opts[0]), (std::vector<std::string>{"tok_emb.weight"}));
  // blocks.* 2-3-D, not control; tok_emb would match group 2's "*" too but group 0 took it first
  EXPECT_EQ(names(*opts[1]),
            (std::vector<std::string>{"blocks.0.attn.c_q.weight", "blocks.0.mlp.fc.weight", "blocks.1.bank"}));
  // the rest: 1-D vectors, control tensors (attn_scale, q_gain by the default control patterns), skip_weights
  EXPECT_EQ(names(*opts[2]), (std::vector<std::string>{"blocks.0.attn_scale", "blocks.0.attn.q_gain", "skip_weights",
                                                       "final.bias"}));
  EXPECT_DOUBLE_EQ(opts[0]->base_lr(), 0.05);
  EXPECT_DOUBLE_EQ(opts[1]->base_lr(), 0.04);
}

TEST(ParamGroups, ControlOnlyExcludeAndMaxNdim) {
  const Json groups = Json::array({
      {{"name", "adam"}, {"params", {{"control", "only"}}}},                        // attn_scale, q_gain, skip_weights
      {{"name", "adam"}, {"params", {{"max_ndim", 1}}}},                            // final.bias
      {{"name", "sgd"}, {"params", {{"include", {"*"}}, {"exclude", {"*.bank"}}}}},  // the other matrices
      {{"name", "muon"}},
  });
  const auto opts = build_optimizers(optim_config({{"groups", groups}}), model_like_params());
  EXPECT_EQ(names(*opts[0]),
            (std::vector<std::string>{"blocks.0.attn_scale", "blocks.0.attn.q_gain", "skip_weights"}));
  EXPECT_EQ(names(*opts[1]), (std::vector<std::string>{"final.bias"}));
  EXPECT_EQ(names(*opts[2]), (std::vector<std::string>{"tok_emb.weight", "blocks.0.attn.c_q.weight",
                                                       "blocks.0.mlp.fc.weight"}));
  EXPECT_EQ(names(*opts[3]), (std::vector<std::string>{"blocks.1.bank"}));

  // custom control patterns replace the defaults: now only "skip" names are control tensors
  const auto custom = build_optimizers(
      optim_config({{"control_patterns", {"skip"}}, {"groups", Json::array({{{"name", "adam"}, {"params", {{"control", "only"}}}},
                                                                              {{"name", "adam"}}})}}),
      model_like_params());
  EXPECT_EQ(names(*custom[0]), (std::vector<std::string>{"skip_weights"}));
}

TEST(ParamGroups, UnassignedParametersAreAnError) {
  const std::string msg = error_of({{"groups", Json::array({kBaselineGroups[0], kBaselineGroups[1]})}});
  EXPECT_NE(msg.find("optim.groups: 4 parameter(s) taken by no group: blocks.0.attn_scale, blocks.0.attn.q_gain, "
                     "skip_weights, final.bias"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("add a group"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("more)"), std::string::npos) << msg;

  // more than 10: ten are named, the rest counted
  std::vector<NamedParam> many;
  for (int i = 0; i < 13; ++i) many.push_back({"v" + std::to_string(i), torch::zeros({3})});
  try {
    build_optimizers(optim_config({{"groups", Json::array({{{"name", "adam"}, {"params", {{"include", {"v1"}}}}}})}}),
                     many);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("12 parameter(s) taken by no group: v0, v2, v3"), std::string::npos) << m;
    EXPECT_NE(m.find("v10, ... (2 more)"), std::string::npos) << m;
    EXPECT_EQ(m.find("v12"), std::string::npos) << m;
  }
  // no groups at all: everything unassigned
  EXPECT_NE(error_of(Json::object()).find("8 parameter(s) taken by no group"), std::string::npos);
}

TEST(ParamGroups, GroupWithoutParametersIsAnError) {
  Json groups = kBaselineGroups;
  groups.insert(groups.begin() + 1, Json{{"name", "adam"}, {"params", {{"include", {"nothing.*"}}}}});
  std::string msg = error_of({{"groups", groups}});
  EXPECT_NE(msg.find("optim.groups[1] (adam): its params selection"), std::string::npos) << msg;
  EXPECT_NE(msg.find("matches no parameter"), std::string::npos) << msg;

  // a group shadowed by an earlier one: matches, but receives nothing
  groups = kBaselineGroups;
  groups.insert(groups.begin() + 1, Json{{"name", "sgd"}, {"params", {{"include", {"tok_emb.*"}}}}});
  msg = error_of({{"groups", groups}});
  EXPECT_NE(msg.find("optim.groups[1] (sgd): every parameter its params selection matches is taken by an earlier group"),
            std::string::npos)
      << msg;

  msg = error_of({{"groups", Json::array({{{"name", "adam"}, {"params", {{"min_ndim", 3}, {"max_ndim", 2}}}}})}});
  EXPECT_NE(msg.find("optim.groups[0].params.min_ndim: 3 is above max_ndim 2"), std::string::npos) << msg;
}

}  // namespace
}  // namespace pgolf
