// A run directory is self-describing: recipe.json (fully resolved), train.log, metrics.jsonl (one JSON
// object per logged step and per evaluation), summary.json, the artifact.
#pragma once

#include <cstdio>
#include <string>

#include "framework/config.h"

namespace pgolf {

// Rank 0 alone writes the run directory: on every other rank a RunDir names the same paths and writes nothing.
class RunDir {
 public:
  // Creates `path` (and parents). Refuses a directory that already holds a run (recipe.json present).
  explicit RunDir(const std::string& path, int rank = 0);
  // Reopens the run directory of a run being resumed: recipe.json must be there; metrics.jsonl is cut back
  // (atomically) to its first `metrics_bytes` bytes, what it held at the checkpoint, and appended to.
  RunDir(const std::string& path, int64_t metrics_bytes, int rank);
  ~RunDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // One line of metrics.jsonl, flushed at once so a killed run keeps what it logged.
  void metric(const Json& record);
  // Bytes written to metrics.jsonl so far (a checkpoint records it; 0 on ranks other than 0).
  int64_t metrics_bytes() const;
  bool writer() const { return writer_; }
  // Writes `name` atomically as pretty JSON.
  void write_json(const std::string& name, const Json& j) const;

 private:
  std::string path_;
  bool writer_;
  FILE* metrics_ = nullptr;
};

// runs/<recipe stem>-s<seed>-<YYYYmmdd-HHMMSS>
std::string default_run_dir(const std::string& recipe_file, int64_t seed);

}  // namespace pgolf
