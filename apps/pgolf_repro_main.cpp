// pgolf-repro: one recipe over several seeds, each a trainer run in OUT/seed-<N>/, and OUT/summary.json with
// every seed's figures and their mean, sample sd and count.
//
//   pgolf-repro --recipe R --seeds 42,314,999 --out DIR [--set k.p=v ...] [--plugin LIB.so ...]
//               [--gpus N] [--trainer PATH]
//
// Seeds run one after the other; with several CUDA devices visible (CUDA_VISIBLE_DEVICES, else nvidia-smi -L),
// one trainer process per GPU. A rerun skips finished seeds (summary.json present), resumes a seed that left a
// checkpoint, and moves a failed seed's directory aside (seed-<N>.failed-<k>) before running it again.
// A failed seed is listed in summary.json ("status": "failed", its exit code and last error line) and makes
// the exit status 1.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/run_set.h"
#include "framework/io.h"
#include "framework/stats.h"

namespace fs = std::filesystem;
using pgolf::runs::InputError;
using pgolf::runs::Json;

namespace {

struct Options {
  std::string recipe, out, trainer;
  std::vector<int64_t> seeds;
  std::vector<std::string> sets, plugins;
  int gpus = -1;  // -1: count the visible devices
};

void usage(FILE* to) {
  std::fprintf(to,
               "usage: pgolf-repro --recipe R --seeds 42,314,999 --out DIR [--set k.p=v ...] [--plugin LIB.so ...]\n"
               "                   [--gpus N] [--trainer PATH]\n"
               "  --seeds LIST     comma-separated seeds, each run into DIR/seed-<N>/\n"
               "  --out DIR        the multi-seed directory; DIR/summary.json holds per-seed figures, mean, sd, count\n"
               "  --set, --plugin  passed to every trainer run\n"
               "  --gpus N         run N seeds at once, one per GPU (default: the CUDA devices visible; 0 or 1: in turn)\n"
               "  --trainer PATH   the trainer binary (default: the one beside pgolf-repro)\n"
               "A rerun with the same --out skips finished seeds and resumes or reruns the others.\n");
}

std::vector<int64_t> parse_seeds(const std::string& s) {
  std::vector<int64_t> seeds;
  std::set<int64_t> seen;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || v < 0) throw InputError("--seeds " + s + ": '" + item + "' is not a non-negative integer");
    if (!seen.insert(v).second) throw InputError("--seeds " + s + ": seed " + item + " is given twice");
    seeds.push_back(v);
  }
  if (seeds.empty()) throw InputError("--seeds: give at least one seed");
  return seeds;
}

std::string self_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&] { return pgolf::runs::flag_value(argc, argv, i); };
    if (a == "--recipe") o.recipe = need();
    else if (a == "--seeds") o.seeds = parse_seeds(need());
    else if (a == "--out") o.out = need();
    else if (a == "--set") o.sets.push_back(need());
    else if (a == "--plugin") o.plugins.push_back(need());
    else if (a == "--trainer") o.trainer = need();
    else if (a == "--gpus") o.gpus = std::atoi(need().c_str());
    else if (a == "-h" || a == "--help") { usage(stdout); std::exit(0); }
    else throw InputError("unknown argument '" + a + "'");
  }
  if (o.recipe.empty() || o.seeds.empty() || o.out.empty()) throw InputError("--recipe, --seeds and --out are required");
  if (o.trainer.empty()) o.trainer = self_dir() + "/trainer";
  for (auto& p : o.plugins)  // the trainers run with the same working directory, but an absolute path reads plainly
    if (fs::exists(p)) p = fs::absolute(p).string();
  return o;
}

// The CUDA devices a trainer may be given, by the ids CUDA_VISIBLE_DEVICES names (else nvidia-smi's count).
std::vector<std::string> visible_gpus() {
  std::vector<std::string> ids;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::stringstream ss(v);
    std::string id;
    while (std::getline(ss, id, ','))
      if (!id.empty()) ids.push_back(id);
    return ids;
  }
  FILE* p = ::popen("nvidia-smi -L 2>/dev/null", "r");
  if (!p) return ids;
  char line[512];
  while (std::fgets(line, sizeof line, p))
    if (std::string(line).rfind("GPU ", 0) == 0) ids.push_back(std::to_string(ids.size()));
  ::pclose(p);
  return ids;
}

