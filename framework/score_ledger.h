// Legality of test-time training checked while it runs (spec posttrain §9.1, C3 and C4). For every target
// (input index i predicts stream token i + 1) the ledger keeps how often it was scored and the update
// counter at the moment it was scored. Before an update it asserts that every target the update uses has
// been scored (by some rank) before it; at the end, that every target was scored exactly once (or, for
// #461's tail quirk, at least once with the expected total). A violation stops the run with a message
// naming the chunk or document. Counts live on the device; each rank records what it scored itself and
// sync() all-reduces a range (a collective: every rank calls it at the same point).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "framework/comm.h"

namespace pgolf {

class ScoreLedger {
 public:
  ScoreLedger(int64_t targets, torch::Device device, Communicator& comm);

  // This rank scored targets `pos` (int64, any shape, on the device) where `weight` (same shape, 0/1) is 1.
  void scored(const torch::Tensor& pos, const torch::Tensor& weight);
  // This rank scored the contiguous targets [a, b).
  void scored(int64_t a, int64_t b);
  // Makes the cross-rank counts of [a, b) current (collective).
  void sync(int64_t a, int64_t b);
  // An update is about to use targets [a, b) (inputs and targets of what it trains on); `what` names it
  // ("chunk 3", "document 17 chunk 2"). Throws unless every one was scored, by any rank as of the last sync,
  // or by this rank (local = true: per-rank adapters see only their own scoring).
  void check_update(int64_t a, int64_t b, const std::string& what, bool local = false) const;
  void check_update(const torch::Tensor& pos, const torch::Tensor& weight, const std::string& what,
                    bool local = false) const;
  // check_update without a host sync: a violation is remembered (the smallest `tag`, e.g. a chunk index)
  // and reported by flush_deferred, which syncs once and throws naming what(tag).
  void defer_check(const torch::Tensor& pos, const torch::Tensor& weight, int64_t tag, bool local = false);
  void flush_deferred(const std::function<std::string(int64_t)>& what);
  // One more update has been applied (the counter recorded with later scores).
  void updated() { ++updates_; }
  int64_t updates() const { return updates_; }
  // Collective: all-reduces everything, then throws unless each target was scored exactly once
  // (allow_rescore: at least once) and `expected_total` scores were made in all.
  void finish(int64_t expected_total, bool allow_rescore, const std::string& who);

  // Test access: the update counter when target i was (last) scored, -1 if never (this rank's view).
  int64_t scored_at(int64_t i) const { return scored_at_[i].item<int64_t>(); }

 private:
  [[noreturn]] void fail_unscored(const torch::Tensor& bad_pos, const std::string& what) const;
  int64_t T_;
  Communicator& comm_;
  torch::Tensor local_, global_, scored_at_;  // int32 (T)
  torch::Tensor deferred_;                      // int64 scalar: the smallest tag of a deferred violation
  int64_t updates_ = 0;
};

}  // namespace pgolf
