// Evaluation: the validation stream, byte counting and the val_loss / val_bpb figures.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "framework/comm.h"
#include "framework/model.h"
#include "framework/registry.h"

namespace pgolf {

// Sums accumulate in fp64 (spec §5.1); val_bpb = loss_sum / (ln 2 * bytes).
struct EvalResult {
  double loss_sum = 0;  // nats
  double tokens = 0;
  double bytes = 0;
  double val_loss() const { return tokens > 0 ? loss_sum / tokens : 0.0; }
  double val_bpb() const;
};
// A NaN/Inf score is an error, never a result: throws naming the evaluation `stage` ("val" at step N, or
// the post-training stage's label), so a diverged run cannot end with exit 0 and "val_bpb": null.
void require_finite(const EvalResult& r, const std::string& stage);

// The concatenated validation shards, truncated to floor((N-1)/seq_len)*seq_len + 1 tokens.
struct ValStream {
  torch::Tensor tokens;  // int64 (N)
  std::vector<std::string> files;
};
ValStream load_val_stream(const std::vector<std::string>& files, int64_t seq_len, int64_t max_tokens);

struct ByteCounterContext {
  std::string tokenizer_path;        // data.tokenizer
  std::vector<std::string> val_files;  // the val token shards (sidecars are found beside them)
  int64_t vocab_size = 0;            // model vocabulary (LUTs cover max(model, tokenizer))
};

// Bytes of original text per scored target.
struct ByteCounter {
  static constexpr const char* kKind = "byte_counter";
  virtual ~ByteCounter() = default;
  // prev, tgt: int64 (N) previous-input and target ids; target_pos: int64 (N) positions of the targets
  // in the val stream. Returns float64 (N) byte counts.
  virtual torch::Tensor target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt,
                                     const torch::Tensor& target_pos) const = 0;
  // The tokenizer's vocabulary size when the counter knows it (0 = unknown): the Trainer refuses a model
  // whose vocab_size differs, as a mismatch means the recipe and the data disagree.
  virtual int64_t tokenizer_vocab_size() const { return 0; }
};
using ByteCounterRegistry = Registry<ByteCounter, const ByteCounterContext&>;

// What an evaluator runs in: its share of the work comes from comm's rank and world, its sums are
// all-reduced through comm; `stage` names the evaluation ("val" mid-training, then the post-training
// stage's label: "pre_quant", "quantized", ...) for logs and for evaluators that act only in some stages.
struct EvalContext {
  int64_t seq_len = 0;
  int64_t batch_tokens = 0;  // tokens per forward on this rank
  torch::Device device = torch::kCPU;
  Communicator* comm = nullptr;  // null: a single process
  std::string stage = "val";
  std::string profile_path;  // trainer --eval-artifact --profile: an evaluator may profile a few of its steps
  Communicator& communicator() const;
  int rank() const { return communicator().rank(); }
  int world() const { return communicator().world(); }
};

// Scores the model on the validation stream. The result is the total over all ranks: every rank calls
// evaluate, each scores its share, and the evaluator all-reduces the fp64 sums (spec §5.1) before returning.
struct Evaluator {
  static constexpr const char* kKind = "evaluator";
  virtual ~Evaluator() = default;
  virtual EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                              const EvalContext& ctx) const = 0;
};

// Puts the model in eval mode for a scope and back into training mode on every exit path if it was training.
struct EvalModeGuard {
  explicit EvalModeGuard(LanguageModel& m) : model(m), was_training(m.is_training()) { model.eval(); }
  ~EvalModeGuard() {
    if (was_training) model.train();
  }
  LanguageModel& model;
  bool was_training;
};

// loss_sum, tokens, bytes summed over the ranks of ctx (one all-reduce; a host sync).
EvalResult all_reduce_result(const torch::Tensor& loss_sum, double tokens, const torch::Tensor& byte_sum,
                             const EvalContext& ctx);
using EvaluatorRegistry = Registry<Evaluator>;

}  // namespace pgolf
