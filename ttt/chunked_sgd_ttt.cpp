#include "ttt/chunked_sgd_ttt.h"

#include <fnmatch.h>

#include <chrono>
#include <cmath>

#include "framework/grad_clip.h"
#include "framework/grad_sync.h"
#include "framework/log.h"
#include "framework/score_ledger.h"
#include "framework/window_scorer.h"

namespace pgolf {

ChunkedSgdTtt::ChunkedSgdTtt(const Config& c)
    : stride_(c.i("stride")), batch_(c.i("batch")), chunk_(c.i("chunk_tokens")), epochs_(c.i("epochs")),
      train_len_(c.i("train_seq_len")), train_batch_(c.i("train_batch")), rescore_tail_(c.s("rule") == "461"),
      lr_(c.f("lr")), momentum_(c.f("momentum")), clip_(c.f("grad_clip")), freeze_(c.strings("freeze")) {}

// One evaluation pass: the plan, the ledger, the scorer and the optimizer it shares across chunks.
struct ChunkedSgdTtt::Pass {
  Pass(const ChunkedSgdTtt& c, LanguageModel& m, const ValStream& val, const ByteCounter& bytes, const EvalContext& e)
      : cfg(c), model(m), ctx(e), tokens(val.tokens.to(e.device)),
        windows(val.tokens.numel() - 1, e.seq_len, c.stride_, c.rescore_tail_), chunks(windows, c.chunk_),
        ledger(windows.targets(), e.device, e.communicator()), scorer(tokens, windows, bytes) {}

  // Splits the parameters into trained and frozen; returns the trained ones' values to restore afterwards.
  std::vector<torch::Tensor> select_parameters() {
    std::vector<torch::Tensor> saved;
    for (const auto& p : model.named_parameters()) {
      bool frozen = false;
      for (const auto& pat : cfg.freeze_) frozen = frozen || fnmatch(pat.c_str(), p.key().c_str(), 0) == 0;
      if (frozen) {
        frozen_.push_back(p.value());
        p.value().set_requires_grad(false);
      } else {
        trainable.push_back(p.value());
        saved.push_back(p.value().detach().clone());
      }
    }
    opt = std::make_unique<torch::optim::SGD>(trainable, torch::optim::SGDOptions(cfg.lr_).momentum(cfg.momentum_));
    return saved;
  }

  void restore(const std::vector<torch::Tensor>& saved) {
    torch::NoGradGuard g;
    for (size_t i = 0; i < trainable.size(); ++i) {
      trainable[i].copy_(saved[i]);
      trainable[i].mutable_grad() = torch::Tensor();
    }
    for (auto& p : frozen_) p.set_requires_grad(true);
  }

  void score(int64_t c) {
    const int64_t lo = chunks.first_window(c), n = chunks.end_window(c) - lo;
    EvalModeGuard mode(model);
    torch::NoGradGuard no_grad;
    scorer.score(model, lo + n * ctx.rank() / ctx.world(), lo + n * (ctx.rank() + 1) / ctx.world(), cfg.batch_, &ledger);
  }

  double lr_of(int64_t c) const {
    const int64_t n = chunks.count();
    return n > 1 ? cfg.lr_ * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(c) / static_cast<double>(n - 1))) : cfg.lr_;
  }

  // One SGD step on the chunk's sequences [j0, j1), this rank taking its contiguous share.
  void step(int64_t c, int64_t j0, int64_t j1, double lr) {
    const int64_t L = cfg.train_len_, a = chunks.begin(c);
    const int64_t s0 = j0 + (j1 - j0) * ctx.rank() / ctx.world(), s1 = j0 + (j1 - j0) * (ctx.rank() + 1) / ctx.world();
    opt->zero_grad();
    if (s1 > s0) {
      // The inputs are targets of the inputs before them: an update may use [a + s0·L − 1, a + s1·L).
      ledger.check_update(std::max<int64_t>(a + s0 * L - 1, 0), a + s1 * L, "chunk " + std::to_string(c));
      auto span = tokens.slice(0, a + s0 * L, a + s1 * L + 1);
      auto x = span.slice(0, 0, (s1 - s0) * L).view({s1 - s0, L}), y = span.slice(0, 1, (s1 - s0) * L + 1).view({s1 - s0, L});
      model.loss(x, y).backward();
    }
    for (auto& p : trainable)  // a rank with no share still joins the average
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    average_gradients(ctx.communicator(), trainable);
    if (cfg.clip_ > 0) clip_grad_norm(trainable, cfg.clip_);
    for (auto& g : opt->param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    opt->step();
    ledger.updated();
  }

  void train(int64_t c) {
    if (trainable.empty()) return;  // everything frozen: nothing to update
    const int64_t n = (chunks.end(c) - chunks.begin(c)) / cfg.train_len_;
    const bool was_training = model.is_training();
    model.train();
    for (int64_t e = 0; e < cfg.epochs_; ++e)
      for (int64_t j0 = 0; j0 < n; j0 += cfg.train_batch_) step(c, j0, std::min(n, j0 + cfg.train_batch_), lr_of(c));
    if (!was_training) model.eval();
  }

  const ChunkedSgdTtt& cfg;
  LanguageModel& model;
  const EvalContext& ctx;
  torch::Tensor tokens;
  SlidingWindows windows;
  WindowChunks chunks;
  ScoreLedger ledger;
  WindowScorer scorer;
  std::vector<torch::Tensor> trainable, frozen_;
  std::unique_ptr<torch::optim::SGD> opt;
};

