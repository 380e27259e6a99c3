// The validation stream, val_bpb, and evaluator "full": non-overlapping seq_len blocks (spec training §5.2,
// posttrain §8.4 first form), each rank scoring a contiguous range of blocks.
#include "framework/eval.h"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "framework/shard.h"

namespace pgolf {

double EvalResult::val_bpb() const { return bytes > 0 ? loss_sum / (std::log(2.0) * bytes) : 0.0; }

Communicator& EvalContext::communicator() const {
  static LocalCommunicator local;
  return comm ? *comm : local;
}

EvalResult all_reduce_result(const torch::Tensor& loss_sum, double tokens, const torch::Tensor& byte_sum,
                             const EvalContext& ctx) {
  auto sums = torch::stack({loss_sum.to(torch::kFloat64), torch::full({}, tokens, loss_sum.options().dtype(torch::kFloat64)),
                            byte_sum.to(torch::kFloat64)});
  ctx.communicator().all_reduce_sum(sums);
  const auto host = sums.cpu();
  return EvalResult{host[0].item<double>(), host[1].item<double>(), host[2].item<double>()};
}

void require_finite(const EvalResult& r, const std::string& stage) {
  if (std::isfinite(r.val_loss()) && std::isfinite(r.val_bpb())) return;
  throw std::runtime_error("evaluation " + stage + ": the score is not finite (val_loss " + std::to_string(r.val_loss()) +
                           ", val_bpb " + std::to_string(r.val_bpb()) +
                           "): the model diverged; lower the learning rates or check the data");
}

ValStream load_val_stream(const std::vector<std::string>& files, int64_t seq_len, int64_t max_tokens) {
  if (seq_len <= 0) throw std::runtime_error("load_val_stream: seq_len must be positive, got " + std::to_string(seq_len));
  std::vector<std::unique_ptr<ShardView>> views;
  int64_t n = 0;
  for (const auto& f : files) {
    views.push_back(std::make_unique<ShardView>(f));
    n += views.back()->size();
  }
  if (max_tokens > 0) n = std::min(n, max_tokens + 1);
  if (n < seq_len + 1) {
    std::string names;
    for (const auto& f : files) names += (names.empty() ? "" : ", ") + f;
    throw std::runtime_error("validation shards [" + names + "] give " + std::to_string(n) +
                             " tokens (after data.val_max_tokens), fewer than seq_len + 1 = " +
                             std::to_string(seq_len + 1) + "; use more validation data or a shorter data.seq_len");
  }
  n = (n - 1) / seq_len * seq_len + 1;  // whole blocks only: the tail of the last document is dropped
  ValStream out;
  out.files = files;
  out.tokens = torch::empty({n}, torch::kInt64);
  int64_t* dst = out.tokens.data_ptr<int64_t>();
  int64_t filled = 0;
  for (const auto& v : views) {
    const int64_t k = std::min(v->size(), n - filled);
    for (int64_t i = 0; i < k; ++i) dst[filled + i] = v->data()[i];
    filled += k;
    if (filled == n) break;
  }
  return out;
}

namespace {

class FullEvaluator : public Evaluator {
 public:
  EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                      const EvalContext& ctx) const override {
    const int64_t T = ctx.seq_len;
    if (T <= 0) throw std::runtime_error("full evaluator: seq_len must be positive, got " + std::to_string(T));
    const int64_t n = val.tokens.numel();
    const int64_t total = n > 0 ? (n - 1) / T : 0;
    const int64_t first = total * ctx.rank() / ctx.world(), last = total * (ctx.rank() + 1) / ctx.world();
    const int64_t per_batch = std::max<int64_t>(1, ctx.batch_tokens / T);

    EvalModeGuard mode(model);
    torch::NoGradGuard no_grad;  // not InferenceMode: tensors a model caches here are reused in training
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(ctx.device);
    auto loss_sum = torch::zeros({}, f64), byte_sum = torch::zeros({}, f64);
    int64_t tokens = 0;
    for (int64_t s = first; s < last; s += per_batch) {
      const int64_t b = std::min(per_batch, last - s);
      auto chunk = val.tokens.slice(0, s * T, (s + b) * T + 1).to(ctx.device);
      auto x = chunk.slice(0, 0, b * T), y = chunk.slice(0, 1, b * T + 1);
      auto nll = model.token_nll(x.view({b, T}), y.view({b, T}));
      if (nll.numel() != b * T)
        throw std::runtime_error("full evaluator: token_nll returned " + std::to_string(nll.numel()) +
                                 " values for a (" + std::to_string(b) + ", " + std::to_string(T) + ") batch");
      loss_sum += nll.to(torch::kFloat64).sum();
      auto pos = torch::arange(s * T + 1, (s + b) * T + 1, torch::TensorOptions().dtype(torch::kInt64).device(ctx.device));
      byte_sum += bytes.target_bytes(x, y, pos).to(f64).sum();
      tokens += b * T;
    }
    return all_reduce_result(loss_sum, static_cast<double>(tokens), byte_sum, ctx);  // one host sync for the pass
  }
};

}  // namespace

PGOLF_REGISTER(
    EvaluatorRegistry, "full", Schema(),
    [](const Config&) -> std::shared_ptr<Evaluator> { return std::make_shared<FullEvaluator>(); },
    "non-overlapping seq_len blocks, each scored with causal attention over the block");

}  // namespace pgolf
