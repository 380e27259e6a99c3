// The one place distributed concerns live: rank, world size and the collectives. Single-process runs use
// LocalCommunicator; the multi-process backends (c10d: NCCL on GPUs, Gloo on the CPU) implement the same
// interface, so every other code path is shared.
//
// Rules every caller keeps: collectives take tensors on the run's device (no host round trip inside a step),
// and every rank calls the same collectives in the same order — in particular every cross-rank decision
// (wallclock stop, NaN guard, evaluation triggers) is made through agree_any()/agree_max() by all ranks at
// the same step, never by the ranks for which a local condition holds.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace pgolf {

enum class ReduceOp { Sum, Avg, Max, Min };

struct Communicator {
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // The rank within this machine (binds the GPU).
  virtual int local_rank() const { return rank(); }
  // In place, across ranks.
  virtual void all_reduce(torch::Tensor& t, ReduceOp op) = 0;
  void all_reduce_sum(torch::Tensor& t) { all_reduce(t, ReduceOp::Sum); }
  void all_reduce_max(torch::Tensor& t) { all_reduce(t, ReduceOp::Max); }
  // `t` takes rank `root`'s value on every rank.
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  // out[r] = rank r's `in` (out has world() tensors shaped like `in`).
  virtual void all_gather(std::vector<torch::Tensor>& out, const torch::Tensor& in) = 0;
  virtual void barrier() = 0;
};

struct LocalCommunicator : Communicator {
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void all_reduce(torch::Tensor&, ReduceOp) override {}
  void broadcast(torch::Tensor&, int) override {}
  void all_gather(std::vector<torch::Tensor>& out, const torch::Tensor& in) override { out.assign(1, in.clone()); }
  void barrier() override {}
};

// Cross-rank decisions (each a host sync: call them only at decision points, on every rank).
// True on every rank when `local` is true on any rank.
bool agree_any(Communicator& comm, bool local, const torch::Device& device);
// The largest of the ranks' values, on every rank.
double agree_max(Communicator& comm, double local, const torch::Device& device);

}  // namespace pgolf
