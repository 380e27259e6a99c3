// Magnitude pruning before export (#461): in every 2-D parameter with more than min_numel entries, the
// entries whose |w| is below the `fraction` quantile of that tensor's |w| are set to 0. Runs after the
// pre-quantisation evaluation, just before the quantiser (zeros compress well).
#include <cmath>

#include "framework/training_hook.h"
#include "framework/log.h"

namespace pgolf {
namespace {

// The q-quantile of |w| with linear interpolation between order statistics (torch.quantile's default),
// computed by sorting, so any size works (torch::quantile refuses more than 2^24 entries).
torch::Tensor abs_quantile(const torch::Tensor& w, double q) {
  const auto sorted = std::get<0>(w.detach().abs().to(torch::kFloat32).flatten().sort());
  const double pos = q * static_cast<double>(sorted.numel() - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos)), hi = static_cast<int64_t>(std::ceil(pos));
  return torch::lerp(sorted[lo], sorted[hi], pos - static_cast<double>(lo));
}

class MagnitudePrune : public TrainingHook {
 public:
  MagnitudePrune(double fraction, int64_t min_numel) : fraction_(fraction), min_numel_(min_numel) {}

  void before_export(LanguageModel& model) override {
    if (fraction_ <= 0) return;
    torch::NoGradGuard g;
    int64_t tensors = 0, zeroed = 0, total = 0;
    for (auto& p : model.named_parameters(true)) {
      torch::Tensor w = p.value();
      if (w.dim() != 2 || w.numel() <= min_numel_) continue;
      const auto mask = w.abs().to(torch::kFloat32) < abs_quantile(w, fraction_);
      zeroed += mask.sum().item<int64_t>();
      total += w.numel();
      w.masked_fill_(mask, 0.0);
      ++tensors;
    }
    log::info(strf("pruning: zeroed %lld of %lld entries (%.2f%%) in %lld matrices with more than %lld entries",
                   (long long)zeroed, (long long)total, total ? 100.0 * zeroed / total : 0.0, (long long)tensors,
                   (long long)min_numel_));
  }

 private:
  double fraction_;
  int64_t min_numel_;
};

PGOLF_REGISTER(TrainingHookRegistry, "magnitude_prune",
               Schema()
                   .number("fraction", 0.03, 0.0, 1.0, "zero the entries below this quantile of |w| (per tensor)")
                   .integer("min_numel", 65536, 0, 1e15, "only 2-D parameters with more entries than this"),
               [](const Config& c) -> std::shared_ptr<TrainingHook> {
                 return std::make_shared<MagnitudePrune>(c.f("fraction"), c.i("min_numel"));
               },
               "magnitude pruning before export (#461: 3% of every 2-D parameter with more than 65,536 entries)");

}  // namespace
}  // namespace pgolf
