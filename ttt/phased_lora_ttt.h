// Evaluator "phased_lora_ttt": phased test-time training (spec posttrain §9.3, §9.4; #1693, #1855, #1938).
// Documents (each with its next BOS) are scored in isolation, batches of `doc_batch` documents longest first
// (ttt/doc_schedule.h). Per batch, a fresh per-document LoRA (ttt/batched_lora.h; B = 0, A redrawn unless
// warm-started) and a fresh AdamW; per chunk of `chunk` positions, one forward over each document's window
// (≤ `context` tokens of its own text) scores the chunk, then, while a document has a later chunk, the mean
// NLL of its chunk trains its adapters (one step: score, then update). After each phase boundary (the
// prefix budget split into `phases`), global SGD trains the base model on the first `boundary` scored
// documents (varlen attention, chunks of `sgd_chunk_tokens`, the last skipped, cosine lr, fresh momentum),
// and the next batches get a new LoRA. Batches of a phase are assigned to ranks deterministically (LPT).
// The ScoreLedger checks every update against what was scored; the base weights are restored at the end.
#pragma once

#include "framework/eval.h"
#include "ttt/batched_lora.h"

namespace pgolf {

class PhasedLoraTtt : public Evaluator {
 public:
  explicit PhasedLoraTtt(const Config& c);
  EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                      const EvalContext& ctx) const override;
  // Test-only: update each document's adapters on a chunk before recording its score (illegal order).
  bool plant_update_before_score = false;

 private:
  struct Pass;
  int64_t bos_, doc_batch_, chunk_, context_, prefix_, phases_, seed_;
  LoraOptions lora_;
  bool warm_a_;
  double lr_, beta2_, wd_;
  double sgd_lr_, sgd_momentum_, sgd_clip_;
  int64_t sgd_chunk_, sgd_seq_len_, sgd_batch_, sgd_epochs_, cu_pad_;
};

}  // namespace pgolf
