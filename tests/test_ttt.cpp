// Score-first chunked SGD TTT (spec posttrain §9.1, §9.2): learning rate 0 reproduces the sliding evaluator
// bit for bit; a real learning rate lowers the loss of a stream that repeats; the freeze list and the weight
// restore; the legality ledger (stamps, unscored updates, double scoring); a planted train-before-score TTT
// stops naming its chunk; two thread ranks with real all-reduces give the one-process totals.
#include <gtest/gtest.h>

#include "framework/eval.h"
#include "framework/score_ledger.h"
#include "tests/component_testing.h"
#include "tests/thread_communicator.h"
#include "ttt/chunked_sgd_ttt.h"

namespace pgolf {
namespace {

EvalContext ctx(int64_t seq_len, Communicator* comm = nullptr) {
  return EvalContext{seq_len, 0, torch::kCPU, comm ? comm : testing::one_rank_of(0, 1), "ttt"};
}

struct PositionBytes : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& pos) const override {
    return pos.to(torch::kFloat64);
  }
};

std::shared_ptr<LanguageModel> tiny_gpt() {
  torch::manual_seed(5);
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 16}, {"layers", 2}, {"dim", 32}, {"heads", 4}, {"kv_heads", 2}});
  testing::perturb(*m, 0.05);
  return m;
}

// A stream that repeats a 12-token pattern: what TTT learns from one chunk predicts the next.
ValStream repeating(int64_t n) {
  torch::manual_seed(11);
  auto pattern = torch::randint(2, 16, {12}, torch::kInt64);
  return ValStream{pattern.repeat({n / 12 + 1}).slice(0, 0, n).contiguous(), {}};
}

// S = 16, stride 4, chunks of 64 inputs, 16-token training sequences, 2 per step.
Json ttt_section(double lr) {
  return Json{{"name", "chunked_sgd_ttt"}, {"stride", 4}, {"batch", 1}, {"chunk_tokens", 64}, {"epochs", 2},
              {"lr", lr}, {"train_seq_len", 16}, {"train_batch", 2}};
}

std::shared_ptr<Evaluator> build(const Json& section) {
  return EvaluatorRegistry::get().build(testing::component("evaluator", section));
}

EvalResult sliding(LanguageModel& m, const ValStream& val) {
  return build(Json{{"name", "sliding"}, {"stride", 4}, {"batch", 1}})->evaluate(m, val, PositionBytes(), ctx(16));
}

TEST(ChunkedTtt, LearningRateZeroEqualsTheSlidingEvaluatorExactly) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  const ValStream val = repeating(257);  // 256 targets: 4 chunks, the last not trained on
  const EvalResult plain = sliding(*m, val);
  const EvalResult ttt = build(ttt_section(0.0))->evaluate(*m, val, PositionBytes(), ctx(16));
  EXPECT_EQ(ttt.tokens, plain.tokens);
  EXPECT_EQ(ttt.bytes, plain.bytes);
  EXPECT_EQ(ttt.loss_sum, plain.loss_sum);
}

TEST(ChunkedTtt, TrainingOnScoredChunksLowersTheLossAndTheWeightsAreRestored) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  const ValStream val = repeating(257);
  const auto before = testing::params_of(*m);
  std::map<std::string, torch::Tensor> copy;
  for (const auto& [k, v] : before) copy[k] = v.clone();
  const EvalResult plain = sliding(*m, val);
  const EvalResult ttt = build(ttt_section(0.5))->evaluate(*m, val, PositionBytes(), ctx(16));
  EXPECT_EQ(ttt.tokens, plain.tokens);
  EXPECT_LT(ttt.val_loss(), plain.val_loss() - 0.1) << "plain " << plain.val_loss() << " ttt " << ttt.val_loss();
  for (const auto& [k, v] : testing::params_of(*m)) {
    EXPECT_TRUE(torch::equal(v, copy.at(k))) << k << " was not restored";
    EXPECT_TRUE(v.requires_grad()) << k;
  }
  // Everything frozen: nothing trains, so the scores are the plain ones exactly.
  Json frozen = ttt_section(0.5);
  frozen["freeze"] = Json::array({"*"});
  EXPECT_EQ(build(frozen)->evaluate(*m, val, PositionBytes(), ctx(16)).loss_sum, plain.loss_sum);
  // Only the blocks frozen: the embedding still learns.
  frozen["freeze"] = Json::array({"blocks.*"});
  EXPECT_LT(build(frozen)->evaluate(*m, val, PositionBytes(), ctx(16)).loss_sum, plain.loss_sum);
}

