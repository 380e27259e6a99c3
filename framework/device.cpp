#include "framework/device.h"

#ifdef PGOLF_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "framework/config.h"

namespace pgolf {

torch::Device choose_device(const std::string& want, int local_rank) {
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda)
    throw ConfigError("train.device: \"cuda\" asked for, but this build or machine has no CUDA device; use \"auto\" or \"cpu\"");
  if (!(want == "cuda" || (want == "auto" && cuda))) return torch::Device(torch::kCPU);
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  if (local_rank >= gpus)
    throw ConfigError("train.device: local rank " + std::to_string(local_rank) + " has no GPU (this machine has " +
                      std::to_string(gpus) + "); start at most that many processes per machine");
#ifdef PGOLF_WITH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank));
#endif
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

torch::ScalarType compute_dtype(const torch::Device& device) {
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace pgolf
