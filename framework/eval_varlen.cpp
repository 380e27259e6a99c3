// Evaluator "varlen": the non-overlapping seq_len blocks of "full", split across ranks the same way, but each
// batch of blocks is one flattened row whose attention stays inside each document (spec posttrain §8.4, the
// #1693/#1855/#1938 diagnostic form): cu_seqlens from the BOS positions, segments cut every `max_doc_len`
// tokens, the array padded with the row length to a multiple of `cu_seqlens_pad` entries.
#include "framework/eval.h"
#include "framework/loader.h"
#include "framework/shard.h"

namespace pgolf {
namespace {

class VarlenEvaluator : public Evaluator {
 public:
  explicit VarlenEvaluator(const Config& c) : bos_(c.i("bos_id")), pad_(c.i("cu_seqlens_pad")), max_doc_(c.i("max_doc_len")) {}

  EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                      const EvalContext& ctx) const override {
    const int64_t T = ctx.seq_len, n = val.tokens.numel();
    const int64_t total = n > 0 ? (n - 1) / T : 0;
    const int64_t first = total * ctx.rank() / ctx.world(), last = total * (ctx.rank() + 1) / ctx.world();
    const int64_t per_batch = std::max<int64_t>(1, ctx.batch_tokens / T);
    const int64_t max_len = max_doc_ > 0 ? max_doc_ : T;

    EvalModeGuard mode(model);
    torch::NoGradGuard no_grad;
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(ctx.device);
    auto loss_sum = torch::zeros({}, f64), byte_sum = torch::zeros({}, f64);
    int64_t tokens = 0;
    for (int64_t s = first; s < last; s += per_batch) {
      const int64_t b = std::min(per_batch, last - s), len = b * T;
      auto span = val.tokens.slice(0, s * T, s * T + len + 1);  // host: cu_seqlens are built here
      auto cu = packed_cu_seqlens(span.data_ptr<int64_t>(), len, bos_, max_len, pad_).to(ctx.device);
      auto dev = span.to(ctx.device);
      auto x = dev.slice(0, 0, len).view({1, len}), y = dev.slice(0, 1, len + 1).view({1, len});
      auto nll = model.token_nll(x, y, cu, max_len);
      loss_sum += nll.to(torch::kFloat64).sum();
      auto pos = torch::arange(s * T + 1, s * T + len + 1, torch::TensorOptions().dtype(torch::kInt64).device(ctx.device));
      byte_sum += bytes.target_bytes(x.reshape({-1}), y.reshape({-1}), pos).to(f64).sum();
      tokens += len;
    }
    return all_reduce_result(loss_sum, static_cast<double>(tokens), byte_sum, ctx);
  }

 private:
  int64_t bos_, pad_, max_doc_;
};

Schema schema() {
  return Schema()
      .integer("bos_id", kBosId, 0, 65535, "the token that starts every document")
      .integer("cu_seqlens_pad", 64, 1, 1 << 20, "pad cu_seqlens with the row length to a multiple of this many entries")
      .integer("max_doc_len", 0, 0, 1 << 20, "cut documents into segments of at most this many tokens (0 = data.seq_len)");
}

}  // namespace

PGOLF_REGISTER(
    EvaluatorRegistry, "varlen", schema(),
    [](const Config& c) -> std::shared_ptr<Evaluator> { return std::make_shared<VarlenEvaluator>(c); },
    "non-overlapping seq_len blocks, flattened per batch with attention isolated per document (spec 8.4)");

}  // namespace pgolf