EvalResult ChunkedSgdTtt::evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                                   const EvalContext& ctx) const {
  if (stride_ > ctx.seq_len || train_len_ > chunk_)
    throw std::runtime_error("chunked_sgd_ttt: need stride <= data.seq_len and train_seq_len <= chunk_tokens");
  Pass pass(*this, model, val, bytes, ctx);
  const auto saved = pass.select_parameters();
  const bool was_training = model.is_training();
  model.eval();
  const int64_t n = pass.chunks.count();
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t every = std::max<int64_t>(1, n / 10);  // about ten progress lines a pass
  for (int64_t c = 0; c < n; ++c) {
    if (plant_train_before_score && c + 1 < n) pass.train(c);
    pass.score(c);
    if ((c + 1) % every == 0 || c + 1 == n)  // after the ledger's sync of the previous chunk: device time
      log::info(strf("chunked_sgd_ttt: chunk %lld/%lld scored, %.1f s", static_cast<long long>(c + 1),
                     static_cast<long long>(n), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
    if (c + 1 == n) break;  // the last chunk is never trained on
    pass.ledger.sync(pass.chunks.begin(c), pass.chunks.end(c));
    if (!plant_train_before_score) pass.train(c);
  }
  const EvalResult r = pass.scorer.result(ctx);
  pass.ledger.finish(pass.windows.scored_tokens(), rescore_tail_, "chunked_sgd_ttt");
  pass.restore(saved);
  if (was_training) model.train();
  return r;
}

namespace {

Schema schema() {
  return Schema()
      .integer("stride", 64, 1, 1 << 20, "sliding-window stride of the scoring (spec 8.5)")
      .integer("batch", 32, 1, 1 << 16, "windows per scoring forward on each rank (#1755: 32, #461: 64)")
      .choice("rule", "1755", {"1755", "461"}, "window rule (sliding evaluator): 461 re-scores the tail as #461 did")
      .integer("chunk_tokens", 32768, 1, 1LL << 40, "C: inputs per chunk; windows belong to the chunk of their first scored input")
      .integer("epochs", 3, 0, 1000, "passes over each chunk's sequences")
      .number("lr", 0.005, 0.0, 10.0, "SGD learning rate of the first chunk (cosine over the chunk index to 0)")
      .number("momentum", 0.9, 0.0, 1.0, "SGD momentum (one state for the whole pass; no Nesterov, no weight decay)")
      .number("grad_clip", 1.0, 0.0, 1e9, "global gradient-norm clip after the cross-rank average (0 = off)")
      .integer("train_seq_len", 2048, 1, 1 << 20, "L: whole L-token sequences of each chunk are trained on")
      .integer("train_batch", 32, 1, 1 << 20, "sequences per SGD step over all ranks")
      .string_list("freeze", {}, "fnmatch patterns of parameters not trained (#461: blocks.0.* blocks.1.* cores.0.* cores.1.*)");
}

}  // namespace

PGOLF_REGISTER(
    EvaluatorRegistry, "chunked_sgd_ttt", schema(),
    [](const Config& c) -> std::shared_ptr<Evaluator> { return std::make_shared<ChunkedSgdTtt>(c); },
    "score-first chunked SGD test-time training over sliding windows (spec 9.2; #461, #1755)");

}  // namespace pgolf
