// Evaluator "sliding": stride-`stride` windows of seq_len tokens over the whole stream, documents not
// isolated (spec posttrain §8.5), each target scored with up to seq_len − stride tokens of context. The
// windows are split contiguously across ranks ([n·r/world, n·(r+1)/world)), `batch` windows per forward.
// rule "1755" scores every target once; "461" reproduces #461's re-scored tail (N = T + duplicates).
#include "framework/eval.h"
#include "framework/window_scorer.h"

namespace pgolf {
namespace {

class SlidingEvaluator : public Evaluator {
 public:
  explicit SlidingEvaluator(const Config& c)
      : stride_(c.i("stride")), batch_(c.i("batch")), rescore_tail_(c.s("rule") == "461"), path_(c.path()) {}

  EvalResult evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                      const EvalContext& ctx) const override {
    if (stride_ > ctx.seq_len)
      throw ConfigError(path_ + ".stride: " + std::to_string(stride_) + " is longer than data.seq_len " +
                        std::to_string(ctx.seq_len));
    const SlidingWindows windows(val.tokens.numel() - 1, ctx.seq_len, stride_, rescore_tail_);
    const int64_t n = windows.count();
    const int64_t lo = n * ctx.rank() / ctx.world(), hi = n * (ctx.rank() + 1) / ctx.world();
    EvalModeGuard mode(model);
    torch::NoGradGuard no_grad;
    WindowScorer scorer(val.tokens.to(ctx.device), windows, bytes);
    scorer.score(model, lo, hi, batch_);
    return scorer.result(ctx);
  }

 private:
  int64_t stride_, batch_;
  bool rescore_tail_;
  std::string path_;
};

Schema schema() {
  return Schema()
      .integer("stride", 64, 1, 1 << 20, "tokens between window starts; each window scores its last `stride` targets")
      .integer("batch", 32, 1, 1 << 16, "windows per forward on each rank (#1755: 32, #461: 64)")
      .choice("rule", "1755", {"1755", "461"},
              "window rule: 1755 scores every target once; 461 keeps partial tail windows that re-score the last "
              "stride targets (N = T + duplicates), as #461 did");
}

}  // namespace

PGOLF_REGISTER(
    EvaluatorRegistry, "sliding", schema(),
    [](const Config& c) -> std::shared_ptr<Evaluator> { return std::make_shared<SlidingEvaluator>(c); },
    "stride-s sliding windows of seq_len tokens over the stream (documents not isolated), spec 8.5");

}  // namespace pgolf
