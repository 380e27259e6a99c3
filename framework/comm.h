// The one place distributed concerns live: rank, world size and the few collectives the Trainer needs.
// Single-process runs use LocalCommunicator; a multi-GPU backend (NCCL through c10d) implements the same
// interface, so every other code path is shared.
#pragma once

#include <torch/torch.h>

namespace pgolf {

struct Communicator {
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place, across ranks.
  virtual void all_reduce_sum(torch::Tensor& t) = 0;
  virtual void all_reduce_max(torch::Tensor& t) = 0;
  virtual void barrier() = 0;
};

struct LocalCommunicator : Communicator {
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void all_reduce_sum(torch::Tensor&) override {}
  void all_reduce_max(torch::Tensor&) override {}
  void barrier() override {}
};

}  // namespace pgolf
