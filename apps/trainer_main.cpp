// trainer: validates a recipe, builds the model and everything else from the registry, trains,
// writes the artifact, and scores the model rebuilt from it.
//
//   trainer --recipe FILE [--set key.path=value ...] [--seed N] [--out DIR] [--dry-run] [--plugin LIB.so]
//   trainer --resume RUN_DIR [--set train.log_every=N ...]
//   trainer --eval-artifact ARTIFACT --recipe FILE [--out DIR]   (score an existing artifact)
//   trainer --export-code DIR --recipe FILE                      (write the counted source bundle)
//   trainer --nproc N (any of the above)      N local data-parallel workers (torchrun's environment contract)
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "framework/c10d_communicator.h"
#include "framework/crash.h"
#include "framework/launcher.h"
#include "framework/log.h"
#include "framework/plugin.h"
#include "framework/recipe.h"
#include "framework/signals.h"
#include "framework/trainer.h"

namespace {

void usage(FILE* to) {
  std::fprintf(to,
               "usage: trainer --recipe FILE [--set key.path=value ...] [--seed N] [--out DIR] [--overwrite] [--dry-run]\n"
               "               [--resume RUN_DIR] [--plugin LIB.so ...] [--list]\n"
               "  --recipe FILE     JSON recipe (\"extends\" inherits from another recipe)\n"
               "  --set k.p=v       override one key (value parsed as JSON, else taken as a string)\n"
               "  --seed N          same as --set seed=N\n"
               "  --out DIR         run directory (default runs/<recipe>-<seed>-<time>)\n"
               "  --overwrite       reuse an --out that holds an earlier run (finished, failed or killed, not live)\n"
               "  --dry-run         validate, build the model, check the data where it exists, print a summary\n"
               "                    ending in 'params: N', write nothing\n"
               "  --profile FILE    profile steps 6-8: Chrome trace to FILE, top kernels to the log\n"
               "                    and chunks 60-62 of phased TTT to FILE.eval (FILE with --eval-artifact)\n"
               "  --resume RUN_DIR  continue a run from RUN_DIR/checkpoint.bin with RUN_DIR/recipe.json (no --recipe,\n"
               "                    --out or --seed; --set only for train.log_every, val_every, checkpoint_every,\n"
               "                    nan_check_every, threads, warmup_steps, warmup_looped_steps)\n"
               "  --eval-artifact F score the artifact file F with the recipe's model and pipeline from reload_artifact\n"
               "                    on (no training); writes a run directory like a run\n"
               "  --export-code DIR write the recipe's minimal source bundle (the code the artifact counts) and exit\n"
               "                    nan_check_every, threads, warmup_steps, warmup_looped_steps, checkpoint_on_signal)\n"
               "  --nproc N         run N local worker processes (data parallel over Gloo/NCCL, as torchrun would)\n"
               "  --plugin LIB.so   load a shared library that registers more components (before validation)\n"
               "  --list            list every registered component by kind and exit\n");
}

// The flags that cannot go together (each named); true when the command line is usable.
bool flags_agree(const pgolf::TrainerOptions& opt, int nproc) {
  if (!opt.resume_dir.empty() && (!opt.recipe.empty() || !opt.out_dir.empty() || opt.overwrite)) {
    std::fprintf(stderr, "trainer: --resume RUN_DIR takes the recipe and run directory from RUN_DIR; drop --recipe and --out (and --overwrite)\n");
    return false;
  }
  if ((!opt.eval_artifact.empty() || !opt.export_code.empty()) && !opt.resume_dir.empty()) {
    std::fprintf(stderr, "trainer: --eval-artifact and --export-code take --recipe FILE, not --resume\n");
    return false;
  }
  if (opt.recipe.empty() && opt.resume_dir.empty()) {
    std::fprintf(stderr, "trainer: --recipe FILE is required\n");
    usage(stderr);
    return false;
  }
  if (nproc > 0 && pgolf::launched_distributed()) {
    std::fprintf(stderr, "trainer: --nproc inside a distributed launch (WORLD_SIZE is set): let torchrun start the ranks\n");
    return false;
  }
  return true;
}

// `trainer --nproc N ...`: this program again, N times, as the ranks of one local run.
int launch_ranks(int nproc, const std::vector<std::string>& worker_args) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "trainer --nproc: cannot find this program's path\n");
    return 1;
  }
  try {
    return pgolf::launch_local(nproc, std::string(exe, static_cast<size_t>(n)), worker_args);
  } catch (const std::exception& e) {
    pgolf::log::error(e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  pgolf::install_crash_report();
  pgolf::TrainerOptions opt;
  std::vector<std::string> plugins;
  bool list = false;
  int nproc = 0;
  std::vector<std::string> worker_args;  // the command line less --nproc, for the workers
  auto need = [&](int& i, const char* flag) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "trainer: %s needs a value\n", flag);
      usage(stderr);
      std::exit(2);
    }
    if (argv[i + 1][0] == '\0') {  // `--out ""` would silently mean the default, `--recipe ""` no recipe
      std::fprintf(stderr, "trainer: %s: the value is empty; give a %s\n", flag,
                   std::string(flag) == "--set" ? "key.path=value" : "non-empty value (or leave the flag out)");
      std::exit(2);
    }
    if (std::string(flag) != "--nproc") worker_args.push_back(argv[i + 1]);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a != "--nproc") worker_args.push_back(a);
    if (a == "--nproc") {
      const std::string v = need(i, "--nproc");
      nproc = std::atoi(v.c_str());
      if (nproc < 1 || std::to_string(nproc) != v) {
        std::fprintf(stderr, "trainer: --nproc %s: expected a positive number of processes\n", v.c_str());
        return 2;
      }
    } else if (a == "--recipe") opt.recipe = need(i, "--recipe");
    else if (a == "--set") opt.overrides.push_back(need(i, "--set"));
    else if (a == "--seed") opt.overrides.push_back("seed=" + need(i, "--seed"));
    else if (a == "--out") opt.out_dir = need(i, "--out");
    else if (a == "--dry-run") opt.dry_run = true;
    else if (a == "--overwrite") opt.overwrite = true;
    else if (a == "--profile") opt.profile_path = need(i, "--profile");
    else if (a == "--resume") opt.resume_dir = need(i, "--resume");
    else if (a == "--plugin") plugins.push_back(need(i, "--plugin"));
    else if (a == "--eval-artifact") opt.eval_artifact = need(i, "--eval-artifact");
    else if (a == "--export-code") opt.export_code = need(i, "--export-code");
    else if (a == "--list") list = true;
    else if (a == "-h" || a == "--help") { usage(stdout); return 0; }
    else {
      std::fprintf(stderr, "trainer: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  try {  // duplicate names, ABI stamps, missing files: exit 2 with both sources named
    pgolf::check_registrations();
    for (const auto& p : plugins) pgolf::load_plugin(p);
  } catch (const pgolf::ConfigError& e) {
    std::fprintf(stderr, "trainer: %s\n", e.what());
    return 2;
  }
  if (list) {
    pgolf::print_components(std::cout);
    return 0;
  }
  if (!flags_agree(opt, nproc)) return 2;
  if (nproc > 0 && !opt.dry_run) return launch_ranks(nproc, worker_args);
  try {
    return pgolf::run_trainer(opt);
  } catch (const pgolf::Interrupted& e) {
    pgolf::log::info(e.what());
    return e.code;
  } catch (const pgolf::ConfigError& e) {
    pgolf::log::error(e.what());
    return 2;
  } catch (const std::exception& e) {
    pgolf::log::error(e.what());
    return 1;
  }
}