TEST(ChunkedTtt, APlantedTrainBeforeScoreStopsNamingTheChunk) {
  testing::SingleThreaded one;
  auto m = tiny_gpt();
  const ValStream val = repeating(257);
  ChunkedSgdTtt illegal(testing::component("evaluator", ttt_section(0.1)));
  illegal.plant_train_before_score = true;
  try {
    illegal.evaluate(*m, val, PositionBytes(), ctx(16));
    FAIL() << "an update before scoring must stop the run";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("chunk 0 would train on"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not yet scored"), std::string::npos) << msg;
  }
}

TEST(ScoreLedger, StampsUpdatesRefusesUnscoredTrainingAndDoubleScores) {
  ScoreLedger l(10, torch::kCPU, *testing::one_rank_of(0, 1));
  l.scored(0, 4);
  l.sync(0, 10);
  l.check_update(0, 4, "chunk 0");
  l.updated();
  l.scored(torch::tensor({4, 5, 9, 9}), torch::tensor({1, 1, 0, 0}));  // 9 is masked out
  EXPECT_EQ(l.scored_at(3), 0);
  EXPECT_EQ(l.scored_at(5), 1);
  EXPECT_EQ(l.scored_at(9), -1);
  try {
    l.check_update(2, 6, "chunk 1");
    FAIL() << "4 and 5 are scored only locally until the next sync";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("chunk 1 would train on 2 target(s) not yet scored, the first at input 4"),
              std::string::npos)
        << e.what();
  }
  l.check_update(2, 6, "document 3 chunk 1", /*local=*/true);
  l.scored(6, 10);
  l.scored(9, 10);
  try {
    l.finish(11, false, "test");
    FAIL() << "target 9 was scored twice";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("first at input 9 (scored 2 times)"), std::string::npos) << e.what();
  }
  l.finish(11, true, "test");  // #461's quirk: re-scoring allowed, the total checked
  EXPECT_THROW(l.finish(10, true, "test"), std::runtime_error);
}

TEST(ChunkedTtt, TwoThreadRanksGiveTheOneProcessTotals) {
  testing::SingleThreaded one;
  const ValStream val = repeating(257);
  auto m = tiny_gpt();
  const EvalResult whole = build(ttt_section(0.5))->evaluate(*m, val, PositionBytes(), ctx(16));
  std::vector<EvalResult> got(2);
  std::vector<std::string> errors(2);
  std::vector<std::shared_ptr<LanguageModel>> models = {tiny_gpt(), tiny_gpt()};  // the same seed: the same weights
  testing::run_ranks(2, [&](int r, Communicator& comm) {
    try {
      got[static_cast<size_t>(r)] = build(ttt_section(0.5))->evaluate(*models[static_cast<size_t>(r)], val, PositionBytes(), ctx(16, &comm));
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(r)] = e.what();
    }
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
    EXPECT_EQ(got[static_cast<size_t>(r)].tokens, whole.tokens);
    EXPECT_EQ(got[static_cast<size_t>(r)].bytes, whole.bytes);
    EXPECT_NEAR(got[static_cast<size_t>(r)].loss_sum, whole.loss_sum, 1e-4 * whole.loss_sum) << "rank " << r;
  }
}

}  // namespace
}  // namespace pgolf
