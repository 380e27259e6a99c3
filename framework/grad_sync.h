// Gradients across ranks: the data-parallel average of every parameter's gradient (spec training §4.3).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "framework/comm.h"

namespace pgolf {

// Every defined gradient replaced by its mean over the ranks (a no-op with one process).
void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params);

}  // namespace pgolf
