// Late QAT (#461, spec training §3.7): once a step's LR scale is below scale_below, every linear layer runs
// its train-mode forward on straight-through fake-quantised weights — per-row int`bits` — through a tap
// (framework/fake_quant.h). One-way: it stays on to the end of training; evaluation is unaffected.
#include "framework/training_hook.h"
#include "framework/fake_quant.h"
#include "framework/log.h"

namespace pgolf {
namespace {

class LateQat : public TrainingHook {
 public:
  LateQat(double scale_below, int bits) : scale_below_(scale_below), bits_(bits) {}
  void before_step(LanguageModel& model, double lr_scale, int64_t step) override {
    if (!active_ && lr_scale < scale_below_) {
      active_ = true;
      log::info(strf("late QAT: int%d fake quantisation on in %lld linear layers from step %lld (LR scale %.4f)", bits_,
                     (long long)linear_sites(model), (long long)step + 1, lr_scale));
    }
    if (active_ && !tap_) {  // also the first step of a run resumed with the switch on
      tap_ = std::make_shared<FakeQuantTap>(bits_);
      model.taps().add(tap_);
    }
  }
  void finish(LanguageModel& model) override {
    if (tap_) model.taps().remove(tap_.get());
    tap_.reset();
  }
  Json meta() const override { return Json{{"active", active_}}; }
  void load_state(const std::map<std::string, torch::Tensor>&, const Json& meta) override {
    active_ = meta.at("active").get<bool>();
  }

 private:
  static int64_t linear_sites(LanguageModel& model) {
    int64_t n = 0;
    for (const auto& site : model.tap_sites()) n += site.linear ? 1 : 0;
    return n;
  }
  double scale_below_;
  int bits_;
  bool active_ = false;
  std::shared_ptr<FakeQuantTap> tap_;
};

PGOLF_REGISTER(TrainingHookRegistry, "late_qat",
               Schema()
                   .number("scale_below", 0.1, 0.0, 1e9, "switch on once a step's LR scale is below this")
                   .integer("bits", 6, 2, 16, "signed bits of the per-row fake quantisation (6: [-32, 31])"),
               [](const Config& c) -> std::shared_ptr<TrainingHook> {
                 return std::make_shared<LateQat>(c.f("scale_below"), static_cast<int>(c.i("bits")));
               },
               "late QAT (#461): straight-through per-row int fake quantisation of linear layers once the LR scale is low");

}  // namespace
}  // namespace pgolf
