// The one place distributed concerns live: rank, world size and the collectives. Single-process runs use
// LocalCommunicator; the multi-process backends (framework/c10d_communicator.h: NCCL on GPUs, Gloo on the
// CPU, through LibTorch's c10d) implement the same interface, so every other code path is shared.
//
// Rules every caller keeps: collectives take tensors on the run's device (no host round trip inside a step),
// and every rank calls the same collectives in the same order — in particular every cross-rank decision
// (wallclock stop, signals, NaN guard, evaluation triggers) is made through agree_any()/agree_max() by all
// ranks at the same step, never by the ranks for which a local condition holds.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace pgolf {

enum class ReduceOp { Sum, Avg, Max, Min };

// An asynchronous collective: its tensors must stay untouched until wait() returns. wait() throws when the
// collective failed (a lost rank, a timeout), naming what it was.
struct Work {
  virtual ~Work() = default;
  virtual void wait() = 0;
};
using WorkHandle = std::shared_ptr<Work>;

// A collective that completed at once (one process).
struct DoneWork : Work {
  void wait() override {}
};

struct Communicator {
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // The rank within this machine (binds the GPU) and the number of ranks on it.
  virtual int local_rank() const { return rank(); }
  virtual int local_world() const { return world(); }
  // True when collectives really run (c10d, even with one rank under torchrun); false for LocalCommunicator.
  virtual bool collective() const { return false; }
  // In place, across ranks.
  virtual WorkHandle all_reduce_async(torch::Tensor& t, ReduceOp op) = 0;
  // out = the `op` of every rank's `in`, scattered: `in` is world() equal chunks along dim 0, rank r
  // receives chunk r (out is shaped like one chunk).
  virtual WorkHandle reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) = 0;
  // out = every rank's `in` concatenated along dim 0, in rank order (out has world() times in's rows).
  virtual WorkHandle all_gather_async(torch::Tensor& out, const torch::Tensor& in) = 0;
  // `t` takes rank `root`'s value on every rank.
  virtual WorkHandle broadcast_async(torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;

  void all_reduce(torch::Tensor& t, ReduceOp op) { all_reduce_async(t, op)->wait(); }
  void all_reduce_sum(torch::Tensor& t) { all_reduce(t, ReduceOp::Sum); }
  void all_reduce_max(torch::Tensor& t) { all_reduce(t, ReduceOp::Max); }
  void broadcast(torch::Tensor& t, int root) { broadcast_async(t, root)->wait(); }
  // out[r] = rank r's `in` (out gets world() tensors shaped like `in`).
  void all_gather(std::vector<torch::Tensor>& out, const torch::Tensor& in);
};

struct LocalCommunicator : Communicator {
  int rank() const override { return 0; }
  int world() const override { return 1; }
  WorkHandle all_reduce_async(torch::Tensor&, ReduceOp) override { return std::make_shared<DoneWork>(); }
  WorkHandle reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp) override;
  WorkHandle all_gather_async(torch::Tensor& out, const torch::Tensor& in) override;
  WorkHandle broadcast_async(torch::Tensor&, int) override { return std::make_shared<DoneWork>(); }
  void barrier() override {}
};

// Cross-rank decisions (each a host sync: call them only at decision points, on every rank).
// True on every rank when `local` is true on any rank.
bool agree_any(Communicator& comm, bool local, const torch::Device& device);
// The largest of the ranks' values, on every rank.
double agree_max(Communicator& comm, double local, const torch::Device& device);
// Rank 0's `s` on every rank (a run directory name, for instance).
std::string broadcast_string(Communicator& comm, const std::string& s, const torch::Device& device);
// Every rank's `s`, in rank order, on every rank (the loaders' positions for a checkpoint).
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& s, const torch::Device& device);

}  // namespace pgolf
