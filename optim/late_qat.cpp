// Late QAT (#461, spec training §3.7): once a step's LR scale is below scale_below, every layer that can
// (framework/fake_quant.h: CastedLinear) runs its train-mode forward on straight-through fake-quantised
// weights — per-row int`bits`. One-way: it stays on to the end of training; evaluation is unaffected.
#include "framework/averager.h"
#include "framework/fake_quant.h"
#include "framework/log.h"

namespace pgolf {
namespace {

class LateQat : public Averager {
 public:
  LateQat(double scale_below, int bits) : scale_below_(scale_below), bits_(bits) {}

  void begin(LanguageModel& model) override { set(model, active_ ? bits_ : 0); }

  void before_step(LanguageModel& model, double lr_scale, int64_t step) override {
    if (pending_) set(model, active_ ? bits_ : 0);  // a switch restored from a checkpoint reaches the layers here
    if (active_ || !(lr_scale < scale_below_)) return;
    active_ = true;
    const int64_t n = set(model, bits_);
    log::info(strf("late QAT: int%d fake quantisation on in %lld layers from step %lld (LR scale %.4f)", bits_,
                   (long long)n, (long long)step + 1, lr_scale));
  }

  void finish(LanguageModel& model) override { set(model, 0); }

  Json meta() const override { return Json{{"active", active_}}; }
  void load_state(const std::map<std::string, torch::Tensor>&, const Json& meta) override {
    active_ = meta.at("active").get<bool>();
    pending_ = true;  // load_state has no model at hand: the next before_step sets the layers
  }
  // Number of layers switched.
  int64_t set(LanguageModel& model, int bits) {
    int64_t n = 0;
    for (const auto& m : model.modules(/*include_self=*/false))
      if (auto* t = dynamic_cast<FakeQuantTarget*>(m.get())) {
        t->set_fake_quant_bits(bits);
        ++n;
      }
    pending_ = false;
    return n;
  }

 private:
  double scale_below_;
  int bits_;
  bool active_ = false;
  bool pending_ = false;
};

PGOLF_REGISTER(AveragerRegistry, "late_qat",
               Schema()
                   .number("scale_below", 0.1, 0.0, 1e9, "switch on once a step's LR scale is below this")
                   .integer("bits", 6, 2, 16, "signed bits of the per-row fake quantisation (6: [-32, 31])"),
               [](const Config& c) -> std::shared_ptr<Averager> {
                 return std::make_shared<LateQat>(c.f("scale_below"), static_cast<int>(c.i("bits")));
               },
               "late QAT (#461): straight-through per-row int fake quantisation of linear layers once the LR scale is low");

}  // namespace
}  // namespace pgolf
