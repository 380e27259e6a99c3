// Evaluator "chunked_sgd_ttt": score-first chunked full-model SGD test-time training (spec posttrain §9.2,
// #461 and #1755). The sliding windows (§8.5) are grouped into chunks of C inputs by their first scored
// input; chunk by chunk, every window is scored (eval mode, no grad), then, unless it is the last chunk, the
// model trains on that chunk: its ⌊len / L⌋ whole L-token sequences (the tail is not trained on), global
// mini-batches of `train_batch` sequences split contiguously across ranks, `epochs` passes, mean CE,
// gradients averaged over ranks, clipped to `grad_clip`, one SGD(momentum) for the whole pass with
// lr_c = lr·½(1 + cos(π·c/(n_chunks − 1))). Parameters matching `freeze` are not trained. A ScoreLedger checks
// at run time that each update trains only on targets already scored and that every target is scored once.
// The model's weights are restored afterwards: the stage scores, it does not change the model.
#pragma once

#include <string>
#include <vector>

#include "framework/eval.h"

namespace pgolf {

class ChunkedSgdTtt : public Evaluator {
 public:
  explicit ChunkedSgdTtt(const Config& c);
  EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                      const EvalContext& ctx) const override;
  // Test-only: train on each chunk before scoring it, the deliberately illegal order the legality test plants.
  bool plant_train_before_score = false;

 private:
  struct Pass;
  int64_t stride_, batch_, chunk_, epochs_, train_len_, train_batch_;
  bool rescore_tail_;
  double lr_, momentum_, clip_;
  std::vector<std::string> freeze_;
};

}  // namespace pgolf
