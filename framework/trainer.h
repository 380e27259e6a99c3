// The Trainer: one run from a resolved recipe to summary.json. It knows no component by name; it builds
// them from the registry and talks to them through the interfaces in framework/.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "framework/recipe.h"

namespace pgolf {

struct TrainerOptions {
  std::string recipe;
  std::vector<std::string> overrides;
  std::string out_dir;
  bool dry_run = false;
  std::string profile_path;  // --profile: Chrome trace of a few steps plus a kernel-time table
  // --resume: continue the run in this directory from its checkpoint.bin, with its recipe.json; `overrides`
  // may then only name the keys that do not change training (see kResumeKeys in trainer.cpp).
  std::string resume_dir;
  // --eval-artifact FILE: score an existing artifact from its bytes alone (the recipe's pipeline from
  // reload_artifact on), into a run directory of its own; no training.
  std::string eval_artifact;
  // --export-code DIR: write the recipe's minimal source bundle (what the code accounting counts) and exit.
  std::string export_code;
  // --overwrite: an --out that holds a run (finished, failed or killed, but not live) is emptied of that
  // run's files and reused.
  bool overwrite = false;
};

// Runs (or, with dry_run, validates and summarises) one training run. Returns the process exit code.
int run_trainer(const TrainerOptions& opt);

// Every registered component, by kind, with its keys and defaults.
void print_components(std::ostream& os);

}  // namespace pgolf
