#include "framework/rundir.h"

#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "framework/io.h"

namespace fs = std::filesystem;

namespace pgolf {

RunDir::RunDir(const std::string& path) : path_(path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot create the run directory (" + ec.message() + "); pass --out DIR");
  if (fs::exists(fs::path(path) / "recipe.json"))
    throw std::runtime_error(path + ": already holds a run (recipe.json exists); choose another --out");
  metrics_ = std::fopen(file("metrics.jsonl").c_str(), "w");
  if (!metrics_) throw std::runtime_error(file("metrics.jsonl") + ": cannot open for writing");
}

RunDir::~RunDir() {
  if (metrics_) std::fclose(metrics_);
}

void RunDir::metric(const Json& record) {
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), metrics_);
  std::fflush(metrics_);
}

void RunDir::write_json(const std::string& name, const Json& j) const { write_file_atomic(file(name), j.dump(2) + "\n"); }

std::string default_run_dir(const std::string& recipe_file, int64_t seed) {
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&t));
  return "runs/" + fs::path(recipe_file).stem().string() + "-s" + std::to_string(seed) + "-" + stamp;
}

}  // namespace pgolf
