// Evaluation modes (spec posttrain §8.4, §8.5, §11.8): the window and chunk arithmetic at the seeds' full
// validation sizes, every target covered once (the 1755 rule) or the 461 tail re-scored, sliding windows
// with stride = seq_len equal to the plain evaluator, document-isolated varlen scoring equal to scoring each
// document alone, and simulated ranks summing to the one-process totals.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/eval.h"
#include "framework/sliding_windows.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

EvalContext ctx(int64_t seq_len, int64_t batch_tokens, int rank = 0, int world = 1) {
  return EvalContext{seq_len, batch_tokens, torch::kCPU, testing::one_rank_of(rank, world), "val"};
}

std::shared_ptr<Evaluator> evaluator(const Json& section) {
  return EvaluatorRegistry::get().build(testing::component("evaluator", section));
}

struct OneByte : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor&, const torch::Tensor& tgt, const torch::Tensor&) const override {
    return torch::ones({tgt.numel()}, torch::kFloat64);
  }
};
// "Bytes" = the target's stream position, so the byte total says which targets were scored.
struct PositionBytes : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& pos) const override {
    return pos.to(torch::kFloat64);
  }
};

// NLL = the column index within the row: the loss sum says how much context each scored target had.
struct ColumnLM : LanguageModel {
  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor&) override {
    return torch::arange(x.size(1), torch::kFloat32).expand(x.sizes()).contiguous();
  }
  int64_t vocab_size() const override { return 16; }
};

ValStream stream(int64_t n, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return ValStream{torch::randint(2, vocab, {n}, torch::kInt64), {}};
}

std::shared_ptr<LanguageModel> tiny_gpt() {
  torch::manual_seed(5);
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 16}, {"layers", 2}, {"dim", 32}, {"heads", 4}, {"kv_heads", 2}});
  testing::perturb(*m, 0.05);
  return m;
}

TEST(EvalModes, WindowAndChunkCountsAtTheSeedsValSizes) {
  // §11.8, from T alone: #1755 (T = 47,851,520) and #461 (T = 62,021,632), S = 2048, stride 64, C = 32,768.
  const SlidingWindows w1755(47851520, 2048, 64, false), w461(62021632, 2048, 64, true);
  EXPECT_EQ(w1755.count(), 747649);
  EXPECT_EQ(w1755.scored_tokens(), 47851520);
  EXPECT_EQ(WindowChunks(w1755, 32768).count(), 1461);
  EXPECT_EQ(w461.count(), 969088);
  EXPECT_EQ(w461.scored_tokens(), 62023616);  // T + 31 x 64
  EXPECT_EQ(WindowChunks(w461, 32768).count(), 1893);
  // #1755's last window ends exactly at T and scores [T - 64, T).
  const Window last = w1755.at(w1755.count() - 1);
  EXPECT_EQ(last.start + last.len, 47851520);
  EXPECT_EQ(last.first_scored(), 47851520 - 64);
}

// Brute force: how often each target is scored, windows enumerated one by one.
std::vector<int> coverage(const SlidingWindows& w) {
  std::vector<int> c(static_cast<size_t>(w.targets()), 0);
  for (int64_t k = 0; k < w.count(); ++k) {
    const Window x = w.at(k);
    EXPECT_LE(x.start + x.len, w.targets());
    for (int64_t i = x.first_scored(); i < x.start + x.len; ++i) ++c[static_cast<size_t>(i)];
  }
  return c;
}

TEST(EvalModes, The1755RuleScoresEveryTargetOnceThe461RuleRescoresTheTail) {
  for (int64_t T : {5, 16, 40, 63, 64, 65, 100, 129}) {
    for (int64_t stride : {1, 4, 8, 16}) {
      const SlidingWindows a(T, 16, stride, false), b(T, 16, stride, true);
      int64_t total_b = 0;
      for (int x : coverage(a)) ASSERT_EQ(x, 1) << "T=" << T << " stride=" << stride;
      if (stride * 2 > 16) continue;  // the 461 rule drops a tail shorter than stride unless partial windows reach it
      const auto cb = coverage(b);
      for (size_t i = 0; i < cb.size(); ++i) {
        ASSERT_GE(cb[i], 1) << "T=" << T << " stride=" << stride << " i=" << i;
        total_b += cb[i];
        if (static_cast<int64_t>(i) < T - stride) ASSERT_EQ(cb[i], 1) << "only the last stride targets repeat";
      }
      EXPECT_EQ(b.scored_tokens(), total_b) << "T=" << T << " stride=" << stride;
    }
  }
  // #461 at T = 2048 + 64·5: 5 full windows after the first... then 31 partial ones re-scoring the last 64.
  const SlidingWindows q(2048 + 320, 2048, 64, true);
  EXPECT_EQ(q.count(), 37);
  EXPECT_EQ(q.scored_tokens(), 2048 + 320 + 31 * 64);
}