// Forks `args` with stdout and stderr to `log` (appended) and, when `gpu` is set, CUDA_VISIBLE_DEVICES=gpu.
pid_t spawn(const std::vector<std::string>& args, const std::string& log, const std::string& gpu) {
  std::fflush(stdout);  // nothing buffered is inherited by the child
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  if (!gpu.empty()) ::setenv("CUDA_VISIBLE_DEVICES", gpu.c_str(), 1);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  std::fprintf(stderr, "pgolf-repro: cannot run %s\n", argv[0]);
  _exit(127);
}

int wait_exit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> common_args(const Options& o) {
  std::vector<std::string> a;
  for (const auto& s : o.sets) a.insert(a.end(), {"--set", s});
  for (const auto& p : o.plugins) a.insert(a.end(), {"--plugin", p});
  return a;
}

// What the trainer is asked to do for one seed, given what its directory holds from an earlier attempt.
std::vector<std::string> seed_command(const Options& o, int64_t seed, const std::string& dir) {
  std::vector<std::string> a{o.trainer};
  if (fs::exists(dir + "/checkpoint.bin")) {
    a.insert(a.end(), {"--resume", dir});
    return a;
  }
  if (fs::exists(dir)) {  // a failed attempt with nothing to resume: kept for inspection, out of the way
    int k = 1;
    while (fs::exists(dir + ".failed-" + std::to_string(k))) ++k;
    fs::rename(dir, dir + ".failed-" + std::to_string(k));
  }
  a.insert(a.end(), {"--recipe", o.recipe, "--seed", std::to_string(seed), "--out", dir});
  const auto c = common_args(o);
  a.insert(a.end(), c.begin(), c.end());
  return a;
}

// The last line of the seed's console log that reads like an error, for summary.json.
std::string last_error(const std::string& log) {
  std::ifstream in(log);
  std::string line, err, last;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) err = line;
  }
  return err.empty() ? last : err;
}

Json seed_record(const Options& o, int64_t seed, int exit_code) {
  const std::string name = "seed-" + std::to_string(seed), dir = o.out + "/" + name;
  Json rec{{"seed", seed}, {"dir", name}, {"log", name + ".log"}, {"exit_code", exit_code}};
  if (exit_code == 0 && fs::exists(dir + "/summary.json")) {
    rec["status"] = "ok";
    rec["summary"] = pgolf::runs::read_json_file(dir + "/summary.json");
  } else {
    rec["status"] = "failed";
    rec["error"] = last_error(o.out + "/" + name + ".log");
  }
  return rec;
}

void write_summary(const Options& o, const std::map<int64_t, Json>& done) {
  Json seeds = Json::array();
  for (int64_t s : o.seeds)
    if (done.count(s)) seeds.push_back(done.at(s));
  Json out = pgolf::stats::aggregate_seeds(seeds);
  out["recipe"] = o.recipe;
  out["seeds"] = seeds;
  pgolf::write_file_atomic(o.out + "/summary.json", out.dump(2) + "\n");
}

void announce(const Json& rec) {
  if (rec["status"] == "ok") {
    const Json& s = rec["summary"];
    std::printf("pgolf-repro: seed %lld finished: val_bpb %s\n", (long long)rec["seed"].get<int64_t>(),
                s.contains("val_bpb") ? s["val_bpb"].dump().c_str() : "-");
  } else {
    std::printf("pgolf-repro: seed %lld FAILED (exit %d): %s\n", (long long)rec["seed"].get<int64_t>(),
                rec["exit_code"].get<int>(), rec["error"].get<std::string>().c_str());
  }
  std::fflush(stdout);
}

