// Validation stream truncation and the "full" evaluator: uniform model -> val_loss = ln V, val_bpb = log2 V;
// the batches, target positions and rank split it feeds the model and the byte counter.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "framework/eval.h"
#include "framework/shard.h"
#include "tests/component_testing.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

constexpr int64_t kV = 7;

// Two val shards, 50 + 33 = 83 tokens, stream value at position i = i mod 7.
std::vector<std::string> val_shards(const TempDir& d) {
  std::vector<uint16_t> a, b;
  for (int64_t i = 0; i < 50; ++i) a.push_back(static_cast<uint16_t>(i % kV));
  for (int64_t i = 50; i < 83; ++i) b.push_back(static_cast<uint16_t>(i % kV));
  write_shard(d.file("val_000000.bin"), a);
  write_shard(d.file("val_000001.bin"), b);
  return {d.file("val_000000.bin"), d.file("val_000001.bin")};
}

// Predicts uniformly: NLL ln V at every position. Records what it was given.
struct UniformLM : LanguageModel {
  torch::Tensor token_nll(const torch::Tensor& x, const torch::Tensor& y) override {
    xs.push_back(x.clone());
    ys.push_back(y.clone());
    saw_training = saw_training || is_training();
    saw_grad = saw_grad || torch::GradMode::is_enabled();
    return torch::full(x.sizes(), std::log(static_cast<double>(kV)), torch::kFloat32);
  }
  int64_t vocab_size() const override { return kV; }
  std::vector<torch::Tensor> xs, ys;
  bool saw_training = false, saw_grad = false;
};

struct OneByte : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt, const torch::Tensor&) const override {
    return torch::ones({tgt.numel()}, torch::kFloat64);
  }
};
// "Bytes" = the target's stream position: the sum over targets 1..n is n(n+1)/2.
struct PositionBytes : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& pos) const override {
    return pos.to(torch::kFloat64);
  }
};
// "Bytes" = prev + 100 * tgt: checks the counter is given the previous and target ids.
struct IdBytes : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor& prev, const torch::Tensor& tgt, const torch::Tensor&) const override {
    return (prev + 100 * tgt).to(torch::kFloat64);
  }
};

std::shared_ptr<Evaluator> full_evaluator() {
  return EvaluatorRegistry::get().build(Config(Json{{"name", "full"}}, "eval.evaluator"));
}

EvalContext ctx(int64_t seq_len, int64_t batch_tokens, int rank = 0, int world = 1) {
  return EvalContext{seq_len, batch_tokens, torch::kCPU, testing::one_rank_of(rank, world), "val"};
}

TEST(Eval, ValBpbFormula) {
  EvalResult r{10.0, 5.0, 4.0};
  EXPECT_DOUBLE_EQ(r.val_loss(), 2.0);
  EXPECT_NEAR(r.val_bpb(), 3.6067376022224087, 1e-15);  // 10 / (4 ln 2)
}

TEST(Eval, ValStreamConcatenatesAndTruncatesToWholeBlocks) {
  TempDir d;
  const auto files = val_shards(d);
  // 83 tokens, T = 8: floor(82/8)*8 + 1 = 81.
  ValStream v = load_val_stream(files, 8, 0);
  ASSERT_EQ(v.tokens.numel(), 81);
  EXPECT_EQ(v.tokens.scalar_type(), torch::kInt64);
  for (int64_t i = 0; i < 81; ++i) ASSERT_EQ(v.tokens[i].item<int64_t>(), i % kV) << i;
  EXPECT_EQ(v.files, files);
  // max_tokens 50 caps N at 51, then floor(50/8)*8 + 1 = 49.
  EXPECT_EQ(load_val_stream(files, 8, 50).tokens.numel(), 49);
  // A cap above the data changes nothing.
  EXPECT_EQ(load_val_stream(files, 8, 1000).tokens.numel(), 81);
  // Exactly 1 + k*T tokens are kept whole: T = 41 -> 83 = 2*41 + 1.
  EXPECT_EQ(load_val_stream(files, 41, 0).tokens.numel(), 83);
}

TEST(Eval, TooFewValTokensNamesFiles) {
  TempDir d;
  const auto files = val_shards(d);
  for (auto [T, cap] : {std::pair<int64_t, int64_t>{83, 0}, {8, 7}}) {  // 83 < 84; cap 7 -> 8 < 9
    try {
      load_val_stream(files, T, cap);
      FAIL() << "expected an error for T=" << T << " cap=" << cap;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(files[0]), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(files[1]), std::string::npos) << e.what();
    }
  }
}