TEST(EvalModes, ChunksHoldTheWindowsWhoseFirstScoredTargetTheyContain) {
  for (bool tail : {false, true}) {
    const SlidingWindows w(1000, 64, 8, tail);
    const WindowChunks ch(w, 96);
    EXPECT_EQ(ch.count(), 11);  // ceil(1000 / 96)
    int64_t next = 0;
    for (int64_t c = 0; c < ch.count(); ++c) {
      ASSERT_EQ(ch.first_window(c), next) << "chunks tile the windows in order";
      for (int64_t k = ch.first_window(c); k < ch.end_window(c); ++k) {
        const Window x = w.at(k);
        EXPECT_EQ(x.first_scored() / 96, c);
        EXPECT_GE(x.first_scored(), ch.begin(c));
        EXPECT_LE(x.start + x.len, ch.end(c)) << "a window never scores past its chunk (offsets are multiples of 8)";
      }
      next = ch.end_window(c);
    }
    EXPECT_EQ(next, w.count());
  }
}

TEST(EvalModes, SlidingScoresEachTargetWithItsContext) {
  testing::SingleThreaded one;
  // T = 40, S = 16, stride 4 (1755 rule): window 0 scores columns 0..15 (sum 120); windows 1..6 score
  // columns 12..15 (sum 54 each): 120 + 6·54 = 444 over 16 + 24 = 40 targets.
  const ValStream val = stream(41, 16, 1);
  ColumnLM m;
  const EvalResult r = evaluator({{"name", "sliding"}, {"stride", 4}, {"batch", 3}})->evaluate(m, val, PositionBytes(), ctx(16, 0));
  EXPECT_EQ(r.tokens, 40.0);
  EXPECT_EQ(r.loss_sum, 444.0);
  EXPECT_EQ(r.bytes, 40.0 * 41 / 2);  // targets 1..40, each once
  // The 461 rule: windows at 0, 4, ..., 36 (T − ws ≥ 4): 10 windows; the three partial ones (len 12, 8, 4)
  // re-score targets 37..40 at columns 8..11, 4..7, 0..3.
  const EvalResult q = evaluator({{"name", "sliding"}, {"stride", 4}, {"rule", "461"}})->evaluate(m, val, PositionBytes(), ctx(16, 0));
  EXPECT_EQ(q.tokens, 52.0);
  EXPECT_EQ(q.loss_sum, 120.0 + 6 * 54 + 38 + 22 + 6);
  EXPECT_EQ(q.bytes, 40.0 * 41 / 2 + 3 * (37 + 38 + 39 + 40));
}

TEST(EvalModes, SlidingWithStrideSeqLenEqualsTheFullEvaluator) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  const ValStream val = stream(8 * 16 + 1, 16, 2);
  const EvalResult full = evaluator({{"name", "full"}})->evaluate(*m, val, PositionBytes(), ctx(16, 3 * 16));
  const EvalResult sl = evaluator({{"name", "sliding"}, {"stride", 16}, {"batch", 3}})->evaluate(*m, val, PositionBytes(), ctx(16, 0));
  EXPECT_EQ(sl.tokens, full.tokens);
  EXPECT_EQ(sl.bytes, full.bytes);
  EXPECT_NEAR(sl.loss_sum, full.loss_sum, 1e-9 * full.loss_sum);
}

