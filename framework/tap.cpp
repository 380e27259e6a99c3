#include "framework/tap.h"

#include <algorithm>

namespace pgolf {

void TapSet::remove(const Tap* tap) {
  taps_.erase(std::remove_if(taps_.begin(), taps_.end(), [&](const auto& t) { return t.get() == tap; }), taps_.end());
}

void TapSet::begin_forward() const {
  for (const auto& t : taps_) t->begin_forward();
}

torch::Tensor TapSet::weight(const TapSite& site, torch::Tensor w, bool training) const {
  for (const auto& t : taps_) w = t->weight(site, w, training);
  return w;
}

void TapSet::observe(const TapSite& site, const torch::Tensor& x) const {
  for (const auto& t : taps_) t->observe(site, x);
}

torch::Tensor TapSet::output(const TapSite& site, const torch::Tensor& x, torch::Tensor y) const {
  for (const auto& t : taps_) y = t->output(site, x, y);
  return y;
}

}  // namespace pgolf
