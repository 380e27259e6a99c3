// trainer: validates a recipe, builds the model and everything else from the registry, trains,
// writes the artifact, and scores the model rebuilt from it.
//
//   trainer --recipe FILE [--set key.path=value ...] [--seed N] [--out DIR] [--dry-run] [--plugin LIB.so]
//   trainer --resume RUN_DIR [--set train.log_every=N ...]
#include <dlfcn.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "framework/log.h"
#include "framework/recipe.h"
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
               "  --dry-run         validate, build the model, print a summary with 'params: N', write nothing\n"
               "  --profile FILE    profile steps 6-8: Chrome trace to FILE, top kernels to the log\n"
               "  --resume RUN_DIR  continue a run from RUN_DIR/checkpoint.bin with RUN_DIR/recipe.json (no --recipe,\n"
               "                    --out or --seed; --set only for train.log_every, val_every, checkpoint_every,\n"
               "                    nan_check_every, threads, warmup_steps, warmup_looped_steps)\n"
               "  --plugin LIB.so   load a shared library that registers more components (before validation)\n"
               "  --list            list every registered component by kind and exit\n");
}

}  // namespace

int main(int argc, char** argv) {
  pgolf::TrainerOptions opt;
  std::vector<std::string> plugins;
  bool list = false;
  auto need = [&](int& i, const char* flag) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "trainer: %s needs a value\n", flag);
      usage(stderr);
      std::exit(2);
    }
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--recipe") opt.recipe = need(i, "--recipe");
    else if (a == "--set") opt.overrides.push_back(need(i, "--set"));
    else if (a == "--seed") opt.overrides.push_back("seed=" + need(i, "--seed"));
    else if (a == "--out") opt.out_dir = need(i, "--out");
    else if (a == "--dry-run") opt.dry_run = true;
    else if (a == "--overwrite") opt.overwrite = true;
    else if (a == "--profile") opt.profile_path = need(i, "--profile");
    else if (a == "--resume") opt.resume_dir = need(i, "--resume");
    else if (a == "--plugin") plugins.push_back(need(i, "--plugin"));
    else if (a == "--list") list = true;
    else if (a == "-h" || a == "--help") { usage(stdout); return 0; }
    else {
      std::fprintf(stderr, "trainer: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  for (const auto& p : plugins) {
    if (!dlopen(p.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      std::fprintf(stderr, "trainer: --plugin %s: cannot load (%s)\n", p.c_str(), dlerror());
      return 2;
    }
  }
  if (list) {
    pgolf::print_components(std::cout);
    return 0;
  }
  if (!opt.resume_dir.empty() && (!opt.recipe.empty() || !opt.out_dir.empty() || opt.overwrite)) {
    std::fprintf(stderr, "trainer: --resume RUN_DIR takes the recipe and run directory from RUN_DIR; drop --recipe and --out (and --overwrite)\n");
    return 2;
  }
  if (opt.recipe.empty() && opt.resume_dir.empty()) {
    std::fprintf(stderr, "trainer: --recipe FILE is required\n");
    usage(stderr);
    return 2;
  }
  try {
    return pgolf::run_trainer(opt);
  } catch (const pgolf::ConfigError& e) {
    pgolf::log::error(e.what());
    return 2;
  } catch (const std::exception& e) {
    pgolf::log::error(e.what());
    return 1;
  }
}
