// The Trainer, one run top to bottom, as named phases:
//   1. recipe      load and validate (or, with --resume, the run directory's recipe and checkpoint)
//   2. build       model, optimizers, hooks, schedule, evaluator, pipeline (framework/run.h); then the data
//   3. run dir     only now is anything written (rank 0)
//   4. warmup      real steps, rolled back exactly (framework/warmup.h)
//   5. train       the step loop with its checkpoint policy (framework/train_loop.h, checkpointer.h)
//   6. post-train  the recipe's pipeline of stages (framework/pipeline.h): averaging → scores → artifact
//   7. summary     summary.json
#include "framework/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "framework/c10d_communicator.h"
#include "framework/checkpointer.h"
#include "framework/code_size.h"
#include "framework/device.h"
#include "framework/io.h"
#include "framework/log.h"
#include "framework/resume.h"
#include "framework/named_state.h"
#include "framework/run.h"
#include "framework/rundir.h"
#include "framework/shard.h"
#include "framework/signals.h"
#include "framework/train_loop.h"
#include "framework/train_step.h"
#include "framework/warmup.h"

namespace fs = std::filesystem;

namespace pgolf {

namespace {

std::string out_dir(const TrainerOptions& opt, const Recipe& recipe) {
  return opt.out_dir.empty() ? default_run_dir(recipe.file, recipe.root().i("seed")) : opt.out_dir;
}

// Rank 0 claims the directory (the default name has a timestamp, so every rank takes rank 0's); a failure
// there stops every rank.
std::unique_ptr<RunDir> open_run_dir(const TrainerOptions& opt, const Run& run, const Resume* resume, RunLock lock) {
  Communicator& comm = *run.comm;
  const std::string out = broadcast_string(comm, resume ? resume->dir : out_dir(opt, run.recipe), run.device);
  std::unique_ptr<RunDir> dir;
  std::string error;
  try {
    dir = resume ? std::make_unique<RunDir>(out, resume->meta.at("metrics_bytes").get<int64_t>(), comm.rank(), std::move(lock))
                 : std::make_unique<RunDir>(out, comm.rank(), opt.overwrite);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (agree_any(comm, !error.empty(), run.device))
    throw std::runtime_error(error.empty() ? "rank 0 could not open the run directory " + out + " (its error says why)" : error);
  return dir;
}

// A resume claims its directory before reading anything from it, so a live run is refused at once.
RunLock claim_for_resume(const std::string& dir, int rank) {
  if (rank != 0 || !fs::exists(fs::path(dir) / "recipe.json")) return {};  // prepare_resume says what is wrong
  return RunLock(dir);
}

// failed.json: what stopped the run during training, and its last checkpoint (null when there is none).
void record_failure(const RunDir& dir, const std::string& error, const LoopState& st) {
  const Json last = st.last_checkpoint < 0 ? Json(nullptr)
                                           : Json{{"file", dir.file("checkpoint.bin")}, {"step", st.last_checkpoint},
                                                  {"resume", "trainer --resume " + dir.path()}};
  try {
    dir.write_failure(error, last);
  } catch (const std::exception& e) {  // a full disk may refuse this too; the error itself still goes out
    log::warn(std::string("could not record the failure: ") + e.what());
  }
}

// torchrun restarts failed workers with the same command line (TORCHELASTIC_RESTART_COUNT > 0): continue
// the run in --out from its checkpoint, or start it again there when it had none yet.
TrainerOptions restart_options(TrainerOptions opt, const Communicator& comm) {
  const char* rc = std::getenv("TORCHELASTIC_RESTART_COUNT");
  if (!rc || std::atoi(rc) <= 0 || !opt.resume_dir.empty()) return opt;
  if (opt.out_dir.empty()) {
    log::warn(strf("restart %s under torchrun without --out: a new run (pass --out DIR so restarts resume)", rc));
    return opt;
  }
  const fs::path out(opt.out_dir);
  if (!fs::exists(out / "checkpoint.bin")) {
    log::warn(strf("restart %s: %s has no checkpoint yet; starting the run again there", rc, opt.out_dir.c_str()));
    if (comm.rank() == 0 && fs::exists(out / "recipe.json") && !fs::exists(out / "summary.json"))
      for (const auto& e : fs::directory_iterator(out)) fs::remove_all(e.path());
    return opt;
  }
  log::info(strf("restart %s: resuming %s from its checkpoint", rc, opt.out_dir.c_str()));
  std::vector<std::string> keep;  // the rest of the command line is already in the run's recipe.json
  for (const auto& o : opt.overrides)
    if (std::find(resume_keys().begin(), resume_keys().end(), o.substr(0, o.find('='))) != resume_keys().end())
      keep.push_back(o);
  opt.resume_dir = opt.out_dir;
  opt.out_dir.clear();
  opt.recipe.clear();
  opt.overrides = keep;
  return opt;
}

// Every rank starts from rank 0's weights (they are equal already when initialisation is deterministic).
void broadcast_weights(Run& run) {
  if (!run.comm->collective()) return;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : named_state(*run.model)) run.comm->broadcast(t, 0);
}

void warmup(Run& run, TrainStep& step) {
  const Config train = run.recipe.section("train");
  const int64_t ws = train.i("warmup_steps"), wl = train.i("warmup_looped_steps");
  if (ws + wl == 0) return;
  const TrainingHooks none;  // the hooks begin after the warmup
  const auto t0 = std::chrono::steady_clock::now();
  warmup_and_rollback(TrainingParts{*run.model, run.optimizers, *run.loader, none}, ws, wl, [&] { step.run(1.0, 0); });
  sync_device(run.device);
  log::info(strf("warmup: %lld steps + %lld looped in %.0fms, rolled back (weights, optimizer states, loader, RNG)",
                 (long long)ws, (long long)wl,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()));
}

Json training_summary(const Run& run, const LoopState& st) {
  const double tps = st.train_ms > 0 ? static_cast<double>(st.step) * run.batch.batch_tokens / (st.train_ms / 1000.0) : 0.0;
  return Json{{"recipe", run.recipe.file},      {"params", run.params},        {"steps", st.step},
              {"train_seconds", st.train_ms / 1000.0}, {"tokens_per_second", tps}, {"first_train_loss", st.first_loss},
              {"final_train_loss", st.last_loss}, {"mfu", mfu(run, st.model_flops, st.train_ms)}};
}

PipelineContext pipeline_context(Run& run, const LoopState& st, RunDir& dir, Json summary) {
  return PipelineContext{run.recipe, *run.comm, run.device, dir, run.model, run.model,
                         [&run] {  // scored as trained to the end (the references loop their reloaded model)
                           auto m = build_model(run.recipe, run.device);
                           m->on_train_progress(1.0);
                           return m;
                         },
                         run.hooks, run.train_data, run.val, *run.bytes, run.eval,
                         st.train_ms, training_budget_ms(run.recipe.section("train")), st.step,
                         /*hessians=*/{}, /*artifact=*/{}, std::move(summary)};
}

Json post_train(Run& run, const LoopState& st, RunDir& dir, Json summary) {
  PipelineContext ctx = pipeline_context(run, st, dir, std::move(summary));
  run_pipeline(run.pipeline, ctx);
  return ctx.summary;
}

void write_summary(RunDir& dir, const Json& summary) {
  dir.write_json("summary.json", summary);
  const bool has_bpb = summary.contains("val_bpb") && summary["val_bpb"].is_number();
  const bool has_artifact = summary.contains("artifact_bytes") && summary["artifact_bytes"].is_number();
  log::info(strf("val_bpb %s  artifact_bytes %s  run directory %s",
                 has_bpb ? strf("%.4f", summary["val_bpb"].get<double>()).c_str() : "-",
                 has_artifact ? std::to_string(summary["artifact_bytes"].get<int64_t>()).c_str() : "-", dir.path().c_str()));
}

// --eval-artifact: the artifact's bytes, the recipe's model and pipeline from reload_artifact on. The run
// directory is filled under a temporary name and appears only when the score is written.
int eval_artifact(const TrainerOptions& opt, Run& run) {
  if (const std::string dir = directory_problem(opt.eval_artifact, "an artifact file"); !dir.empty())
    throw ConfigError("--eval-artifact " + dir);
  if (!std::filesystem::is_regular_file(opt.eval_artifact))
    throw ConfigError("--eval-artifact " + opt.eval_artifact + ": no such file");
  const std::string out = opt.out_dir.empty() ? default_run_dir(run.recipe.file, run.recipe.root().i("seed")) + "-eval"
                                              : opt.out_dir;
  if (std::filesystem::exists(out)) throw ConfigError("--out " + out + ": already exists; name a new directory");
  build_data(run);
  run.eval.profile_path = opt.profile_path;  // --profile when only scoring: the evaluators' (phased TTT: chunks 60-62)
  const std::string partial = out + ".partial";
  try {
    {
      RunDir dir(partial, run.comm->rank());
      dir.write_json("recipe.json", run.recipe.resolved);
      log::to_file(dir.file("train.log"));
      log::info("scoring the artifact " + opt.eval_artifact + " (run directory " + out + ")");
      PipelineContext ctx = pipeline_context(run, LoopState{}, dir, Json{{"recipe", run.recipe.file}, {"params", run.params}});
      ctx.artifact.path = opt.eval_artifact;
      run_pipeline_on_artifact(run.pipeline, ctx);
      write_summary(dir, ctx.summary);
      log::close_file();
    }
    std::filesystem::rename(partial, out);
  } catch (...) {
    log::close_file();
    std::error_code ec;
    std::filesystem::remove_all(partial, ec);
    throw;
  }
  return 0;
}

// The phases; `dir` and `st` belong to the caller, so a failure is recorded while the directory is still claimed.
int run_phases(const TrainerOptions& options, std::unique_ptr<RunDir>& dir, LoopState& st) {
  install_stop_signals();
  std::unique_ptr<Communicator> comm_owner = make_communicator();
  Communicator& comm = *comm_owner;
  log::set_rank(comm.rank());
  const TrainerOptions opt = restart_options(options, comm);
  // 1. recipe
  Recipe recipe;
  std::unique_ptr<Resume> resume;
  RunLock lock;
  if (opt.resume_dir.empty()) recipe = load_recipe(opt.recipe, opt.overrides);
  else lock = claim_for_resume(opt.resume_dir, comm.rank());
  if (!opt.resume_dir.empty()) resume = std::make_unique<Resume>(prepare_resume(opt.resume_dir, opt.overrides, comm.world(), &recipe));
  else if (comm.rank() == 0 && !(opt.dry_run && opt.out_dir.empty())) check_run_dir(out_dir(opt, recipe), opt.overwrite);
  if (comm.rank() == 0 && !opt.profile_path.empty()) check_output_file("--profile", opt.profile_path);
  // 2. build
  Run run = build_run(std::move(recipe), comm);
  broadcast_weights(run);
  log_run(run);
  if (opt.dry_run) {  // the data too where it exists: what the run would check before its directory
    const Config data = run.recipe.section("data");
    const bool present = shards_exist(data.s("train")) && shards_exist(data.s("val"));
    if (present) build_data(run);
    std::cout << (present ? "data: checked (shards, tokenizer, byte counter)" : "data: not checked (no shards match data.train or data.val)")
              << "\nparams: " << run.params << std::endl;
    return 0;
  }
  if (!opt.export_code.empty()) {
    const CodeCount c = export_code(run.recipe.resolved, opt.export_code);
    std::cout << "code bundle: " << opt.export_code << "\ncode bytes: " << c.bytes << " (" << c.how << ")" << std::endl;
    return 0;
  }
  if (!opt.eval_artifact.empty()) return eval_artifact(opt, run);
  build_data(run);
  if (!opt.profile_path.empty()) run.eval.profile_path = opt.profile_path + ".eval";  // phased TTT: chunks 60-62
  // 3. run directory
  dir = open_run_dir(opt, run, resume.get(), std::move(lock));
  if (!resume || !opt.overrides.empty()) dir->write_json("recipe.json", run.recipe.resolved);
  log::to_file(dir->file(comm.rank() == 0 ? "train.log" : "rank" + std::to_string(comm.rank()) + ".log"));
  if (comm.collective()) log::info(strf("rank %d of %d (local rank %d, pid %d)", comm.rank(), comm.world(), comm.local_rank(), (int)getpid()));
  log::info("run directory: " + dir->path());
  log::info(strf("train shards: %zu  val tokens: %lld  batch: %lld tokens (%lld x %lld micro-steps/rank)",
                 run.train_data.files.size(), (long long)(run.val.tokens.numel() - 1), (long long)run.batch.batch_tokens,
                 (long long)run.batch.local_tokens, (long long)run.batch.accum));
  // 4. warmup
  TrainStep step(run);
  run.model->train();
  warmup(run, step);
  for (auto& h : run.hooks) h->begin(*run.model);
  // 5. train
  Checkpointer checkpointer(run, *dir);
  if (resume) st = checkpointer.restore(TrainingParts{*run.model, run.optimizers, *run.loader, run.hooks}, *resume);
  TrainLoop(run, *dir, step, checkpointer, opt.profile_path).run(st);
  // 6. post-train, 7. summary
  write_summary(*dir, post_train(run, st, *dir, training_summary(run, st)));
  log::close_file();
  return 0;
}

}  // namespace

int run_trainer(const TrainerOptions& opt) {
  std::unique_ptr<RunDir> dir;
  LoopState st;
  try {
    return run_phases(opt, dir, st);
  } catch (const std::exception& e) {
    if (dir) record_failure(*dir, e.what(), st);  // the directory says why it holds no finished run
    // main prints it (an error on stderr); train.log ends with it too
    if (dynamic_cast<const Interrupted*>(&e)) log::info_to_file(e.what());
    else log::error_to_file(e.what());
    log::close_file();
    throw;
  }
}

}  // namespace pgolf
