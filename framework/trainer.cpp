// The Trainer, one run top to bottom:
//   recipe (or, with --resume, the run directory's recipe and checkpoint) → build (model, optimizers,
//   averagers, schedule, loader, evaluator, byte counter) → warmup, rolled back → step loop (loader →
//   forward → loss → backward → clip → optimizers → averagers → log/validate/checkpoint, NaN guard) →
//   wallclock/step stop → averaged weights → final evaluation → artifact (prune, quantise, serialise,
//   compress, count code) → reload from the artifact's bytes alone → evaluate again → summary.json.
#include "framework/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>

#include "framework/artifact.h"
#include "framework/averager.h"
#include "framework/checkpoint.h"
#include "framework/comm.h"
#include "framework/eval.h"
#include "framework/grad_clip.h"
#include "framework/guards.h"
#include "framework/io.h"
#include "framework/loader.h"
#include "framework/log.h"
#include "framework/model.h"
#include "framework/optimizer.h"
#include "framework/profiler.h"
#include "framework/registry.h"
#include "framework/rundir.h"
#include "framework/shard.h"
#include "framework/warmup.h"

#ifndef PGOLF_SOURCE_DIR
#define PGOLF_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace pgolf {

void print_components(std::ostream& os) {
  auto& cat = SchemaCatalog::get();
  for (const auto& kind : cat.kinds()) {
    os << kind << ":\n";
    for (const auto& name : cat.names(kind)) {
      os << "  " << name;
      const std::string h = cat.help(kind, name);
      if (!h.empty()) os << " - " << h;
      os << "\n";
      for (const auto& k : cat.find(kind, name)->keys())
        os << "      " << k.name << " = "
           << (k.default_value.is_null() ? std::string("<section>") : k.default_value.dump()) << "  # " << k.help
           << "\n";
    }
  }
}

namespace {

using Clock = std::chrono::steady_clock;

torch::Device choose_device(const std::string& want) {
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda)
    throw ConfigError("train.device: \"cuda\" asked for, but this build or machine has no CUDA device; use \"auto\" or \"cpu\"");
  return (want == "cuda" || (want == "auto" && cuda)) ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

std::vector<NamedParam> named_params(LanguageModel& m) {
  std::vector<NamedParam> out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.push_back({p.key(), p.value()});
  return out;
}

NamedTensors model_state(LanguageModel& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value().detach().to(torch::kCPU));
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value().detach().to(torch::kCPU));
  return out;
}

void load_model_state(LanguageModel& m, const NamedTensors& state, const std::string& what) {
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  torch::NoGradGuard g;
  auto assign = [&](const std::string& name, torch::Tensor& dst) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error(what + ": has no tensor '" + name + "' that the model needs");
    if (it->second.sizes() != dst.sizes())
      throw std::runtime_error(what + ": tensor '" + name + "' has another shape than the model's");
    dst.copy_(it->second.to(dst.device(), dst.scalar_type()));
    by_name.erase(it);
  };
  for (auto& p : m.named_parameters(true)) assign(p.key(), p.value());
  for (auto& b : m.named_buffers(true)) assign(b.key(), b.value());
  if (!by_name.empty()) throw std::runtime_error(what + ": holds tensor '" + by_name.begin()->first + "' the model lacks");
}

// The code counted against the budget: the sources named in artifact.code.sources, in sorted order.
int64_t code_bytes(const Config& code, const Compressor& compressor) {
  const std::string mode = code.s("count");
  if (mode == "none") return 0;
  std::vector<std::string> files;
  for (const auto& entry : code.strings("sources")) {
    const fs::path p = fs::path(PGOLF_SOURCE_DIR) / entry;
    if (fs::is_regular_file(p)) {
      files.push_back(p.string());
    } else if (fs::is_directory(p)) {
      for (const auto& f : fs::recursive_directory_iterator(p))
        if (f.is_regular_file()) files.push_back(f.path().string());
    } else {
      throw ConfigError("artifact.code.sources: '" + entry + "' is not in the source tree " + PGOLF_SOURCE_DIR +
                        "; fix the list or set artifact.code.count=none");
    }
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    all += fs::relative(f, PGOLF_SOURCE_DIR).string() + '\0';
    all += read_file(f);
  }
  return mode == "raw" ? static_cast<int64_t>(all.size()) : static_cast<int64_t>(compressor.compress(all).size());
}

