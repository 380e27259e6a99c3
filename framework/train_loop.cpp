#include "framework/train_loop.h"

#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>

#include "framework/device.h"
#include "framework/log.h"
#include "framework/shard.h"
#include "framework/signals.h"

namespace pgolf {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

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

// A pausable stopwatch over the training time: st.train_ms accumulates, pauses around evaluation and
// checkpoint writes (the device is synced at each edge so the pause measures what it should).
struct TrainClock {
  TrainClock(LoopState& st, const torch::Device& d) : st(st), device(d) { restart(); }
  double now_ms() const { return st.train_ms + ms_since(t0); }
  void pause() {
    sync_device(device);
    st.train_ms += ms_since(t0);
  }
  void restart() {
    sync_device(device);
    t0 = Clock::now();
  }
  LoopState& st;
  torch::Device device;
  Clock::time_point t0;
};

}  // namespace

double mfu(const Run& run, double flops, double ms) {
  const double peak = peak_bf16_flops(run.device);
  if (peak <= 0 || ms <= 0) return NAN;
  return flops / (ms / 1000.0) / (peak * run.comm->world());
}

double training_budget_ms(const Config& train) {
  const double cap_ms = 1000.0 * train.f("max_wallclock_seconds");
  return cap_ms > 0 ? std::max(0.0, cap_ms - 1000.0 * train.f("wallclock_reserve_seconds")) : 0.0;
}

TrainLoop::TrainLoop(Run& run, RunDir& dir, TrainStep& step, Checkpointer& checkpointer, std::string profile_path)
    : run_(run), dir_(dir), step_(step), checkpointer_(checkpointer),
      parts_{*run.model, run.optimizers, *run.loader, run.hooks}, guard_(run.device, run.model->vocab_size()), profile_path_(std::move(profile_path)) {
  const Config train = run.recipe.section("train");
  iterations_ = train.i("iterations");
  log_every_ = train.i("log_every");
  val_every_ = train.i("val_every");
  nan_check_every_ = train.i("nan_check_every");
  stuck_steps_ = train.i("stuck_loss_steps");
  budget_ms_ = training_budget_ms(train);
  const char* inject = std::getenv("PGOLF_INJECT_NAN_AT_STEP");  // fault injection for the guard's tests
  inject_nan_at_ = inject ? std::atoll(inject) : -1;
  const char* kill = std::getenv("PGOLF_INJECT_KILL_AFTER_STEP");  // the resume tests' SIGKILL at a known step
  inject_kill_after_ = kill ? std::atoll(kill) : -1;
}

void TrainLoop::run(LoopState& st) {
  if (!profile_path_.empty()) profiler_ = std::make_unique<StepProfiler>(profile_path_, st.step + 6, 3, run_.device);
  step_.set_profiler(profiler_.get());
  TrainClock clock(st, run_.device);
  logged_flops_ = st.model_flops;
  logged_ms_ = st.train_ms;
  while (true) {
    if (st.step == iterations_ || (st.stop_after >= 0 && st.step >= st.stop_after)) {
      clock.pause();
      if (stop_work_) stop_work_->wait();
      check_finite(st);
      break;
    }
    if (val_every_ > 0 && st.step % val_every_ == 0 && st.step > 0) {
      clock.pause();
      validate(st);
      clock.restart();
    }
    Progress progress{st.step, iterations_, clock.now_ms(), budget_ms_};
    const double scale = run_.schedule->lr_scale(progress);
    run_.model->on_train_progress(progress.fraction());
    for (auto& h : run_.hooks) h->before_step(*run_.model, scale, st.step);
    if (profiler_) profiler_->before_step(st.step + 1);
    const StepResult r = step_.run(scale, st.step, st.step + 1 == inject_nan_at_);
    ++st.step;
    st.model_flops += run_.model->flops_per_token(run_.batch.seq_len) * static_cast<double>(run_.batch.batch_tokens);
    if (profiler_) profiler_->after_step(st.step);
    guard_.observe(r.loss, r.grad_norm, st.step, r.max_id);
    for (auto& h : run_.hooks) h->after_step(*run_.model, scale, st.step);

    const double now_ms = clock.now_ms();
    const StopVote vote = agreed_stop(now_ms);
    const bool stop = st.stop_after < 0 && vote.wallclock;
    const bool log_now = st.step <= 10 || stop || vote.signal || (log_every_ > 0 ? st.step % log_every_ == 0 : st.step == iterations_);
    const bool checkpoint_now = checkpointer_.due(st.step);
    if (log_now || checkpoint_now || (nan_check_every_ > 0 && st.step % nan_check_every_ == 0)) check_finite(st);
    if (log_now) log_step(st, r.loss, scale, now_ms);
    if (stop) st.stop_after = st.step;
    if (checkpoint_now) {  // the write pauses the training clock, as evaluation does
      clock.pause();
      write_checkpoint(st);
      clock.restart();
    }
    if (vote.signal) {
      clock.pause();
      interrupt(st, vote.signal);
    }
    if (st.step == inject_kill_after_) std::raise(SIGKILL);
  }
  if (st.stop_after >= 0 && st.step < iterations_)
    log::info(strf("stopped at the wallclock cap: step %lld/%lld train_time %.0fms", (long long)st.step,
                   (long long)iterations_, st.train_ms));
}

