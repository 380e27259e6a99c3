#include "framework/grad_sync.h"

namespace pgolf {

void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params) {
  if (comm.world() == 1) return;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    comm.all_reduce(g, ReduceOp::Avg);
  }
}

}  // namespace pgolf