std::string human_rate(double tokens_per_s) {
  if (tokens_per_s >= 1e6) return strf("%.3fM", tokens_per_s / 1e6);
  if (tokens_per_s >= 1e3) return strf("%.1fk", tokens_per_s / 1e3);
  return strf("%.0f", tokens_per_s);
}

std::string human_time(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return strf("%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  if (s >= 60) return strf("%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  return strf("%llds", (long long)s);
}

// Everything a run is made of, built from the recipe before anything is written.
struct Run {
  Recipe recipe;
  torch::Device device = torch::kCPU;
  std::shared_ptr<LanguageModel> model;
  std::vector<std::shared_ptr<Optimizer>> optimizers;
  std::shared_ptr<Schedule> schedule;
  std::shared_ptr<TrainLoader> loader;
  std::shared_ptr<Evaluator> evaluator;
  std::shared_ptr<ByteCounter> bytes;
  std::shared_ptr<Quantizer> quantizer;
  std::shared_ptr<Compressor> compressor;
  ValStream val;
  EvalContext eval_ctx;
  int64_t params = 0;
};

std::shared_ptr<LanguageModel> build_model(const Recipe& r, const torch::Device& device) {
  auto model = ModelRegistry::get().build(r.section("model"));
  model->to(device);
  model->set_compute_dtype(device.is_cuda() ? torch::kBFloat16 : torch::kFloat32);
  return model;
}

EvalResult evaluate(Run& run, LanguageModel& model, Communicator& comm) {
  sync(run.device);
  EvalResult local = run.evaluator->evaluate(model, run.val, *run.bytes, run.eval_ctx);
  auto sums = torch::tensor({local.loss_sum, local.tokens, local.bytes}, torch::kFloat64);
  comm.all_reduce_sum(sums);
  return EvalResult{sums[0].item<double>(), sums[1].item<double>(), sums[2].item<double>()};
}

// Gradients averaged over the ranks (a no-op with one process).
void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params) {
  if (comm.world() == 1) return;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    comm.all_reduce_sum(g);
    g.div_(static_cast<double>(comm.world()));
  }
}

// Keys `trainer --resume` may change: they steer logging, checking, checkpointing, CPU threads and the
// warmup (rolled back exactly), never the arithmetic of a training step. Threads may change the order of
// CPU reductions, so a resume with another thread count is not bit-exact.
const std::vector<std::string> kResumeKeys = {"train.log_every",     "train.val_every",    "train.checkpoint_every",
                                              "train.nan_check_every", "train.threads",      "train.warmup_steps",
                                              "train.warmup_looped_steps"};

Json without_resume_keys(Json recipe) {
  for (const auto& k : kResumeKeys) recipe["train"].erase(k.substr(6));
  return recipe;
}

double json_number(const Json& j) { return j.is_number() ? j.get<double>() : NAN; }  // NaN is written as null

// What --resume continues from: the run directory's resolved recipe (with only kResumeKeys overridable) and
// its last checkpoint, refused when they do not belong together.
struct Resume {
  std::string dir, checkpoint;
  TrainingState state;
  Json meta;
};

