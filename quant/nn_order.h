// The similarity sort of the per-group serializer (posttrain §7.3 step 2): a greedy nearest-neighbour chain
// over the rows of an integer matrix, so that similar rows sit next to each other for the compressor.
#pragma once

#include <torch/torch.h>

namespace pgolf {

// Start at row 0; repeatedly append the unused row with the smallest L1 distance (exact, in integers) to the
// last appended row; ties go to the lowest index. Returns int64 [rows].
torch::Tensor nearest_neighbour_order(const torch::Tensor& rows);

}  // namespace pgolf
