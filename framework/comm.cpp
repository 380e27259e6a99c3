#include "framework/comm.h"

namespace pgolf {

double agree_max(Communicator& comm, double local, const torch::Device& device) {
  if (comm.world() == 1) return local;
  auto t = torch::full({1}, local, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  comm.all_reduce_max(t);
  return t.item<double>();
}

bool agree_any(Communicator& comm, bool local, const torch::Device& device) {
  return agree_max(comm, local ? 1.0 : 0.0, device) > 0.5;
}

}  // namespace pgolf