// Runs every unfinished seed, `slots` at a time (one per GPU id when `gpus` is given).
void run_seeds(const Options& o, const std::vector<std::string>& gpus, std::map<int64_t, Json>& done) {
  const size_t slots = gpus.size() >= 2 ? gpus.size() : 1;
  std::map<pid_t, std::pair<int64_t, size_t>> running;  // pid -> (seed, slot)
  std::vector<bool> busy(slots, false);
  auto reap = [&] {
    int status = 0;
    const pid_t pid = ::wait(&status);
    if (pid < 0) return;
    auto [seed, slot] = running.at(pid);
    running.erase(pid);
    busy[slot] = false;
    done[seed] = seed_record(o, seed, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    announce(done[seed]);
    write_summary(o, done);
  };
  for (int64_t seed : o.seeds) {
    if (done.count(seed)) continue;
    while (running.size() >= slots) reap();
    size_t slot = 0;
    while (busy[slot]) ++slot;
    const std::string dir = o.out + "/seed-" + std::to_string(seed);
    const auto cmd = seed_command(o, seed, dir);
    std::printf("pgolf-repro: seed %lld: %s%s\n", (long long)seed, cmd.size() > 1 ? cmd[1].c_str() : "",
                gpus.size() >= 2 ? (" on GPU " + gpus[slot]).c_str() : "");
    std::fflush(stdout);
    running[spawn(cmd, o.out + "/seed-" + std::to_string(seed) + ".log", gpus.size() >= 2 ? gpus[slot] : "")] = {seed, slot};
    busy[slot] = true;
  }
  while (!running.empty()) reap();
}

// Before DIR exists: the recipe, overrides and plugins must pass the trainer's own --dry-run.
void check_recipe(const Options& o) {
  std::vector<std::string> a{o.trainer, "--recipe", o.recipe, "--seed", std::to_string(o.seeds[0]), "--dry-run"};
  const auto c = common_args(o);
  a.insert(a.end(), c.begin(), c.end());
  const std::string log = "/tmp/pgolf-repro-dry-run." + std::to_string(::getpid());
  const int rc = wait_exit(spawn(a, log, ""));
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(log.c_str());
  if (rc != 0) throw InputError("the recipe does not pass `trainer --dry-run` (exit " + std::to_string(rc) + "):\n" + ss.str());
}

// One pgolf-repro per directory: an advisory lock held for the process's life.
void lock_dir(const std::string& out) {
  const std::string path = out + "/.pgolf-repro.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0)
    throw InputError(out + ": another pgolf-repro is running in this directory (" + path + " is locked)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (!fs::exists(o.trainer)) throw InputError("trainer binary " + o.trainer + " does not exist (--trainer PATH)");
    if (fs::exists(o.out) && !fs::is_directory(o.out)) throw InputError("--out " + o.out + ": exists and is not a directory");
    std::map<int64_t, Json> done;  // seeds finished before this run
    if (fs::exists(o.out + "/summary.json")) {
      const Json prev = pgolf::runs::read_json_file(o.out + "/summary.json");
      if (prev.value("recipe", "") != o.recipe)
        throw InputError(o.out + " holds runs of recipe " + prev.value("recipe", "?") + ", not " + o.recipe);
    }
    check_recipe(o);
    fs::create_directories(o.out);
    lock_dir(o.out);
    for (int64_t s : o.seeds)
      if (fs::exists(o.out + "/seed-" + std::to_string(s) + "/summary.json")) {
        done[s] = seed_record(o, s, 0);
        std::printf("pgolf-repro: seed %lld already finished, skipped\n", (long long)s);
      }
    std::vector<std::string> gpus = visible_gpus();
    if (o.gpus >= 0 && static_cast<size_t>(o.gpus) < gpus.size()) gpus.resize(static_cast<size_t>(o.gpus));
    run_seeds(o, gpus, done);
    write_summary(o, done);
    const Json s = pgolf::runs::read_json_file(o.out + "/summary.json");
    if (s["metrics"].contains("val_bpb")) {
      const Json& m = s["metrics"]["val_bpb"];
      std::printf("pgolf-repro: val_bpb %.4f ± %.4f over %d seeds; %s/summary.json\n", m["mean"].get<double>(),
                  m["sd"].is_null() ? 0.0 : m["sd"].get<double>(), m["count"].get<int>(), o.out.c_str());
    }
    if (!s["failed"].empty()) {
      std::fprintf(stderr, "pgolf-repro: %zu seed(s) failed: %s (see %s/seed-<N>.log)\n", s["failed"].size(),
                   s["failed"].dump().c_str(), o.out.c_str());
      return 1;
    }
    return 0;
  } catch (const InputError& e) {
    std::fprintf(stderr, "pgolf-repro: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf-repro: %s\n", e.what());
    return 1;
  }
}
