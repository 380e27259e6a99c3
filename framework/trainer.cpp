// The Trainer, one run top to bottom, as named phases:
//   1. recipe      load and validate (or, with --resume, the run directory's recipe and checkpoint)
//   2. build       model, optimizers, hooks, schedule, evaluator, pipeline (framework/run.h); then the data
//   3. run dir     only now is anything written (rank 0)
//   4. warmup      real steps, rolled back exactly (framework/warmup.h)
//   5. train       the step loop with its checkpoint policy (framework/train_loop.h, checkpointer.h)
//   6. post-train  the recipe's pipeline of stages (framework/pipeline.h): averaging → scores → artifact
//   7. summary     summary.json
#include "framework/trainer.h"

#include <chrono>
#include <iostream>

#include "framework/checkpointer.h"
#include "framework/device.h"
#include "framework/log.h"
#include "framework/resume.h"
#include "framework/run.h"
#include "framework/rundir.h"
#include "framework/train_loop.h"
#include "framework/train_step.h"
#include "framework/warmup.h"

namespace pgolf {

namespace {

std::unique_ptr<RunDir> open_run_dir(const TrainerOptions& opt, const Run& run, const Resume* resume) {
  const int rank = run.comm->rank();
  if (resume) return std::make_unique<RunDir>(resume->dir, resume->meta.at("metrics_bytes").get<int64_t>(), rank);
  const std::string out = opt.out_dir.empty() ? default_run_dir(run.recipe.file, run.recipe.root().i("seed")) : opt.out_dir;
  return std::make_unique<RunDir>(out, rank);
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

Json post_train(Run& run, const LoopState& st, RunDir& dir, Json summary) {
  PipelineContext ctx{run.recipe, *run.comm, run.device, dir, run.model, run.model,
                      [&run] {  // scored as trained to the end (the references loop their reloaded model)
                        auto m = build_model(run.recipe, run.device);
                        m->on_train_progress(1.0);
                        return m;
                      },
                      run.hooks, run.train_data, run.val, *run.bytes, run.eval,
                      st.train_ms, training_budget_ms(run.recipe.section("train")), st.step,
                      /*hessians=*/{}, /*artifact=*/{}, std::move(summary)};
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

}  // namespace

int run_trainer(const TrainerOptions& opt) {
  LocalCommunicator comm;
  log::set_rank(comm.rank());
  // 1. recipe
  Recipe recipe;
  std::unique_ptr<Resume> resume;
  if (opt.resume_dir.empty()) recipe = load_recipe(opt.recipe, opt.overrides);
  else resume = std::make_unique<Resume>(prepare_resume(opt.resume_dir, opt.overrides, comm.world(), &recipe));
  // 2. build
  Run run = build_run(std::move(recipe), comm);
  log_run(run);
  if (opt.dry_run) {
    std::cout << "params: " << run.params << std::endl;
    return 0;
  }
  build_data(run);
  // 3. run directory
  std::unique_ptr<RunDir> dir = open_run_dir(opt, run, resume.get());
  if (!resume || !opt.overrides.empty()) dir->write_json("recipe.json", run.recipe.resolved);
  log::to_file(dir->file("train.log"));
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
  LoopState st;
  if (resume) st = checkpointer.restore(TrainingParts{*run.model, run.optimizers, *run.loader, run.hooks}, *resume);
  TrainLoop(run, *dir, step, checkpointer, opt.profile_path).run(st);
  // 6. post-train, 7. summary
  write_summary(*dir, post_train(run, st, *dir, training_summary(run, st)));
  log::close_file();
  return 0;
}

}  // namespace pgolf
