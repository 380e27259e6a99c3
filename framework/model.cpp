#include "framework/model.h"

namespace pgolf {

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

TapSet& LanguageModel::taps() {
  if (!taps_bound_) {
    for (const auto& m : named_modules("", /*include_self=*/false))
      if (auto* t = dynamic_cast<Tappable*>(m.value().get())) t->bind_tap(t->site_at(m.key()), &taps_);
    taps_bound_ = true;
  }
  return taps_;
}

std::vector<TapSite> LanguageModel::tap_sites() {
  std::vector<TapSite> out;
  for (const auto& m : named_modules("", /*include_self=*/false))
    if (auto* t = dynamic_cast<Tappable*>(m.value().get())) out.push_back(t->site_at(m.key()));
  return out;
}

}  // namespace pgolf
