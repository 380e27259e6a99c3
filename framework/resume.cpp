#include "framework/resume.h"

#include <algorithm>
#include <filesystem>

#include "framework/io.h"

namespace fs = std::filesystem;

namespace pgolf {

const std::vector<std::string>& resume_keys() {
  // Threads may change the order of CPU reductions, so a resume with another thread count is not bit-exact.
  static const std::vector<std::string> keys = {"train.log_every",       "train.val_every", "train.checkpoint_every",
                                                "train.nan_check_every", "train.threads",   "train.warmup_steps",
                                                "train.warmup_looped_steps", "train.checkpoint_on_signal"};
  return keys;
}

namespace {

Json without_resume_keys(Json recipe) {
  for (const auto& k : resume_keys()) recipe["train"].erase(k.substr(6));
  return recipe;
}

void check_resumable(const std::string& dir, const std::vector<std::string>& overrides) {
  if (!fs::is_directory(dir)) throw ConfigError("--resume " + dir + ": no such run directory");
  if (!fs::exists(fs::path(dir) / "recipe.json"))
    throw ConfigError("--resume " + dir + ": holds no run (no recipe.json); pass the directory a run wrote");
  if (fs::exists(fs::path(dir) / "summary.json"))
    throw ConfigError("--resume " + dir + ": the run is complete (summary.json exists); nothing to resume");
  if (!fs::exists(fs::path(dir) / "checkpoint.bin"))
    throw ConfigError("--resume " + dir + ": no checkpoint.bin (the run stopped before its first checkpoint, or "
                      "train.checkpoint_every was 0); start the run again");
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (std::find(resume_keys().begin(), resume_keys().end(), key) == resume_keys().end())
      throw ConfigError("--resume: --set " + o + ": '" + key + "' cannot change in a resumed run (it would not "
                        "continue the same training); the keys that may: " + join_names(resume_keys()));
  }
}

}  // namespace

Resume prepare_resume(const std::string& run_dir, const std::vector<std::string>& overrides, int world, Recipe* recipe) {
  check_resumable(run_dir, overrides);
  Resume r;
  r.dir = run_dir;
  r.checkpoint = (fs::path(run_dir) / "checkpoint.bin").string();
  const std::string recipe_path = (fs::path(run_dir) / "recipe.json").string();
  Json raw;
  try {
    raw = Json::parse(read_file(recipe_path));
  } catch (const Json::parse_error& e) {
    throw ConfigError(recipe_path + ": not valid JSON: " + e.what());
  }
  *recipe = resolve_recipe(raw, recipe_path, overrides);
  r.state = read_checkpoint(r.checkpoint, &r.meta);
  const std::string diff = first_difference(without_resume_keys(r.meta.at("recipe")), without_resume_keys(recipe->resolved));
  if (!diff.empty())
    throw ConfigError(r.checkpoint + ": was written by another recipe than " + recipe_path + " (" + diff +
                      ", checkpoint vs recipe); resume with the recipe the checkpoint was written with");
  if (r.meta.at("world").get<int64_t>() != world)
    throw ConfigError(r.checkpoint + ": was written by " + std::to_string(r.meta.at("world").get<int64_t>()) +
                      " process(es), this run has " + std::to_string(world) +
                      "; the loader positions are per rank, so resume with the same world size");
  recipe->file = r.meta.at("recipe_file").get<std::string>();
  return r;
}

}  // namespace pgolf
