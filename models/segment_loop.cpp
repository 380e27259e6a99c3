// Family A's depth recurrence (spec §2.10): the segment [loop_start, loop_end] runs num_loops+1 times,
//   P = [0 .. loop_start) + [loop_start .. loop_end] × (num_loops+1) + (loop_end .. L)
// and the encoder is the first ⌊|P|/2⌋ entries, the decoder the rest. With L = 11, 3..5 and 2 loops:
// encoder [0,1,2,3,4,5,3,4], decoder [5,3,4,5,6,7,8,9,10]. The model runs the plain split until the
// training fraction reaches activate_at, then loops for good, in training and evaluation alike: the
// references validate the live model with its looping_active flag, so a validation before activation
// scores the plain network (a looped score there is what made pgolf's step-100 val_bpb 0.02 worse, issue
// 15). The model rebuilt from the artifact is switched on by the trainer, as the references loop their
// deserialised model. Passes share everything (weights, norms, f_ℓ, resid_mix, scales). The skip slots
// come from the looped lists.
#include <algorithm>

#include "models/components.h"

namespace pgolf {
namespace {

struct SegmentLoop : Recurrence {
  SegmentLoop(const Config& cfg, const LayerContext& ctx) : Recurrence(ctx.num_layers), activate_at_(cfg.f("activate_at")) {
    const int64_t start = cfg.i("loop_start"), end = cfg.i("loop_end"), loops = cfg.i("num_loops"), L = ctx.num_layers;
    cfg.check(start <= end && end < L, "loop_end",
              "a loop segment [loop_start, loop_end] = [" + std::to_string(start) + ", " + std::to_string(end) +
                  "] with loop_start <= loop_end < model.layers (" + std::to_string(L) + ")");
    std::vector<int64_t> all;
    for (int64_t i = 0; i < start; ++i) all.push_back(i);
    for (int64_t r = 0; r <= loops; ++r)
      for (int64_t i = start; i <= end; ++i) all.push_back(i);
    for (int64_t i = end + 1; i < L; ++i) all.push_back(i);
    const size_t n_enc = all.size() / 2;
    looped_.encoder.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n_enc));
    looped_.decoder.assign(all.begin() + static_cast<std::ptrdiff_t>(n_enc), all.end());
    if (activate_at_ <= 0.0) active_ = true;
  }

  const LayerOrder& order(bool /*training*/) const override { return active_ ? looped_ : plain_; }
  int64_t skip_slots() const override {
    return static_cast<int64_t>(std::min(looped_.encoder.size(), looped_.decoder.size()));
  }
  void on_train_progress(double fraction) override {
    if (fraction >= activate_at_) active_ = true;  // one-way
  }
  void reset_train_progress() override { active_ = activate_at_ <= 0.0; }

  LayerOrder looped_;
  double activate_at_;
  bool active_ = false;
};

Schema schema() {
  return Schema()
      .integer("loop_start", 3, 0, 4096, "first block of the looped segment")
      .integer("loop_end", 5, 0, 4096, "last block of the looped segment (inclusive)")
      .integer("num_loops", 2, 0, 1024, "extra passes over the segment (it runs num_loops + 1 times)")
      .number("activate_at", 0.35, 0.0, 1e9,
              "training fraction (time with a wallclock cap, else steps) at which looping starts, for training and "
              "evaluation alike (the artifact's model always loops)");
}

PGOLF_REGISTER(RecurrenceRegistry, "segment_loop", schema(),
               [](const Config& cfg, const LayerContext& ctx) -> std::shared_ptr<Recurrence> {
                 return std::make_shared<SegmentLoop>(cfg, ctx);
               },
               "re-run a segment of blocks num_loops more times, switched on once at a training fraction (family A)");

}  // namespace
}  // namespace pgolf
