// Post-training stage "calibrate": collects the input Hessians GPTQ needs (framework/calibration.h) from
// `batches` batches of the *training* shards, drawn by the recipe's calibration loader (the references:
// shuffled sequences seeded by rank alone, this rank's micro-batch geometry). Calibration reads training
// data, so its time counts against the training wallclock: the training loop stops
// train.wallclock_reserve_seconds before the cap to leave room for it, this stage adds its time to the
// training clock, stops early (all ranks together) rather than run past the cap, and logs where it ended.
#include <chrono>
#include <cmath>

#include "framework/calibration.h"
#include "framework/device.h"
#include "framework/log.h"
#include "framework/pipeline.h"

namespace pgolf {
namespace {

class Calibrate : public PipelineStage {
 public:
  explicit Calibrate(const Config& c) : batches_(c.i("batches")), loader_(c.sub("loader")), stop_at_cap_(c.b("stop_at_cap")) {
    sites_.policy = c.s("tap_policy");
    sites_.patterns = c.strings("patterns");
    sites_.min_numel = c.i("min_numel");
    sites_.roles = c.strings("roles");
  }

  void run(PipelineContext& ctx) override {
    const auto t0 = std::chrono::steady_clock::now();
    auto loader = LoaderRegistry::get().build(loader_, ctx.train_data);
    const double cap_ms = 1000.0 * ctx.recipe.section("train").f("max_wallclock_seconds");
    const double start_ms = ctx.train_ms;
    std::function<bool(double)> keep_going;
    if (stop_at_cap_ && cap_ms > 0)
      keep_going = [&](double mean_ms) { return start_ms + elapsed_ms(t0) + mean_ms <= cap_ms; };
    CalibrationResult r =
        collect_hessians(*ctx.trained, [&] { return loader->next(); }, batches_, sites_, ctx.comm, ctx.device, keep_going);
    sync_device(ctx.device);
    const double ms = elapsed_ms(t0);
    ctx.train_ms += ms;
    ctx.hessians = std::move(r.hessians);
    log::info(strf("calibration: %lld/%lld batches of %lld tokens, %s taps, %zu Hessians in %.0fms", (long long)r.batches,
                   (long long)batches_, (long long)ctx.train_data.local_tokens, sites_.policy.c_str(),
                   ctx.hessians.size(), ms));
    if (cap_ms > 0)
      log::info(strf("calibration ended at train_time %.0fms: %.0fms %s the %.0fms cap (training stopped at %.0fms)",
                     ctx.train_ms, std::abs(cap_ms - ctx.train_ms), ctx.train_ms <= cap_ms ? "before" : "PAST", cap_ms,
                     start_ms));
    ctx.summary["calibration_batches"] = r.batches;
    ctx.summary["calibration_seconds"] = ms / 1000.0;
    ctx.summary["train_seconds_with_calibration"] = ctx.train_ms / 1000.0;
  }

  std::vector<std::string> makes() const override { return {"hessians"}; }

 private:
  static double elapsed_ms(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  int64_t batches_;
  Config loader_;
  bool stop_at_cap_;
  CalibrationSites sites_;
};

Schema calibrate_schema() {
  const CalibrationSites d;
  return Schema()
      .integer("batches", 16, 1, 1e9, "calibration batches per rank (this rank's training micro-batch each)")
      .choice("tap_policy", d.policy, {"module_inputs", "block_taps"},
              "module_inputs: large attn/MLP linears' inputs (#1755); block_taps: each block's bank roles (#1693 family)")
      .string_list("patterns", d.patterns, "module_inputs: name substrings of the linears that get a Hessian")
      .integer("min_numel", d.min_numel, 0, 1e15, "module_inputs: only weights with more elements")
      .string_list("roles", d.roles, "block_taps: module-path suffixes of the linears that get a Hessian")
      .boolean("stop_at_cap", true, "stop calibrating (fewer batches) rather than run past train.max_wallclock_seconds")
      .component("loader", "loader", "shuffled_sequences",
                 "how calibration batches are drawn from the training shards (the references: shuffled_sequences "
                 "with seed_source rank)");
}

PGOLF_REGISTER(StageRegistry, "calibrate", calibrate_schema(),
               [](const Config& c) -> std::shared_ptr<PipelineStage> { return std::make_shared<Calibrate>(c); },
               "collects GPTQ's input Hessians from training batches through the model's tap sites");

}  // namespace
}  // namespace pgolf