// One rank: the cap is reached when this process's clock passes it, and a signal counts when it arrives.
// Several: every rank posts its (cap reached, signal) each step and reads an all-reduced maximum that is
// already complete, so the host never waits for the queued step: on the CPU the previous step's; on CUDA
// the one before it, copied to pinned memory behind an event one step earlier. All ranks read the same
// step's vote, so all stop after the same step.
TrainLoop::StopVote TrainLoop::agreed_stop(double now_ms) {
  const bool reached = budget_ms_ > 0 && now_ms >= budget_ms_;
  Communicator& comm = *run_.comm;
  if (comm.world() == 1) return {reached, stop_signal()};
  const auto read = [](const torch::Tensor& t) {
    return StopVote{t[0].item<double>() > 0, static_cast<int>(t[1].item<double>())};
  };
  StopVote agreed;
  if (stop_work_) {
    stop_work_->wait();  // NCCL: the stream waits for the all-reduce, not the host
    if (run_.device.is_cuda()) {
      if (stop_event_) {
        stop_event_->synchronize();  // recorded a step ago: long complete
        agreed = read(stop_host_);
      } else {
        stop_host_ = torch::empty({2}, torch::TensorOptions().dtype(torch::kFloat64).pinned_memory(true));
        stop_event_ = std::make_unique<c10::Event>(c10::DeviceType::CUDA);
      }
      stop_host_.copy_(stop_flag_, /*non_blocking=*/true);  // read above, so free to overwrite
      stop_event_->record(c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(run_.device));
    } else {
      agreed = read(stop_flag_);
    }
  }
  // Refilled on the device, after (in stream order) the copy above: no host-to-device copy, which would wait.
  if (!stop_flag_.defined()) stop_flag_ = torch::empty({2}, torch::TensorOptions().dtype(torch::kFloat64).device(run_.device));
  stop_flag_.select(0, 0).fill_(reached ? 1.0 : 0.0);
  stop_flag_.select(0, 1).fill_(static_cast<double>(stop_signal()));
  stop_work_ = comm.all_reduce_async(stop_flag_, ReduceOp::Max);
  return agreed;
}

void TrainLoop::write_checkpoint(LoopState& st) {
  const auto tc = Clock::now();
  checkpointer_.write(parts_, st);
  log::info(strf("checkpoint: step %lld -> %s (%.0fms)", (long long)st.step, checkpointer_.file().c_str(), ms_since(tc)));
}

// After the step every rank agreed to stop at: a checkpoint (unless this step's is written or the recipe
// says not to), then Interrupted with the exit code of the signal and the command that resumes.
void TrainLoop::interrupt(LoopState& st, int sig) {
  check_finite(st);
  const bool save = run_.recipe.section("train").b("checkpoint_on_signal");
  if (save && st.last_checkpoint != st.step) write_checkpoint(st);
  const std::string how = save ? strf("checkpoint %s holds step %lld; resume with `%s`", checkpointer_.file().c_str(),
                                      (long long)st.step, checkpointer_.resume_command().c_str())
                               : "no checkpoint written (train.checkpoint_on_signal is false)";
  throw Interrupted(strf("interrupted by %s after step %lld/%lld: %s", signal_name(sig).c_str(), (long long)st.step,
                         (long long)iterations_, how.c_str()),
                    128 + sig);
}

void TrainLoop::validate(const LoopState& st) {
  const EvalResult r = run_.evaluator->evaluate(*run_.model, run_.val, *run_.bytes, run_.eval);
  log::info(strf("step %lld/%lld val_loss %.4f val_bpb %.4f train_time %.0fms step_avg %.2fms", (long long)st.step,
                 (long long)iterations_, r.val_loss(), r.val_bpb(), st.train_ms, st.train_ms / std::max<int64_t>(st.step, 1)));
  dir_.metric({{"type", "eval"}, {"step", st.step}, {"val_loss", r.val_loss()}, {"val_bpb", r.val_bpb()},
               {"train_ms", st.train_ms}});
  require_finite(r, strf("'val' at step %lld", (long long)st.step));
}

