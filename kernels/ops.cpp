// Where the kernels apply.
#include "kernels/internal.h"
#include "kernels/ops.h"

namespace pgolf::kernels {

bool applies(const torch::Tensor& x) {
#ifdef PGOLF_KERNELS_CUDA
  return x.defined() && x.is_cuda() && x.scalar_type() == torch::kBFloat16;
#else
  (void)x;
  return false;
#endif
}

}  // namespace pgolf::kernels
