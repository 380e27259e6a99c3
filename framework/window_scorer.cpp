#include "framework/window_scorer.h"

#include <stdexcept>

namespace pgolf {

WindowScorer::WindowScorer(const torch::Tensor& tokens, const SlidingWindows& windows, const ByteCounter& bytes)
    : tokens_(tokens), w_(windows), bytes_(bytes) {
  if (tokens.numel() != windows.targets() + 1)
    throw std::invalid_argument("window scorer: the stream has " + std::to_string(tokens.numel()) +
                                " tokens for " + std::to_string(windows.targets()) + " targets");
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(tokens.device());
  loss_sum_ = torch::zeros({}, f64);
  byte_sum_ = torch::zeros({}, f64);
  cols_ = torch::arange(windows.seq_len(), torch::TensorOptions().dtype(torch::kInt64).device(tokens.device()));
}

void WindowScorer::score(LanguageModel& model, int64_t lo, int64_t hi, int64_t batch, ScoreLedger* ledger) {
  if (batch <= 0) throw std::invalid_argument("window scorer: batch must be positive");
  for (int64_t k = lo; k < hi; k += batch) score_batch(model, k, std::min(hi, k + batch), ledger);
}

void WindowScorer::score_batch(LanguageModel& model, int64_t lo, int64_t hi, ScoreLedger* ledger) {
  // The windows' geometry on the device from their indices (no host-to-device copy, so no sync).
  const int64_t S = w_.seq_len(), stride = w_.stride(), width = w_.at(lo).len;  // lengths fall with k
  for (int64_t k = lo; k < hi; ++k) scored_ += w_.at(k).scored();
  auto k = torch::arange(lo, hi, cols_.options()).view({-1, 1});
  auto start = k * stride, len = (start + S).clamp_max(w_.targets()) - start;
  auto from = w_.rescore_tail() ? (len - stride).clamp_min(0) : torch::full_like(len, S - stride);
  from = torch::where(k == 0, torch::zeros_like(from), from);
  auto cols = cols_.slice(0, 0, width).view({1, width});
  // Columns past a short window read a clamped position and are masked out.
  auto pos = (start + cols).clamp_max(w_.targets() - 1);
  auto x = tokens_.index({pos}), y = tokens_.index({pos + 1});
  // Only the scored columns [from, len) reach the head: all of window 0's, at most `stride` of any other's.
  const int64_t K = lo == 0 ? width : std::min(stride, width);
  auto at = from + cols_.slice(0, 0, K).view({1, K});
  auto sel = at.clamp_max(width - 1);
  auto mask = (at < len).to(torch::kFloat64);
  auto nll = model.token_nll_at(x, y, sel);
  if (nll.sizes() != sel.sizes())
    throw std::runtime_error("window scorer: token_nll_at returned a tensor of another shape than its columns");
  auto xs = x.gather(1, sel), ys = y.gather(1, sel), ps = pos.gather(1, sel);
  loss_sum_ += (nll.to(torch::kFloat64) * mask).sum();
  byte_sum_ += (bytes_.target_bytes(xs.reshape({-1}), ys.reshape({-1}), (ps + 1).reshape({-1})).to(torch::kFloat64) *
                mask.reshape({-1}))
                   .sum();
  if (ledger) ledger->scored(ps, mask);
}

EvalResult WindowScorer::result(const EvalContext& ctx) const {
  return all_reduce_result(loss_sum_, static_cast<double>(scored_), byte_sum_, ctx);
}

}  // namespace pgolf
