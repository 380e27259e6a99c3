// Global L2 gradient clipping without a host synchronisation: the norm and the clip coefficient stay on
// the device (torch::nn::utils::clip_grad_norm_ returns the norm as a double, which waits for the GPU).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace pgolf {

// Scales every defined gradient by min(1, max_norm / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them together.
// Returns the total norm (a 0-d device tensor, fp32).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace pgolf
