#include "quant/nn_order.h"

#include <limits>
#include <vector>

namespace pgolf {

namespace {
// Above this many rows the n x n distance matrix (4 n^2 bytes) is not kept: each step computes its one row.
constexpr int64_t kMaxMatrixRows = 16384;
}  // namespace

torch::Tensor nearest_neighbour_order(const torch::Tensor& rows) {
  TORCH_CHECK(rows.dim() == 2, "nearest_neighbour_order: expected a matrix, got ", rows.dim(), " dimensions");
  const int64_t n = rows.size(0);
  torch::Tensor order = torch::empty({n}, torch::kInt64);
  if (n == 0) return order;
  const torch::Tensor x = rows.to(torch::kFloat32).contiguous();
  const bool whole = n <= kMaxMatrixRows;
  // All pairwise L1 distances at once (ATen's vectorised, multi-threaded cdist), or one row per step.
  const torch::Tensor d = whole ? torch::cdist(x, x, 1.0).contiguous() : torch::Tensor();
  std::vector<char> used(n, 0);
  int64_t* out = order.data_ptr<int64_t>();
  int64_t last = 0;
  out[0] = 0;
  used[0] = 1;
  for (int64_t k = 1; k < n; ++k) {
    const torch::Tensor row = whole ? torch::Tensor() : (x - x[last]).abs().sum(1).contiguous();
    const float* r = whole ? d.data_ptr<float>() + last * n : row.data_ptr<float>();
    float best = std::numeric_limits<float>::infinity();
    int64_t arg = -1;
    for (int64_t j = 0; j < n; ++j)
      if (!used[j] && (arg < 0 || r[j] < best)) best = r[j], arg = j;  // strict <: ties keep the lowest index
    out[k] = last = arg;
    used[arg] = 1;
  }
  return order;
}

}  // namespace pgolf