TEST(EvalModes, SlidingContextLowersTheLossOfALearnedPattern) {
  // The stream repeats a 12-token pattern; a model trained on it predicts far better with context, so
  // stride-4 windows (≥ 12 tokens of context) score below the non-overlapping blocks.
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  auto pattern = torch::randint(2, 16, {12}, torch::kInt64);
  auto tokens = pattern.repeat({20}).slice(0, 0, 16 * 12 + 1).contiguous();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(3e-3));
  for (int s = 0; s < 60; ++s) {
    opt.zero_grad();
    m->loss(tokens.slice(0, 0, 192).view({12, 16}), tokens.slice(0, 1, 193).view({12, 16})).backward();
    opt.step();
  }
  const ValStream val{tokens, {}};
  const double full = evaluator({{"name", "full"}})->evaluate(*m, val, OneByte(), ctx(16, 64)).val_loss();
  const double sl = evaluator({{"name", "sliding"}, {"stride", 4}})->evaluate(*m, val, OneByte(), ctx(16, 0)).val_loss();
  EXPECT_LT(sl, full);
}

TEST(EvalModes, VarlenOnOneDocumentEqualsTheDenseEvaluator) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  const ValStream val = stream(6 * 16 + 1, 16, 3);  // ids 2..15: no BOS (1) anywhere
  const EvalResult full = evaluator({{"name", "full"}})->evaluate(*m, val, PositionBytes(), ctx(16, 32));
  const EvalResult vl = evaluator({{"name", "varlen"}})->evaluate(*m, val, PositionBytes(), ctx(16, 32));
  EXPECT_EQ(vl.tokens, full.tokens);
  EXPECT_EQ(vl.bytes, full.bytes);
  EXPECT_NEAR(vl.loss_sum, full.loss_sum, 1e-5 * full.loss_sum);
}

TEST(EvalModes, VarlenScoresEachDocumentAlone) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  ValStream val = stream(4 * 16 + 1, 16, 4);
  // BOS (1) at 5, 20, 23 and 40: the pieces of the flattened row [0, 32) with max_doc_len 8 are
  // [0,5) [5,13) [13,20) [20,23) [23,31) [31,32); batch 2 blocks: the second row [32, 64) likewise.
  for (int64_t p : {5, 20, 23, 40}) val.tokens[p] = 1;
  const EvalResult vl = evaluator({{"name", "varlen"}, {"max_doc_len", 8}})->evaluate(*m, val, OneByte(), ctx(16, 32));
  torch::NoGradGuard g;
  m->eval();
  double expect = 0;
  const std::vector<std::pair<int64_t, int64_t>> pieces = {{0, 5},   {5, 13},  {13, 20}, {20, 23}, {23, 31}, {31, 32},
                                                           {32, 40}, {40, 48}, {48, 56}, {56, 64}};
  for (auto [a, b] : pieces) {
    auto x = val.tokens.slice(0, a, b).view({1, -1}), y = val.tokens.slice(0, a + 1, b + 1).view({1, -1});
    expect += m->token_nll(x, y).to(torch::kFloat64).sum().item<double>();
  }
  EXPECT_EQ(vl.tokens, 64.0);
  EXPECT_NEAR(vl.loss_sum, expect, 1e-5 * expect);
}

TEST(EvalModes, SimulatedRanksSumToTheOneProcessTotals) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  ValStream val = stream(7 * 16 + 1, 16, 6);
  val.tokens[30] = 1;
  for (const Json& e : {Json{{"name", "sliding"}, {"stride", 4}, {"batch", 5}},
                        Json{{"name", "sliding"}, {"stride", 4}, {"rule", "461"}}, Json{{"name", "varlen"}}}) {
    const EvalResult one_rank = evaluator(e)->evaluate(*m, val, PositionBytes(), ctx(16, 32));
    EvalResult sum;
    for (int r = 0; r < 3; ++r) {
      const EvalResult part = evaluator(e)->evaluate(*m, val, PositionBytes(), ctx(16, 32, r, 3));
      sum.loss_sum += part.loss_sum;
      sum.tokens += part.tokens;
      sum.bytes += part.bytes;
    }
    EXPECT_EQ(sum.tokens, one_rank.tokens) << e.dump();
    EXPECT_EQ(sum.bytes, one_rank.bytes) << e.dump();
    EXPECT_NEAR(sum.loss_sum, one_rank.loss_sum, 1e-5 * one_rank.loss_sum) << e.dump();
  }
}

}  // namespace
}  // namespace pgolf
