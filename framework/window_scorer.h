// Scores sliding windows (framework/sliding_windows.h) in batches: one (b, S) forward per batch, the
// scored slice of each row masked in, NLL and bytes summed in fp64 on the device (no host sync until the
// caller reads the sums). Shared by the sliding evaluator and the chunked TTT, which scores chunk by chunk.
#pragma once

#include <torch/torch.h>

#include "framework/eval.h"
#include "framework/score_ledger.h"
#include "framework/sliding_windows.h"

namespace pgolf {

class WindowScorer {
 public:
  // `tokens`: the whole val stream (int64, T + 1) on the scoring device.
  WindowScorer(const torch::Tensor& tokens, const SlidingWindows& windows, const ByteCounter& bytes);
  // Scores windows [lo, hi) in forwards of at most `batch` windows (eval mode and no-grad are the caller's),
  // adding to the sums; records the scored targets in `ledger` when given.
  void score(LanguageModel& model, int64_t lo, int64_t hi, int64_t batch, ScoreLedger* ledger = nullptr);
  // The sums so far, over all ranks of ctx (collective).
  EvalResult result(const EvalContext& ctx) const;

 private:
  void score_batch(LanguageModel& model, int64_t lo, int64_t hi, ScoreLedger* ledger);
  torch::Tensor tokens_;
  const SlidingWindows& w_;
  const ByteCounter& bytes_;
  torch::Tensor loss_sum_, byte_sum_, cols_;
  int64_t scored_ = 0;
};

}  // namespace pgolf
