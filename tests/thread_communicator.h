// An in-process world for tests: each rank is a thread, collectives meet at a shared barrier and reduce the
// ranks' tensors in rank order (so every rank gets the same bits), as a real multi-process run would.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "framework/comm.h"

namespace pgolf::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int world) : world_(world), slots_(static_cast<size_t>(world)) {}
  int world() const { return world_; }
  void barrier() {
    std::unique_lock<std::mutex> l(m_);
    const int64_t gen = gen_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return gen_ != gen; });
    }
  }
  // Every rank's `t` (a barrier before and after: slots are reused by the next collective).
  std::vector<torch::Tensor> exchange(int rank, const torch::Tensor& t) {
    slots_[static_cast<size_t>(rank)] = t.detach().clone();
    barrier();
    std::vector<torch::Tensor> all;
    for (const auto& s : slots_) all.push_back(s.clone());
    barrier();
    return all;
  }

 private:
  int world_;
  std::mutex m_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t gen_ = 0;
  std::vector<torch::Tensor> slots_;
};

struct ThreadCommunicator : Communicator {
  ThreadCommunicator(ThreadGroup& g, int r) : group(g), r_(r) {}
  int rank() const override { return r_; }
  int world() const override { return group.world(); }
  bool collective() const override { return true; }
  // Each collective completes before it returns (its handle is already done).
  WorkHandle all_reduce_async(torch::Tensor& t, ReduceOp op) override {
    t.copy_(reduce(group.exchange(r_, t), op));
    return std::make_shared<DoneWork>();
  }
  WorkHandle reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) override {
    out.copy_(reduce(group.exchange(r_, in), op).chunk(world(), 0)[static_cast<size_t>(r_)]);
    return std::make_shared<DoneWork>();
  }
  WorkHandle all_gather_async(torch::Tensor& out, const torch::Tensor& in) override {
    out.copy_(torch::cat(group.exchange(r_, in), 0));
    return std::make_shared<DoneWork>();
  }
  WorkHandle broadcast_async(torch::Tensor& t, int root) override {
    t.copy_(group.exchange(r_, t)[static_cast<size_t>(root)]);
    return std::make_shared<DoneWork>();
  }
  void barrier() override { group.barrier(); }
  ThreadGroup& group;
  int r_;

 private:
  // The ranks' tensors reduced in rank order, so every rank gets the same bits.
  static torch::Tensor reduce(const std::vector<torch::Tensor>& all, ReduceOp op) {
    auto acc = all[0];
    for (size_t i = 1; i < all.size(); ++i) {
      if (op == ReduceOp::Max) acc = torch::maximum(acc, all[i]);
      else if (op == ReduceOp::Min) acc = torch::minimum(acc, all[i]);
      else acc = acc + all[i];
    }
    return op == ReduceOp::Avg ? acc / static_cast<double>(all.size()) : acc;
  }
};

// Runs fn(rank, comm) on `world` threads and waits for all of them.
inline void run_ranks(int world, const std::function<void(int, Communicator&)>& fn) {
  ThreadGroup g(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator c(g, r);
      fn(r, c);
    });
  for (auto& t : threads) t.join();
}

}  // namespace pgolf::testing
