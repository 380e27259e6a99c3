// A run directory is self-describing: recipe.json (fully resolved), train.log, metrics.jsonl (one JSON
// object per logged step and per evaluation), summary.json, the artifact.
#pragma once

#include <cstdio>
#include <string>

#include "framework/config.h"
#include "framework/run_lock.h"

namespace pgolf {

// Rank 0 alone writes the run directory: on every other rank a RunDir names the same paths and writes nothing.
class RunDir {
 public:
  // Creates `path` (and parents) and claims it (run.lock, held while this object lives; a second claimant is
  // refused naming the holder's pid). Refuses a directory that already holds a run (recipe.json present)
  // unless `overwrite`, which first removes that run's files.
  explicit RunDir(const std::string& path, int rank = 0, bool overwrite = false);
  // Reopens the run directory of a run being resumed, claiming it unless `lock` already holds it:
  // recipe.json must be there; metrics.jsonl is cut back (atomically) to its first `metrics_bytes` bytes,
  // what it held at the checkpoint, and appended to; a failed.json of an earlier attempt is removed.
  RunDir(const std::string& path, int64_t metrics_bytes, int rank, RunLock lock = {});
  ~RunDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // One line of metrics.jsonl, flushed at once so a killed run keeps what it logged; a failed write throws
  // naming the file.
  void metric(const Json& record);
  // Bytes written to metrics.jsonl so far (a checkpoint records it; 0 on ranks other than 0).
  int64_t metrics_bytes() const;
  bool writer() const { return writer_; }
  // Writes `name` atomically as pretty JSON.
  void write_json(const std::string& name, const Json& j) const;
  // failed.json: the error that stopped the run during training and where its last checkpoint is, so the
  // directory says what happened (a rerun replaces it with --overwrite, or --resume continues it).
  void write_failure(const std::string& error, const Json& last_checkpoint) const;

 private:
  std::string path_;
  bool writer_;
  FILE* metrics_ = nullptr;
  RunLock lock_;
};

// Before anything is built: refuses an --out that cannot become a run directory (a file, an unwritable
// place, a directory holding a run without `overwrite`, one a live trainer holds, or a non-empty directory
// that holds no run: files of its own a run would mix with), naming the path.
void check_run_dir(const std::string& path, bool overwrite);

// Before anything is built: refuses a path that a file cannot be written to (`flag` names the option in the
// message, "--profile"): a directory, a parent that is missing or not a directory, or one not writable.
void check_output_file(const std::string& flag, const std::string& path);

// runs/<recipe stem>-s<seed>-<YYYYmmdd-HHMMSS>
std::string default_run_dir(const std::string& recipe_file, int64_t seed);

}  // namespace pgolf