TEST(Eval, UniformModelScoresLnVAndLog2V) {
  TempDir d;
  const ValStream val = load_val_stream(val_shards(d), 8, 0);  // 81 tokens, 10 blocks of 8
  UniformLM model;
  model.train();
  EvalResult r = full_evaluator()->evaluate(model, val, OneByte(), ctx(8, 24));
  EXPECT_EQ(r.tokens, 80.0);  // floor((83-1)/8)*8
  EXPECT_EQ(r.bytes, 80.0);
  // 80 equal fp32 values sum exactly in fp64, so the mean is the fp32 ln 7 itself.
  EXPECT_DOUBLE_EQ(r.val_loss(), static_cast<double>(static_cast<float>(std::log(7.0))));
  EXPECT_NEAR(r.val_bpb(), 2.807354922057604, 1e-6);  // log2 7, up to fp32 rounding of ln 7
  EXPECT_TRUE(model.is_training()) << "a training model must be put back in training mode";
  EXPECT_FALSE(model.saw_training) << "the model must be scored in eval mode";
  EXPECT_FALSE(model.saw_grad) << "scoring must run without autograd";

  // 24 batch tokens -> 3 sequences per forward: batches of 3, 3, 3, 1 over the 10 blocks.
  ASSERT_EQ(model.xs.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(model.xs[i].sizes(), torch::IntArrayRef({i < 3 ? 3 : 1, 8})) << "batch " << i;
  auto x = torch::cat({model.xs[0].flatten(), model.xs[1].flatten(), model.xs[2].flatten(), model.xs[3].flatten()});
  auto y = torch::cat({model.ys[0].flatten(), model.ys[1].flatten(), model.ys[2].flatten(), model.ys[3].flatten()});
  ASSERT_EQ(x.numel(), 80);
  for (int64_t i = 0; i < 80; ++i) {
    ASSERT_EQ(x[i].item<int64_t>(), i % kV) << i;
    ASSERT_EQ(y[i].item<int64_t>(), (i + 1) % kV) << i;
  }
}

TEST(Eval, ModelInEvalModeStaysInEvalMode) {
  TempDir d;
  const ValStream val = load_val_stream(val_shards(d), 8, 0);
  UniformLM model;
  model.eval();
  full_evaluator()->evaluate(model, val, OneByte(), ctx(8, 1));  // batch_tokens < T: one sequence per forward
  EXPECT_FALSE(model.is_training());
  EXPECT_EQ(model.xs.size(), 10u);
}

TEST(Eval, ByteCounterGetsTargetPositionsAndIds) {
  TempDir d;
  const ValStream val = load_val_stream(val_shards(d), 8, 0);
  UniformLM m1, m2;
  EXPECT_EQ(full_evaluator()->evaluate(m1, val, PositionBytes(), ctx(8, 16)).bytes, 3240.0);  // 80*81/2
  // sum(i%7, i<80) = 234, sum(i%7, 1<=i<=80) = 237: 234 + 100*237 (python).
  EXPECT_EQ(full_evaluator()->evaluate(m2, val, IdBytes(), ctx(8, 16)).bytes, 23934.0);
}

TEST(Eval, WithMaxTokensScoresTheCappedStream) {
  TempDir d;
  const ValStream val = load_val_stream(val_shards(d), 8, 50);  // 49 tokens: 6 blocks
  UniformLM model;
  EvalResult r = full_evaluator()->evaluate(model, val, PositionBytes(), ctx(8, 1000));
  EXPECT_EQ(r.tokens, 48.0);
  EXPECT_EQ(r.bytes, 1176.0);  // 48*49/2
  EXPECT_DOUBLE_EQ(r.val_loss(), static_cast<double>(static_cast<float>(std::log(7.0))));
}

TEST(Eval, RanksSplitBlocksContiguouslyAndSumToTheWhole) {
  TempDir d;
  const ValStream val = load_val_stream(val_shards(d), 8, 0);  // 10 blocks
  // world 3: blocks [0,3), [3,6), [6,10) -> 24, 24, 32 targets at positions 1..24, 25..48, 49..80.
  const double tokens[3] = {24, 24, 32}, bytes[3] = {300, 876, 2064};
  EvalResult sum;
  for (int r = 0; r < 3; ++r) {
    UniformLM model;
    EvalResult e = full_evaluator()->evaluate(model, val, PositionBytes(), ctx(8, 16, r, 3));
    EXPECT_EQ(e.tokens, tokens[r]) << "rank " << r;
    EXPECT_EQ(e.bytes, bytes[r]) << "rank " << r;
    sum.loss_sum += e.loss_sum;
    sum.tokens += e.tokens;
    sum.bytes += e.bytes;
  }
  EXPECT_EQ(sum.tokens, 80.0);
  EXPECT_EQ(sum.bytes, 3240.0);
  // world 2: 5 blocks each.
  UniformLM m0, m1;
  EXPECT_EQ(full_evaluator()->evaluate(m0, val, OneByte(), ctx(8, 16, 0, 2)).tokens +
                full_evaluator()->evaluate(m1, val, OneByte(), ctx(8, 16, 1, 2)).tokens,
            80.0);
  EXPECT_EQ(m0.xs[0][0][0].item<int64_t>(), 0);
  EXPECT_EQ(m1.xs[0][0][0].item<int64_t>(), 40 % kV);  // rank 1 starts at block 5 = position 40
  EXPECT_NEAR(sum.loss_sum / sum.tokens, std::log(7.0), 1e-6);
}

}  // namespace
}  // namespace pgolf
