#include "framework/rundir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "framework/io.h"

namespace fs = std::filesystem;

namespace pgolf {

namespace {

// What a run writes into its directory; --overwrite removes exactly these (and temp files of killed writes).
const char* const kRunFiles[] = {"recipe.json", "train.log",  "metrics.jsonl", "summary.json",
                                 "failed.json", "checkpoint.bin", "artifact.bin"};

void remove_run_files(const std::string& path) {
  for (const char* name : kRunFiles) fs::remove(fs::path(path) / name);
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) fs::remove(e.path());
}

std::string holds_run_message(const std::string& path) {
  const bool failed = fs::exists(fs::path(path) / "failed.json");
  return path + ": already holds a " + (failed ? "failed run (failed.json)" : "run (recipe.json exists)") +
         "; choose another --out, or pass --overwrite to replace it";
}

// The first entry of `path` that no run writes ("" when there is none): what makes a directory someone else's.
std::string foreign_entry(const std::string& path) {
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    bool ours = name == "run.lock" || name.find(".tmp.") != std::string::npos ||
                (name.rfind("rank", 0) == 0 && name.size() > 8 && name.substr(name.size() - 4) == ".log");
    for (const char* f : kRunFiles) ours = ours || name == f;
    if (!ours) return name;
  }
  return "";
}

FILE* open_metrics(const std::string& path, const char* mode) {
  FILE* f = std::fopen(writable_path(path).c_str(), mode);
  if (!f) throw std::runtime_error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  return f;
}

}  // namespace

void check_run_dir(const std::string& path, bool overwrite) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    throw ConfigError("--out " + path + ": exists and is not a directory; choose another --out");
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "run.lock")) RunLock probe(path);  // throws naming a live holder's pid
    if (fs::exists(fs::path(path) / "recipe.json") && !overwrite) throw ConfigError(holds_run_message(path));
    if (!fs::exists(fs::path(path) / "recipe.json"))
      if (const std::string other = foreign_entry(path); !other.empty())
        throw ConfigError("--out " + path + ": is not empty and holds no run (it has '" + other +
                          "', which no run writes); choose a new or empty directory for --out");
    if (::access(path.c_str(), W_OK) != 0)
      throw ConfigError("--out " + path + ": not writable (" + std::strerror(errno) + ")");
    return;
  }
  fs::path up = fs::absolute(path).parent_path();  // the nearest existing ancestor must take a new directory
  while (!up.empty() && !fs::exists(up, ec) && up != up.root_path()) up = up.parent_path();
  if (!fs::is_directory(up, ec))
    throw ConfigError("--out " + path + ": cannot be created, " + up.string() + " is not a directory");
  if (::access(up.c_str(), W_OK) != 0)
    throw ConfigError("--out " + path + ": cannot be created in " + up.string() + " (" + std::strerror(errno) + ")");
}

RunDir::RunDir(const std::string& path, int rank, bool overwrite) : path_(path), writer_(rank == 0) {
  if (!writer_) return;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot create the run directory (" + ec.message() + "); pass --out DIR");
  lock_ = RunLock(path);  // from here on this process alone writes the directory
  if (fs::exists(fs::path(path) / "recipe.json")) {
    if (!overwrite) throw std::runtime_error(holds_run_message(path));
    remove_run_files(path);
  }
  metrics_ = open_metrics(file("metrics.jsonl"), "w");
}

RunDir::RunDir(const std::string& path, int64_t metrics_bytes, int rank, RunLock lock)
    : path_(path), writer_(rank == 0), lock_(std::move(lock)) {
  if (!writer_) return;
  if (!lock_.held()) lock_ = RunLock(path);
  if (!fs::exists(fs::path(path) / "recipe.json"))
    throw std::runtime_error(path + ": holds no run to resume (no recipe.json); pass the directory a run wrote");
  std::string metrics;
  if (fs::exists(file("metrics.jsonl"))) metrics = read_file(file("metrics.jsonl"));
  if (static_cast<int64_t>(metrics.size()) < metrics_bytes)
    throw std::runtime_error(file("metrics.jsonl") + ": has " + std::to_string(metrics.size()) +
                             " bytes, fewer than the " + std::to_string(metrics_bytes) +
                             " the checkpoint recorded; the run directory was altered, start the run again");
  write_file_atomic(file("metrics.jsonl"), metrics.substr(0, static_cast<size_t>(metrics_bytes)));
  fs::remove(file("failed.json"));
  metrics_ = open_metrics(file("metrics.jsonl"), "a");
  std::fseek(metrics_, 0, SEEK_END);  // so metrics_bytes() counts from the file's end, not 0
}

RunDir::~RunDir() {
  if (metrics_) std::fclose(metrics_);
}

void RunDir::metric(const Json& record) {
  if (!writer_) return;
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), metrics_) != line.size() || std::fflush(metrics_) != 0)
    throw std::runtime_error(file("metrics.jsonl") + ": write failed (" + std::strerror(errno) + "); the run stops here");
}

int64_t RunDir::metrics_bytes() const { return writer_ ? static_cast<int64_t>(std::ftell(metrics_)) : 0; }

void RunDir::write_json(const std::string& name, const Json& j) const {
  if (writer_) write_file_atomic(file(name), j.dump(2) + "\n");
}

void RunDir::write_failure(const std::string& error, const Json& last_checkpoint) const {
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  write_json("failed.json", Json{{"error", error}, {"last_checkpoint", last_checkpoint}, {"time", stamp}});
}

void check_output_file(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw ConfigError(flag + " " + path + ": is a directory, expected a file name");
  const fs::path parent = fs::absolute(path).parent_path();
  if (!fs::is_directory(parent, ec))
    throw ConfigError(flag + " " + path + ": cannot be written, " + parent.string() +
                      (fs::exists(parent, ec) ? " is not a directory" : " does not exist"));
  if (::access(parent.c_str(), W_OK) != 0 || (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0))
    throw ConfigError(flag + " " + path + ": cannot be written (" + std::strerror(errno) + ")");
}

std::string default_run_dir(const std::string& recipe_file, int64_t seed) {
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + fs::path(recipe_file).stem().string() + "-s" + std::to_string(seed) + "-" + stamp;
}

}  // namespace pgolf
