// Parameter groups (optim.groups: first matching group takes a parameter) and the training-progress fraction.
#include "framework/optimizer.h"

#include <fnmatch.h>

#include <algorithm>

namespace pgolf {

Schema optimizer_common_schema(double default_lr) {
  Schema params;
  params.string_list("include", {"*"}, "glob patterns (fnmatch) on parameter names; a parameter must match one")
      .string_list("exclude", {}, "glob patterns on parameter names that are never taken")
      .integer("min_ndim", 0, 0, 8, "take only parameters with at least this many dimensions")
      .integer("max_ndim", 8, 0, 8, "take only parameters with at most this many dimensions")
      .choice("control", "any", {"any", "only", "exclude"},
              "parameters whose name contains an optim.control_patterns substring: any = take them too, "
              "only = take only them, exclude = never take them");
  Schema s;
  s.number("lr", default_lr, 0.0, 1e6, "base learning rate (the schedule multiplies it)")
      .section("params", params, "which parameters this group takes (the first group that matches wins)");
  return s;
}

namespace {

bool glob_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

// One group's parameter selection, read from its "params" section.
struct Selection {
  std::vector<std::string> include, exclude;
  int64_t min_ndim = 0, max_ndim = 8;
  std::string control;

  bool matches(const NamedParam& p, const std::vector<std::string>& control_patterns) const {
    if (!glob_any(include, p.name) || glob_any(exclude, p.name)) return false;
    const int64_t nd = p.param.dim();
    if (nd < min_ndim || nd > max_ndim) return false;
    if (control == "any") return true;
    bool is_control = false;
    for (const auto& c : control_patterns) is_control = is_control || p.name.find(c) != std::string::npos;
    return control == "only" ? is_control : !is_control;
  }
};

Selection read_selection(const Config& group) {
  const Config c = group.sub("params");
  Selection s{c.strings("include"), c.strings("exclude"), c.i("min_ndim"), c.i("max_ndim"), c.s("control")};
  if (s.min_ndim > s.max_ndim)
    throw ConfigError(c.key_path("min_ndim") + ": " + std::to_string(s.min_ndim) + " is above max_ndim " +
                      std::to_string(s.max_ndim) + "; expected min_ndim <= max_ndim");
  return s;
}

}  // namespace

std::vector<std::shared_ptr<Optimizer>> build_optimizers(const Config& optim, const std::vector<NamedParam>& all,
                                                         Communicator* comm) {
  const std::vector<Config> groups = optim.list("groups");
  const std::vector<std::string> control = optim.strings("control_patterns");
  std::vector<Selection> sel;
  for (const auto& g : groups) sel.push_back(read_selection(g));

  std::vector<std::vector<NamedParam>> taken(groups.size());
  std::vector<bool> matched_any(groups.size(), false);  // before first-match: tells "matches nothing" from "all taken"
  std::vector<std::string> unassigned;
  for (const auto& p : all) {
    bool assigned = false;
    for (size_t g = 0; g < groups.size(); ++g) {
      if (!sel[g].matches(p, control)) continue;
      matched_any[g] = true;
      if (!assigned) taken[g].push_back(p);
      assigned = true;
    }
    if (!assigned) unassigned.push_back(p.name);
  }

  if (!unassigned.empty()) {
    std::vector<std::string> shown(unassigned.begin(), unassigned.begin() + std::min<size_t>(unassigned.size(), 10));
    std::string msg = optim.key_path("groups") + ": " + std::to_string(unassigned.size()) +
                      " parameter(s) taken by no group: " + join_names(shown);
    if (unassigned.size() > shown.size()) msg += ", ... (" + std::to_string(unassigned.size() - shown.size()) + " more)";
    msg += "; add a group whose params selection takes them (for example a last group with params.include [\"*\"])";
    throw ConfigError(msg);
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!taken[g].empty()) continue;
    const std::string where = groups[g].path() + " (" + groups[g].name() + ")";
    if (matched_any[g])
      throw ConfigError(where + ": every parameter its params selection matches is taken by an earlier group; "
                                "narrow the earlier groups or remove this one");
    throw ConfigError(where + ": its params selection (include/exclude/min_ndim/max_ndim/control) matches no "
                              "parameter; fix the selection or remove the group");
  }

  std::vector<std::shared_ptr<Optimizer>> out;
  for (size_t g = 0; g < groups.size(); ++g) out.push_back(OptimizerRegistry::get().build(groups[g], OptimizerContext{taken[g], comm}));
  return out;
}

double Progress::fraction() const {
  double f = 0.0;
  if (budget_ms > 0) f = elapsed_ms / budget_ms;
  else if (iterations > 0) f = static_cast<double>(step) / static_cast<double>(iterations);
  return std::clamp(f, 0.0, 1.0);
}

}  // namespace pgolf
