#include "framework/rundir.h"

#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "framework/io.h"

namespace fs = std::filesystem;

namespace pgolf {

RunDir::RunDir(const std::string& path, int rank) : path_(path), writer_(rank == 0) {
  if (!writer_) return;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot create the run directory (" + ec.message() + "); pass --out DIR");
  if (fs::exists(fs::path(path) / "recipe.json"))
    throw std::runtime_error(path + ": already holds a run (recipe.json exists); choose another --out");
  metrics_ = std::fopen(file("metrics.jsonl").c_str(), "w");
  if (!metrics_) throw std::runtime_error(file("metrics.jsonl") + ": cannot open for writing");
}

RunDir::RunDir(const std::string& path, int64_t metrics_bytes, int rank) : path_(path), writer_(rank == 0) {
  if (!writer_) return;
  if (!fs::exists(fs::path(path) / "recipe.json"))
    throw std::runtime_error(path + ": holds no run to resume (no recipe.json); pass the directory a run wrote");
  std::string metrics;
  if (fs::exists(file("metrics.jsonl"))) metrics = read_file(file("metrics.jsonl"));
  if (static_cast<int64_t>(metrics.size()) < metrics_bytes)
    throw std::runtime_error(file("metrics.jsonl") + ": has " + std::to_string(metrics.size()) +
                             " bytes, fewer than the " + std::to_string(metrics_bytes) +
                             " the checkpoint recorded; the run directory was altered, start the run again");
  write_file_atomic(file("metrics.jsonl"), metrics.substr(0, static_cast<size_t>(metrics_bytes)));
  metrics_ = std::fopen(file("metrics.jsonl").c_str(), "a");
  if (!metrics_) throw std::runtime_error(file("metrics.jsonl") + ": cannot open for appending");
  std::fseek(metrics_, 0, SEEK_END);  // so metrics_bytes() counts from the file's end, not 0
}

RunDir::~RunDir() {
  if (metrics_) std::fclose(metrics_);
}

void RunDir::metric(const Json& record) {
  if (!writer_) return;
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), metrics_);
  std::fflush(metrics_);
}

int64_t RunDir::metrics_bytes() const { return writer_ ? static_cast<int64_t>(std::ftell(metrics_)) : 0; }

void RunDir::write_json(const std::string& name, const Json& j) const {
  if (writer_) write_file_atomic(file(name), j.dump(2) + "\n");
}

std::string default_run_dir(const std::string& recipe_file, int64_t seed) {
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + fs::path(recipe_file).stem().string() + "-s" + std::to_string(seed) + "-" + stamp;
}

}  // namespace pgolf
