// `trainer --resume RUN_DIR`: the run directory's resolved recipe (with only the keys that do not change a
// training step overridable) and its last checkpoint, refused when they do not belong together.
#pragma once

#include <string>
#include <vector>

#include "framework/checkpoint.h"
#include "framework/recipe.h"

namespace pgolf {

struct Resume {
  std::string dir, checkpoint;
  TrainingState state;
  Json meta;  // step, train_ms, stop_after, first/last loss, world, recipe file, metrics bytes, recipe
};

// Keys `--resume` may change with --set: they steer logging, checking, checkpointing, CPU threads and the
// warmup (rolled back exactly), never the arithmetic of a training step.
const std::vector<std::string>& resume_keys();

// Reads RUN_DIR's recipe.json (applying `overrides`) into *recipe and its checkpoint into the result.
// Throws ConfigError when the directory holds no resumable run, an override is not a resume key, or the
// checkpoint was written by another recipe or world size.
Resume prepare_resume(const std::string& run_dir, const std::vector<std::string>& overrides, int world, Recipe* recipe);

}  // namespace pgolf
