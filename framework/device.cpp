#include "framework/device.h"

#ifdef PGOLF_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <cstdlib>

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

double peak_bf16_flops_of(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") || has("H200") || has("GH200")) return has("PCIe") ? 756e12 : 989e12;
  if (has("B200")) return 2250e12;
  if (has("A100")) return 312e12;
  if (has("L40S")) return 362e12;
  return 0.0;
}

double peak_bf16_flops(const torch::Device& device) {
  if (const char* env = std::getenv("PGOLF_PEAK_TFLOPS")) return std::atof(env) * 1e12;
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) return peak_bf16_flops_of(at::cuda::getDeviceProperties(device.index())->name);
#endif
  return 0.0;
}

void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace pgolf
