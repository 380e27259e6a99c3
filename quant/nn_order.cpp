#include "quant/nn_order.h"

#include <cstdlib>
#include <vector>

namespace pgolf {

namespace {
// L1 distance of two rows of d int32 values (exact: int8 codes give at most 255 per column).
int64_t l1(const int32_t* a, const int32_t* b, int64_t d) {
  int64_t s = 0;
  for (int64_t k = 0; k < d; ++k) s += std::abs(a[k] - b[k]);
  return s;
}
}  // namespace

// Plain loops over an int32 copy: no n x n matrix, no thread pool (ATen's cdist crashed on the 16-core GPU
// machine), the same answer on every machine. The unused rows stay in index order, so a strict < keeps ties
// at the lowest index.
torch::Tensor nearest_neighbour_order(const torch::Tensor& rows) {
  TORCH_CHECK(rows.dim() == 2, "nearest_neighbour_order: expected a matrix, got ", rows.dim(), " dimensions");
  const int64_t n = rows.size(0), d = rows.size(1);
  torch::Tensor order = torch::empty({n}, torch::kInt64);
  if (n == 0) return order;
  const torch::Tensor x = rows.to(torch::kInt32).contiguous();
  const int32_t* p = x.data_ptr<int32_t>();
  std::vector<int64_t> unused(n - 1);
  for (int64_t j = 1; j < n; ++j) unused[j - 1] = j;
  int64_t* out = order.data_ptr<int64_t>();
  int64_t last = out[0] = 0;
  for (int64_t k = 1; k < n; ++k) {
    size_t best_at = 0;
    int64_t best = l1(p + last * d, p + unused[0] * d, d);
    for (size_t u = 1; u < unused.size(); ++u) {
      const int64_t dist = l1(p + last * d, p + unused[u] * d, d);
      if (dist < best) best = dist, best_at = u;
    }
    out[k] = last = unused[best_at];
    unused.erase(unused.begin() + static_cast<std::ptrdiff_t>(best_at));
  }
  return order;
}

}  // namespace pgolf
