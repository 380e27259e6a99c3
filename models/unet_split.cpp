// The plain layer order (recurrence "none"): the encoder is blocks 0..⌊L/2⌋−1, the decoder the rest, every
// block runs once on its own weights.
#include <algorithm>

#include "models/components.h"

namespace pgolf {

Recurrence::Recurrence(int64_t num_layers) {
  for (int64_t i = 0; i < num_layers; ++i) (i < num_layers / 2 ? plain_.encoder : plain_.decoder).push_back(i);
}

int64_t Recurrence::skip_slots() const {
  return static_cast<int64_t>(std::min(plain_.encoder.size(), plain_.decoder.size()));
}

namespace {

PGOLF_REGISTER(RecurrenceRegistry, "none", Schema(),
               [](const Config&, const LayerContext& ctx) -> std::shared_ptr<Recurrence> {
                 return std::make_shared<Recurrence>(ctx.num_layers);
               },
               "no recurrence: encoder = first half of the blocks, decoder = the rest");

}  // namespace
}  // namespace pgolf
