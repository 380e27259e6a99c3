// Gradients across ranks: the data-parallel mean of every parameter's gradient (spec training §4.3), as
// DDP does it: parameters in reverse registration order (roughly the order backward finishes them) are
// packed into ~bucket_bytes flat buckets; armed for a backward pass, a gradient hook copies each finished
// gradient into its bucket, and a full bucket's all-reduce is launched at once, overlapping the rest of the
// backward pass. Buckets launch strictly in order, so every rank issues the same collectives in the same
// order. With a LocalCommunicator nothing happens at all.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "framework/comm.h"

namespace pgolf {

// Every defined gradient replaced by its mean over the ranks, one blocking all-reduce each (a no-op with one
// process): for loops that are not the training step (test-time training), where no backward is overlapped.
void average_gradients(Communicator& comm, const std::vector<torch::Tensor>& params);

class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<torch::Tensor> params, int64_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  // The next backward pass (the step's last micro-batch) launches buckets as their gradients finish.
  void arm();
  // Launches every bucket not launched yet (all of them when not armed: after local clipping, say), waits,
  // and leaves each defined gradient equal to the ranks' mean. A parameter without a gradient keeps none.
  void finish();
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;   // indices into params_
    std::vector<int64_t> offsets;  // each member's offset in flat
    torch::Tensor flat;
    size_t ready = 0;
    bool launched = false;
    WorkHandle work;
  };
  void on_grad(size_t i, const torch::Tensor& g);
  void launch_ready();
  void launch(Bucket& b);
  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_, slot_of_;  // each parameter's bucket and place in it
  std::vector<bool> has_grad_;  // this step: the parameter got a gradient (hooked or already accumulated)
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, unsigned>> hooks_;  // (parameter, hook id)
  size_t next_ = 0;  // the first bucket not launched
  bool armed_ = false;
};

}  // namespace pgolf
