// A module's state by name: its parameters, then its buffers, with their registered (state-dict) names. The
// one walk the checkpoint, the warmup rollback, weight averaging and the artifact share.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace pgolf {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Live handles (no copies), parameters first, then buffers; with floating_only, integer and bool buffers are
// left out (what EMA and SWA average).
NamedTensors named_state(torch::nn::Module& m, bool floating_only = false);

// Copies `state` into `m` by name. Every tensor of `m` must be present with the same shape and `state` may hold
// nothing else; values are cast to the destination's dtype and device. Throws std::runtime_error naming `what`
// and the first tensor that does not fit.
void load_named_state(torch::nn::Module& m, const NamedTensors& state, const std::string& what);

}  // namespace pgolf