Resume prepare_resume(const TrainerOptions& opt, Recipe& recipe, int world) {
  Resume r;
  r.dir = opt.resume_dir;
  if (!fs::is_directory(r.dir)) throw ConfigError("--resume " + r.dir + ": no such run directory");
  const std::string recipe_path = (fs::path(r.dir) / "recipe.json").string();
  if (!fs::exists(recipe_path))
    throw ConfigError("--resume " + r.dir + ": holds no run (no recipe.json); pass the directory a run wrote");
  if (fs::exists(fs::path(r.dir) / "summary.json"))
    throw ConfigError("--resume " + r.dir + ": the run is complete (summary.json exists); nothing to resume");
  r.checkpoint = (fs::path(r.dir) / "checkpoint.bin").string();
  if (!fs::exists(r.checkpoint))
    throw ConfigError("--resume " + r.dir + ": no checkpoint.bin (the run stopped before its first checkpoint, or "
                      "train.checkpoint_every was 0); start the run again");
  for (const auto& o : opt.overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (std::find(kResumeKeys.begin(), kResumeKeys.end(), key) == kResumeKeys.end())
      throw ConfigError("--resume: --set " + o + ": '" + key + "' cannot change in a resumed run (it would not "
                        "continue the same training); the keys that may: " + join_names(kResumeKeys));
  }
  Json raw;
  try {
    raw = Json::parse(read_file(recipe_path));
  } catch (const Json::parse_error& e) {
    throw ConfigError(recipe_path + ": not valid JSON: " + e.what());
  }
  recipe = resolve_recipe(raw, recipe_path, opt.overrides);
  r.state = read_checkpoint(r.checkpoint, &r.meta);
  const std::string diff = first_difference(without_resume_keys(r.meta.at("recipe")), without_resume_keys(recipe.resolved));
  if (!diff.empty())
    throw ConfigError(r.checkpoint + ": was written by another recipe than " + recipe_path + " (" + diff +
                      ", checkpoint vs recipe); resume with the recipe the checkpoint was written with");
  if (r.meta.at("world").get<int64_t>() != world)
    throw ConfigError(r.checkpoint + ": was written by " + std::to_string(r.meta.at("world").get<int64_t>()) +
                      " process(es), this run has " + std::to_string(world) +
                      "; the loader positions are per rank, so resume with the same world size");
  recipe.file = r.meta.at("recipe_file").get<std::string>();
  return r;
}

}  // namespace

