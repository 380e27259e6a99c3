// Where a run computes and in what precision: the policy in one place. On CUDA each process takes the GPU
// of its local rank and computes in bf16 over fp32 master weights; on the CPU everything is fp32.
#pragma once

#include <torch/torch.h>

#include <string>

namespace pgolf {

// train.device ("auto" | "cuda" | "cpu"): cuda:<local_rank> when CUDA is asked for (or available, with
// auto), made the current device; throws ConfigError when cuda is asked for and absent.
torch::Device choose_device(const std::string& want, int local_rank);
// The activation dtype on `device`: bf16 on CUDA, fp32 on the CPU (parameters stay fp32 masters).
torch::ScalarType compute_dtype(const torch::Device& device);
// Dense bf16 tensor-core peak FLOP/s of a GPU by its name (vendor data sheets, no sparsity); 0 = unknown.
double peak_bf16_flops_of(const std::string& device_name);
// The peak of `device` for MFU: PGOLF_PEAK_TFLOPS (TFLOP/s) when set, else by the GPU's name; 0 on the CPU.
double peak_bf16_flops(const torch::Device& device);
// Waits for the device's queued work (a host sync: only at phase boundaries and timing points).
void sync_device(const torch::Device& device);

}  // namespace pgolf
