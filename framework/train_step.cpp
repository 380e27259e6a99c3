#include "framework/train_step.h"

#include <limits>

#include "framework/grad_clip.h"
#include "framework/grad_sync.h"
#include "framework/guards.h"
#include "framework/log.h"

namespace pgolf {

namespace {
std::vector<torch::Tensor> parameters_of(LanguageModel& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p);
  return out;
}
}  // namespace

TrainStep::TrainStep(Run& run)
    : run_(run), params_(parameters_of(*run.model)),
      reducer_(*run.comm, params_, static_cast<int64_t>(run.recipe.section("train").f("grad_bucket_mb") * (1 << 20))) {
  const Config optim = run.recipe.section("optim");
  const auto groups = optim.list("groups");
  for (size_t i = 0; i < run.optimizers.size(); ++i)
    optimizer_phases_.push_back(strf("optimizer groups[%zu] %s", i, groups[i].name().c_str()));
  vocab_ = run.model->vocab_size();
  clip_ = optim.f("grad_clip_norm");
  clip_local_ = optim.b("grad_clip_local");
}

torch::Tensor TrainStep::micro_batch_loss(torch::Tensor& max_id) {
  Batch b = run_.loader->next();
  const bool pin = run_.device.is_cuda();
  auto x = (pin ? b.x.pin_memory() : b.x).to(run_.device, /*non_blocking=*/true);
  auto y = (pin ? b.y.pin_memory() : b.y).to(run_.device, /*non_blocking=*/true);
  // An id outside the vocabulary would crash the embedding (a device-side assert on CUDA): the guard gets the
  // batch's largest id (no sync) and the step runs on clamped ids until the guard's next check stops the run.
  const auto m = torch::maximum(x.max(), y.max());
  max_id = max_id.defined() ? torch::maximum(max_id, m) : m;
  x = x.clamp_max(vocab_ - 1);
  y = y.clamp_max(vocab_ - 1);
  // Packed documents: pinned and asynchronous like x and y (a pageable copy would wait for the device).
  auto cu = b.cu_seqlens.defined() ? (pin ? b.cu_seqlens.pin_memory() : b.cu_seqlens).to(run_.device, true) : torch::Tensor();
  return run_.model->loss(x, y, cu, b.max_seqlen);
}

StepResult TrainStep::run(double lr_scale, int64_t step, bool poison) {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  const int64_t accum = run_.batch.accum;
  auto train_loss = torch::zeros({}, torch::TensorOptions().device(run_.device));
  torch::Tensor max_id;
  for (int64_t micro = 0; micro < accum; ++micro) {
    // Only the last micro-batch's backward reduces, overlapped; local clipping needs every gradient first.
    if (micro + 1 == accum && !(clip_ > 0 && clip_local_)) reducer_.arm();
    auto loss = micro_batch_loss(max_id);
    if (poison) loss = loss * std::numeric_limits<float>::quiet_NaN();
    train_loss += loss.detach();
    (accum > 1 ? loss / static_cast<double>(accum) : loss).backward();
  }
  mark("forward + backward");
  if (accum > 1) train_loss /= static_cast<double>(accum);
  torch::Tensor norm;
  if (clip_ > 0 && clip_local_) norm = clip_grad_norm(params_, clip_);  // A2: each rank clips its own
  reducer_.finish();
  if (clip_ > 0 && !clip_local_) norm = clip_grad_norm(params_, clip_);
  if (!norm.defined()) norm = global_grad_norm(params_);  // for the non-finite guard
  mark("gradient norm, clip, all-reduce");
  for (size_t i = 0; i < run_.optimizers.size(); ++i) {
    run_.optimizers[i]->step(lr_scale, step);
    mark(optimizer_phases_[i]);
  }
  return {train_loss, norm, max_id};
}

}  // namespace pgolf
