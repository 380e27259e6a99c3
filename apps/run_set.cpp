#include "apps/run_set.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace pgolf::runs {

Json read_json_file(const std::string& path) {
  if (fs::is_directory(path)) throw InputError(path + ": is a directory, expected a JSON file");
  std::ifstream in(path);
  if (!in) throw InputError(path + ": does not exist or cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return Json::parse(ss.str());
  } catch (const Json::parse_error& e) {
    throw InputError(path + ": not valid JSON (" + e.what() + ")");
  }
}

namespace {

RunInfo load_run(const std::string& dir) {
  RunInfo r;
  r.dir = dir;
  r.summary = read_json_file(dir + "/summary.json");
  if (!r.summary.contains("recipe") || !r.summary["recipe"].is_string())
    throw InputError(dir + "/summary.json: no \"recipe\" (a trainer's summary names the recipe it ran)");
  r.recipe_file = r.summary["recipe"].get<std::string>();
  if (fs::exists(dir + "/recipe.json")) r.recipe = read_json_file(dir + "/recipe.json");
  return r;
}

RecipeGroup& group_for(std::vector<RecipeGroup>& groups, const std::string& recipe_file) {
  for (auto& g : groups)
    if (g.recipe_file == recipe_file) return g;
  groups.push_back(RecipeGroup{recipe_file, recipe_file, {}, {}});
  return groups.back();
}

void label_groups(std::vector<RecipeGroup>& groups) {
  std::map<std::string, int> stems;
  for (const auto& g : groups) ++stems[fs::path(g.recipe_file).stem().string()];
  for (auto& g : groups) {
    const std::string stem = fs::path(g.recipe_file).stem().string();
    g.label = stems[stem] == 1 ? stem : g.recipe_file;
  }
}

void flatten(const Json& j, const std::string& prefix, std::map<std::string, Json>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], prefix + "[" + std::to_string(i) + "]", out);
  } else {
    out[prefix] = j;
  }
}

}  // namespace

void load_dir(const std::string& dir, std::vector<RecipeGroup>& groups) {
  if (!fs::is_directory(dir)) throw InputError(dir + ": not a directory");
  const Json s = read_json_file(dir + "/summary.json");
  if (!s.contains("seeds")) {
    RunInfo r = load_run(dir);
    group_for(groups, r.recipe_file).runs.push_back(std::move(r));
    return;
  }
  RecipeGroup& g = group_for(groups, s.at("recipe").get<std::string>());
  for (const auto& seed : s["seeds"]) {
    if (seed.value("status", "") != "ok") {
      g.failed_seeds.push_back(seed.at("seed").get<int64_t>());
      continue;
    }
    g.runs.push_back(load_run(dir + "/" + seed.at("dir").get<std::string>()));
  }
}

std::vector<RecipeGroup> load_groups(const std::vector<std::string>& dirs) {
  std::vector<RecipeGroup> groups;
  for (const auto& d : dirs) load_dir(d, groups);
  label_groups(groups);
  return groups;
}

const RecipeGroup& find_group(const std::vector<RecipeGroup>& groups, const std::string& name) {
  std::string labels;
  for (const auto& g : groups) {
    if (g.label == name || g.recipe_file == name || fs::path(g.recipe_file).filename() == name) return g;
    labels += (labels.empty() ? "" : ", ") + g.label;
  }
  throw InputError("no runs of recipe '" + name + "' among the directories given; recipes: " + labels);
}

std::vector<double> values(const RecipeGroup& g, const std::string& key) {
  std::vector<double> v;
  for (const auto& r : g.runs)
    if (r.summary.contains(key) && r.summary[key].is_number()) v.push_back(r.summary[key].get<double>());
  return v;
}

std::vector<std::string> changed_keys(const Json& base, const Json& other) {
  std::map<std::string, Json> a, b;
  flatten(base, "", a);
  flatten(other, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (k == "seed" || k == "description") continue;
    const bool in_a = a.count(k) != 0, in_b = b.count(k) != 0;
    if (in_a && in_b && a[k] == b[k]) continue;
    out.push_back(k + ": " + (in_a ? a[k].dump() : "(unset)") + " → " + (in_b ? b[k].dump() : "(unset)"));
  }
  return out;
}

std::string extends(const std::string& recipe_file, const std::string& base_file) {
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(base_file, ec);
  fs::path cur = recipe_file;
  for (int depth = 0; depth < 64; ++depth) {
    std::ifstream in(cur);
    if (!in) return "?";
    Json j = Json::parse(in, nullptr, false);
    if (j.is_discarded()) return "?";
    if (!j.contains("extends") || !j["extends"].is_string()) return "no";
    cur = cur.parent_path() / j["extends"].get<std::string>();
    if (fs::weakly_canonical(cur, ec) == base) return "yes";
  }
  return "no";
}

int64_t budget_bytes(const Json& recipe) {
  if (recipe.is_object() && recipe.contains("pipeline") && recipe["pipeline"].is_array())
    for (const auto& st : recipe["pipeline"])
      if (st.value("name", "") == "write_artifact" && st.contains("budget_bytes")) return st["budget_bytes"].get<int64_t>();
  return 16000000;
}

}  // namespace pgolf::runs