int run_trainer(const TrainerOptions& opt) {
  LocalCommunicator comm;
  log::set_rank(comm.rank());
  Run run;
  const bool resuming = !opt.resume_dir.empty();
  Resume resume;
  if (resuming) resume = prepare_resume(opt, run.recipe, comm.world());
  else run.recipe = load_recipe(opt.recipe, opt.overrides);
  const Config root = run.recipe.root(), data = root.sub("data"), train = root.sub("train");
  const int64_t seed = root.i("seed");
  if (train.i("threads") > 0) torch::set_num_threads(static_cast<int>(train.i("threads")));
  torch::manual_seed(static_cast<uint64_t>(seed));
  run.device = choose_device(train.s("device"));

  // ---- build everything the recipe names (a bad recipe fails here, before any file is written) ----
  run.model = build_model(run.recipe, run.device);
  run.params = count_parameters(*run.model);
  run.optimizers = build_optimizers(root.sub("optim"), named_params(*run.model));
  std::vector<std::shared_ptr<Averager>> averagers;
  for (const auto& a : root.sub("optim").list("averaging")) averagers.push_back(AveragerRegistry::get().build(a));
  run.schedule = ScheduleRegistry::get().build(root.sub("schedule"));
  const Config eval_cfg = root.sub("eval"), art_cfg = root.sub("artifact");
  run.evaluator = EvaluatorRegistry::get().build(eval_cfg.sub("evaluator"));
  run.quantizer = QuantizerRegistry::get().build(art_cfg.sub("quantizer"));
  run.compressor = CompressorRegistry::get().build(art_cfg.sub("compressor"));

  const int64_t world = comm.world(), micro = data.i("micro_batches"), seq_len = data.i("seq_len");
  const int64_t batch_tokens = data.i("batch_tokens");
  if (micro % world != 0)
    throw ConfigError(run.recipe.file + ": data.micro_batches: " + std::to_string(micro) +
                      " must be a multiple of the world size " + std::to_string(world));
  const int64_t accum = micro / world;
  if (batch_tokens % (micro * seq_len) != 0)
    throw ConfigError(run.recipe.file + ": data.batch_tokens: " + std::to_string(batch_tokens) +
                      " must be a multiple of data.micro_batches x data.seq_len = " + std::to_string(micro * seq_len));
  const int64_t local_tokens = batch_tokens / micro;

  log::info("recipe: " + run.recipe.file);
  log::info("model: " + root.sub("model").name() + "  device: " + run.device.str() +
            "  compute: " + std::string(run.device.is_cuda() ? "bf16" : "fp32") + "  params: " + std::to_string(run.params));
  for (size_t i = 0; i < run.optimizers.size(); ++i) {
    int64_t n = 0;
    for (const auto& p : run.optimizers[i]->params()) n += p.param.numel();
    log::info(strf("optim.groups[%zu]: %s  lr %g  tensors %zu  params %lld", i,
                   root.sub("optim").list("groups")[i].name().c_str(), run.optimizers[i]->base_lr(),
                   run.optimizers[i]->params().size(), (long long)n));
  }
  if (opt.dry_run) {
    std::cout << "params: " << run.params << std::endl;
    return 0;
  }

  // ---- data ----
  LoaderContext lctx{glob_shards(data.s("train")), seq_len, local_tokens, comm.rank(), static_cast<int>(world),
                     static_cast<uint64_t>(seed)};
  run.loader = LoaderRegistry::get().build(data.sub("loader"), lctx);
  const auto val_files = glob_shards(data.s("val"));
  run.val = load_val_stream(val_files, seq_len, data.i("val_max_tokens"));
  run.bytes = ByteCounterRegistry::get().build(eval_cfg.sub("byte_counter"),
                                               ByteCounterContext{data.s("tokenizer"), val_files, run.model->vocab_size()});
  if (const int64_t tv = run.bytes->tokenizer_vocab_size(); tv > 0 && tv != run.model->vocab_size())
    throw ConfigError(run.recipe.file + ": model.vocab_size is " + std::to_string(run.model->vocab_size()) +
                      " but the tokenizer " + data.s("tokenizer") + " has " + std::to_string(tv) +
                      " pieces; make them match (the shards were made with that tokenizer)");
  run.eval_ctx = EvalContext{seq_len, std::max<int64_t>(seq_len, eval_cfg.i("batch_tokens") / world), run.device,
                             comm.rank(), static_cast<int>(world)};

  // ---- run directory ----
  const std::string out = resuming ? resume.dir : opt.out_dir.empty() ? default_run_dir(run.recipe.file, seed) : opt.out_dir;
  std::unique_ptr<RunDir> dir_owner = resuming ? std::make_unique<RunDir>(out, resume.meta.at("metrics_bytes").get<int64_t>())
                                               : std::make_unique<RunDir>(out);
  RunDir& dir = *dir_owner;
  if (!resuming || !opt.overrides.empty()) dir.write_json("recipe.json", run.recipe.resolved);
  log::to_file(dir.file("train.log"));
  log::info("run directory: " + out);
  log::info(strf("train shards: %zu  val tokens: %lld  batch: %lld tokens (%lld x %lld micro-steps/rank)",
                 lctx.files.size(), (long long)(run.val.tokens.numel() - 1), (long long)batch_tokens,
                 (long long)local_tokens, (long long)accum));

  // ---- one training step (also what the warmup runs) ----
  const Config optim_cfg = root.sub("optim");
  const double clip = optim_cfg.f("grad_clip_norm");
  const bool clip_local = optim_cfg.b("grad_clip_local");
  std::vector<torch::Tensor> all_params;
  for (const auto& p : run.model->parameters()) all_params.push_back(p);
  // Fault injection for the guard's end-to-end test: PGOLF_INJECT_NAN_AT_STEP=N makes step N's loss NaN.
  const char* inject_env = std::getenv("PGOLF_INJECT_NAN_AT_STEP");
  const int64_t inject_nan_at = inject_env ? std::atoll(inject_env) : -1;
  // Returns the mean loss and the gradient norm (before clipping), both 0-d device tensors.
  std::unique_ptr<StepProfiler> profiler;  // made once the start step is known (after warmup or resume)
  std::vector<std::string> optimizer_phase;
  for (size_t i = 0; i < run.optimizers.size(); ++i)
    optimizer_phase.push_back(strf("optimizer groups[%zu] %s", i, root.sub("optim").list("groups")[i].name().c_str()));
  auto mark = [&](const std::string& phase) {
    if (profiler) profiler->mark(phase);
  };
  auto train_step = [&](double scale, int64_t step, bool inject_nan) -> std::pair<torch::Tensor, torch::Tensor> {
    for (auto& p : all_params) p.mutable_grad() = torch::Tensor();
    auto train_loss = torch::zeros({}, torch::TensorOptions().device(run.device));
    for (int64_t micro = 0; micro < accum; ++micro) {
      Batch b = run.loader->next();
      const bool pin = run.device.is_cuda();
      auto x = (pin ? b.x.pin_memory() : b.x).to(run.device, /*non_blocking=*/true);
      auto y = (pin ? b.y.pin_memory() : b.y).to(run.device, /*non_blocking=*/true);
      auto cu = b.cu_seqlens.defined() ? b.cu_seqlens.to(run.device) : torch::Tensor();  // packed documents
      auto loss = run.model->loss(x, y, cu, b.max_seqlen);
      if (inject_nan) loss = loss * std::numeric_limits<float>::quiet_NaN();
      train_loss += loss.detach();
      (accum > 1 ? loss / static_cast<double>(accum) : loss).backward();
    }
    mark("forward + backward");
    if (accum > 1) train_loss /= static_cast<double>(accum);
    torch::Tensor norm;
    if (clip > 0 && clip_local) norm = clip_grad_norm(all_params, clip);  // A2: each rank clips its own
    average_gradients(comm, all_params);
    if (clip > 0 && !clip_local) norm = clip_grad_norm(all_params, clip);
    if (!norm.defined()) norm = global_grad_norm(all_params);  // for the non-finite guard
    mark("gradient norm, clip, all-reduce");
    for (size_t i = 0; i < run.optimizers.size(); ++i) {
      run.optimizers[i]->step(scale, step);
      mark(optimizer_phase[i]);
    }
    return {train_loss, norm};
  };

  // ---- warmup, rolled back; then the averagers start; a resumed run then loads its checkpoint ----
  run.model->train();
  if (const int64_t ws = train.i("warmup_steps"), wl = train.i("warmup_looped_steps"); ws + wl > 0) {
    const std::vector<std::shared_ptr<Averager>> none;
    auto tw = Clock::now();
    warmup_and_rollback(TrainingParts{*run.model, run.optimizers, *run.loader, none}, ws, wl,
                        [&] { train_step(1.0, 0, false); });
    sync(run.device);
    log::info(strf("warmup: %lld steps + %lld looped in %.0fms, rolled back (weights, optimizer states, loader, RNG)",
                   (long long)ws, (long long)wl, std::chrono::duration<double, std::milli>(Clock::now() - tw).count()));
  }
  for (auto& a : averagers) a->begin(*run.model);
  const TrainingParts parts{*run.model, run.optimizers, *run.loader, averagers};

  // ---- the step loop ----
  const int64_t iterations = train.i("iterations"), log_every = train.i("log_every"), val_every = train.i("val_every");
  const int64_t checkpoint_every = train.i("checkpoint_every"), nan_check_every = train.i("nan_check_every");
  const double cap_ms = 1000.0 * train.f("max_wallclock_seconds");
  const double budget_ms = cap_ms > 0 ? std::max(0.0, cap_ms - 1000.0 * train.f("wallclock_reserve_seconds")) : 0.0;
  const std::string checkpoint_file = dir.file("checkpoint.bin");

  Json summary = Json::object();
  double train_ms = 0;
  int64_t step = 0, stop_after = -1, last_checkpoint = -1;
  double last_loss = NAN, first_loss = NAN;
  EvalResult last_eval;
  if (resuming) {
    restore_state(parts, resume.state, resume.checkpoint);
    resume.state = TrainingState();  // the host copy is no longer needed
    step = resume.meta.at("step").get<int64_t>();
    train_ms = resume.meta.at("train_ms").get<double>();
    stop_after = resume.meta.at("stop_after").get<int64_t>();
    first_loss = json_number(resume.meta.at("first_loss"));
    last_loss = json_number(resume.meta.at("last_loss"));
    last_checkpoint = step;
    for (const auto& entry : fs::directory_iterator(out))  // temp files of a checkpoint write that was killed
      if (entry.path().filename().string().rfind("checkpoint.bin.tmp.", 0) == 0) fs::remove(entry.path());
    log::info(strf("resumed from %s at step %lld/%lld (train_time %.0fms)", resume.checkpoint.c_str(), (long long)step,
                   (long long)iterations, train_ms));
  }

  if (!opt.profile_path.empty()) profiler = std::make_unique<StepProfiler>(opt.profile_path, step + 6, 3, run.device);
  NonFiniteGuard guard(run.device);
  auto check_finite = [&](int64_t now) {  // a host sync: only at log, checkpoint, nan_check_every and end steps
    auto bad = torch::tensor({static_cast<double>(guard.first_bad_step())}, torch::kFloat64);
    comm.all_reduce_max(bad);
    const auto first = static_cast<int64_t>(bad.item<double>());
    if (first < 0) return;
    const std::string ckpt = last_checkpoint >= 0
                                 ? strf("the last good checkpoint is %s (step %lld; resume with `trainer --resume %s`)",
                                        checkpoint_file.c_str(), (long long)last_checkpoint, out.c_str())
                                 : std::string("there is no checkpoint of this run (train.checkpoint_every is 0 or none was due yet)");
    throw std::runtime_error(strf("training diverged: the loss or the gradient norm was NaN/Inf at step %lld "
                                  "(noticed at step %lld); %s; lower the learning rates or check the data",
                                  (long long)first, (long long)now, ckpt.c_str()));
  };

  sync(run.device);
  auto t0 = Clock::now();
  auto since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };

  while (true) {
    const bool last = step == iterations || (stop_after >= 0 && step >= stop_after);
    if (last) {
      check_finite(step);
      for (auto& a : averagers) a->finish(*run.model);  // EMA/SWA: the weights evaluated and exported
    }
    if (last || (val_every > 0 && step % val_every == 0 && step > 0)) {
      sync(run.device);
      train_ms += since(t0);
      last_eval = evaluate(run, *run.model, comm);
      log::info(strf("step %lld/%lld val_loss %.4f val_bpb %.4f train_time %.0fms step_avg %.2fms", (long long)step,
                     (long long)iterations, last_eval.val_loss(), last_eval.val_bpb(), train_ms,
                     train_ms / std::max<int64_t>(step, 1)));
      dir.metric({{"type", "eval"}, {"step", step}, {"val_loss", last_eval.val_loss()}, {"val_bpb", last_eval.val_bpb()},
                  {"train_ms", train_ms}});
      sync(run.device);
      t0 = Clock::now();
    }
    if (last) break;

    Progress progress{step, iterations, train_ms + since(t0), budget_ms};
    const double scale = run.schedule->lr_scale(progress);
    run.model->on_train_progress(progress.fraction());
    for (auto& a : averagers) a->before_step(*run.model, scale, step);
    if (profiler) profiler->before_step(step + 1);
    const auto [train_loss, grad_norm] = train_step(scale, step, step + 1 == inject_nan_at);
    ++step;
    if (profiler) profiler->after_step(step);
    guard.observe(train_loss, grad_norm, step);
    for (auto& a : averagers) a->after_step(*run.model, scale, step);

    const double now_ms = train_ms + since(t0);
    const bool reached = budget_ms > 0 && now_ms >= budget_ms;
    const bool log_now = log_every > 0 ? (step <= 10 || step % log_every == 0 || reached)
                                       : (step <= 10 || step == iterations || reached);
    const bool checkpoint_now = checkpoint_every > 0 && step % checkpoint_every == 0;
    if (log_now || checkpoint_now || (nan_check_every > 0 && step % nan_check_every == 0)) check_finite(step);
    if (log_now) {  // a host sync besides the guard's: reading the loss back for the log line
      last_loss = train_loss.item<double>();
      if (std::isnan(first_loss)) first_loss = last_loss;
      const double tps = static_cast<double>(step) * batch_tokens / (now_ms / 1000.0);
      const double per_step_ms = now_ms / step;
      double eta_ms = (iterations - step) * per_step_ms;
      if (budget_ms > 0) eta_ms = std::min(eta_ms, budget_ms - now_ms);
      log::info(strf("step %lld/%lld loss %.4f lr %.4f tok/s %s step_avg %.2fms eta %s", (long long)step,
                     (long long)iterations, last_loss, scale, human_rate(tps).c_str(), per_step_ms,
                     human_time(eta_ms / 1000.0).c_str()));
      dir.metric({{"type", "train"}, {"step", step}, {"loss", last_loss}, {"lr_scale", scale},
                  {"tokens_per_second", tps}, {"train_ms", now_ms}});
    }
    if (stop_after < 0 && reached) {
      auto flag = torch::tensor({1.0});
      comm.all_reduce_max(flag);
      stop_after = step;
    }
    if (checkpoint_now) {  // the write pauses the training clock, as evaluation does
      sync(run.device);
      train_ms += since(t0);
      const auto tc = Clock::now();
      const Json meta = {{"step", step},          {"train_ms", train_ms},        {"stop_after", stop_after},
                         {"first_loss", first_loss}, {"last_loss", last_loss},    {"world", world},
                         {"recipe_file", run.recipe.file}, {"metrics_bytes", dir.metrics_bytes()},
                         {"recipe", run.recipe.resolved}};
      if (comm.rank() == 0) write_checkpoint(checkpoint_file, capture_state(parts), meta);
      comm.barrier();
      last_checkpoint = step;
      log::info(strf("checkpoint: step %lld -> %s (%.0fms)", (long long)step, checkpoint_file.c_str(), since(tc)));
      sync(run.device);
      t0 = Clock::now();
    }
  }
  const double tokens_per_second = train_ms > 0 ? static_cast<double>(step) * batch_tokens / (train_ms / 1000.0) : 0.0;
  if (stop_after >= 0 && step < iterations)
    log::info(strf("stopped at the wallclock cap: step %lld/%lld train_time %.0fms", (long long)step,
                   (long long)iterations, train_ms));

  summary["recipe"] = run.recipe.file;
  summary["params"] = run.params;
  summary["steps"] = step;
  summary["train_seconds"] = train_ms / 1000.0;
  summary["tokens_per_second"] = tokens_per_second;
  summary["first_train_loss"] = first_loss;
  summary["final_train_loss"] = last_loss;
  summary["pre_quant_val_loss"] = last_eval.val_loss();
  summary["pre_quant_val_bpb"] = last_eval.val_bpb();
  summary["val_tokens"] = last_eval.tokens;
  summary["val_bytes"] = last_eval.bytes;
  summary["val_loss"] = last_eval.val_loss();
  summary["val_bpb"] = last_eval.val_bpb();
  summary["artifact_bytes"] = nullptr;

  // ---- the artifact: quantise → serialise → compress; then score the model rebuilt from its bytes ----
  if (art_cfg.b("enabled")) {
    const std::string path = dir.file("artifact.bin");
    for (auto& a : averagers) a->before_export(*run.model);  // pruning
    if (comm.rank() == 0) {
      QuantizedState q = run.quantizer->quantize(model_state(*run.model));
      write_file_atomic(path, run.compressor->compress(serialize_state(q)));
    }
    comm.barrier();
    const std::string blob = read_file(path);
    const int64_t model_bytes = static_cast<int64_t>(blob.size());
    const int64_t code = code_bytes(art_cfg.sub("code"), *run.compressor);
    const int64_t total = model_bytes + code, budget = art_cfg.i("budget_bytes");
    log::info(strf("artifact: %lld bytes model + %lld bytes code = %lld bytes (budget %lld: %s)",
                   (long long)model_bytes, (long long)code, (long long)total, (long long)budget,
                   total <= budget ? "within" : "OVER"));

    auto reloaded = build_model(run.recipe, run.device);
    load_model_state(*reloaded, run.quantizer->dequantize(deserialize_state(run.compressor->decompress(blob), path)), path);
    const EvalResult q = evaluate(run, *reloaded, comm);
    log::info(strf("artifact roundtrip val_loss %.4f val_bpb %.4f (pre-quant %.4f)", q.val_loss(), q.val_bpb(),
                   last_eval.val_bpb()));
    dir.metric({{"type", "eval"}, {"step", step}, {"stage", "artifact"}, {"val_loss", q.val_loss()},
                {"val_bpb", q.val_bpb()}});
    summary["val_loss"] = q.val_loss();
    summary["val_bpb"] = q.val_bpb();
    summary["artifact_bytes"] = total;
    summary["artifact_model_bytes"] = model_bytes;
    summary["artifact_code_bytes"] = code;
    summary["within_budget"] = total <= budget;
    summary["artifact"] = path;
  }
  dir.write_json("summary.json", summary);
  log::info(strf("val_bpb %.4f  artifact_bytes %s  run directory %s", summary["val_bpb"].get<double>(),
                 summary["artifact_bytes"].is_null() ? "-" : std::to_string(summary["artifact_bytes"].get<int64_t>()).c_str(),
                 out.c_str()));
  log::close_file();
  return 0;
}

}  // namespace pgolf