// A host sync, and a collective: only at log, checkpoint, nan_check_every and end steps (the same on every rank).
void TrainLoop::check_finite(const LoopState& st) {
  torch::Tensor bad = guard_.first_bad().to(torch::kFloat64);
  run_.comm->all_reduce_max(bad);
  const auto first = static_cast<int64_t>(bad.item<double>());
  if (first < 0) return;
  torch::Tensor id = guard_.bad_id().to(torch::kFloat64);  // error path only: a second collective, every rank
  run_.comm->all_reduce_max(id);
  if (id.item<double>() >= 0) {
    const int64_t vocab = run_.model->vocab_size();
    const TokenAt at = first_id_at_least(run_.train_data.files, vocab);  // the host scan, only now
    throw std::runtime_error(strf("training data: the batch of step %lld holds token id %lld; ", (long long)first,
                                  (long long)id.item<double>()) +
                             (at.found ? "the first such id: " + describe_bad_id(at, vocab) : "outside the model's vocabulary"));
  }
  throw std::runtime_error(strf("training diverged: the loss or the gradient norm was NaN/Inf at step %lld "
                                "(noticed at step %lld); %s; lower the learning rates or check the data",
                                (long long)first, (long long)st.step, checkpointer_.last_good(st).c_str()));
}

// A loss that stays at a uniform guess's ln(vocab) is finite, so the guard is silent, yet nothing is learnt
// (learning rates far too high, typically): warned once per such stretch, from the losses the log reads anyway.
void TrainLoop::check_learning(const LoopState& st) {
  const double uniform = std::log(static_cast<double>(run_.model->vocab_size()));
  if (stuck_steps_ <= 0 || st.last_loss < 0.98 * uniform) {  // (a NaN loss is the guard's)
    stuck_since_ = -1;
    stuck_warned_ = false;
    return;
  }
  if (stuck_since_ < 0) stuck_since_ = st.step;
  if (stuck_warned_ || st.step - stuck_since_ < stuck_steps_) return;
  log::warn(strf("the training loss has stayed at ln(vocab_size) = %.4f (a uniform guess) or above since step %lld "
                 "(%.4f at step %lld): the model is not learning; lower the learning rates",
                 uniform, (long long)stuck_since_, st.last_loss, (long long)st.step));
  stuck_warned_ = true;  // once per stretch
}

void TrainLoop::log_step(LoopState& st, const torch::Tensor& loss, double scale, double now_ms) {
  torch::Tensor mean = loss.detach().to(torch::kFloat64);  // every rank logs at the same steps: the global mean
  run_.comm->all_reduce(mean, ReduceOp::Avg);
  st.last_loss = mean.item<double>();  // a host sync besides the guard's: reading the loss back for the log line
  if (std::isnan(st.first_loss)) st.first_loss = st.last_loss;
  check_learning(st);
  const double tps = static_cast<double>(st.step) * run_.batch.batch_tokens / (now_ms / 1000.0);
  const double per_step_ms = now_ms / st.step;
  double eta_ms = (iterations_ - st.step) * per_step_ms;
  if (budget_ms_ > 0) eta_ms = std::min(eta_ms, budget_ms_ - now_ms);
  // MFU over the interval since the previous log line (the loop's phases run at different rates).
  const double u = mfu(run_, st.model_flops - logged_flops_, now_ms - logged_ms_);
  logged_flops_ = st.model_flops;
  logged_ms_ = now_ms;
  const std::string mfu_s = std::isnan(u) ? "" : strf(" mfu %.1f%%", 100.0 * u);
  log::info(strf("step %lld/%lld loss %.4f lr %.4f tok/s %s%s step_avg %.2fms eta %s", (long long)st.step,
                 (long long)iterations_, st.last_loss, scale, human_rate(tps).c_str(), mfu_s.c_str(), per_step_ms,
                 human_time(eta_ms / 1000.0).c_str()));
  Json m{{"type", "train"}, {"step", st.step}, {"loss", st.last_loss}, {"lr_scale", scale},
         {"tokens_per_second", tps}, {"train_ms", now_ms}};
  if (!std::isnan(u)) m["mfu"] = u;
  dir_.metric(m);
}

}  // namespace pgolf
