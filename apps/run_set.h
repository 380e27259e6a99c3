// Finished run directories as pgolf-report and pgolf-submit read them: a trainer run directory
// (summary.json, recipe.json, metrics.jsonl) or a pgolf-repro directory (summary.json listing seed-<N>/),
// grouped by the recipe each ran.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pgolf::runs {

using Json = nlohmann::json;

// Bad input (a missing or malformed file): the tools print it and exit 2.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// argv[i + 1], the value of the flag argv[i] (advancing i past it); InputError when it is missing.
inline std::string flag_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw InputError(std::string(argv[i]) + " needs a value");
  return argv[++i];
}

struct RunInfo {
  std::string dir;
  std::string recipe_file;  // summary.json "recipe": the file named on the trainer's command line
  Json summary;
  Json recipe;              // recipe.json (resolved); null when the directory has none
};

struct RecipeGroup {
  std::string recipe_file;
  std::string label;        // the recipe file's stem (the full path where two stems collide)
  std::vector<RunInfo> runs;
  std::vector<int64_t> failed_seeds;  // seeds a pgolf-repro directory lists as not finished
};

// Reads one directory: a single finished run, or every finished seed of a pgolf-repro directory.
void load_dir(const std::string& dir, std::vector<RecipeGroup>& groups);
// All of `dirs`, grouped by recipe in the order first seen.
std::vector<RecipeGroup> load_groups(const std::vector<std::string>& dirs);
// The group whose label, recipe file or file name is `name`; throws InputError listing the labels.
const RecipeGroup& find_group(const std::vector<RecipeGroup>& groups, const std::string& name);

// Values of `key` across a group's runs (runs lacking it are skipped).
std::vector<double> values(const RecipeGroup& g, const std::string& key);

// Resolved-recipe keys that differ between `base` and `other` (objects and arrays flattened to
// a.b[2].c; seed and description left out), as "key: old → new".
std::vector<std::string> changed_keys(const Json& base, const Json& other);
// Whether `recipe_file`'s "extends" chain reaches `base_file`: "yes", "no", or "?" when a file is unreadable.
std::string extends(const std::string& recipe_file, const std::string& base_file);
// The write_artifact stage's budget_bytes in a resolved recipe (16,000,000 when absent).
int64_t budget_bytes(const Json& recipe);

Json read_json_file(const std::string& path);

}  // namespace pgolf::runs
