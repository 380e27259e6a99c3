// Phased batched-LoRA TTT (spec posttrain §9.3, §9.4, §11.7, §12.6): the schedule arithmetic at the seeds'
// sizes (phase boundaries, 50,000 documents in 782 batches), document splitting, LoRA adapters per virtual
// layer with the spec's per-document parameter counts, a reset LoRA changing no logit and each document's
// adapters changing only its own row, learning rate 0 equal to scoring each document alone, TTT lowering the
// loss, a planted update-before-score stopping the run, and two thread ranks giving the one-process totals.
#include <gtest/gtest.h>

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "framework/eval.h"
#include "tests/component_testing.h"
#include "tests/thread_communicator.h"
#include "ttt/batched_lora.h"
#include "ttt/doc_schedule.h"
#include "ttt/phased_lora_ttt.h"

namespace pgolf {
namespace {

const std::string kSrc = PGOLF_SOURCE_DIR;

TEST(PhasedSchedule, PhaseBoundariesFromThePrefixBudget) {
  EXPECT_EQ(phase_boundaries(2500, 3), (std::vector<int64_t>{833, 1666, 2500}));  // #1855
  EXPECT_EQ(phase_boundaries(2000, 3), (std::vector<int64_t>{666, 1333, 2000}));  // #1693
  EXPECT_EQ(phase_boundaries(2000, 1), (std::vector<int64_t>{2000}));             // #1938
  EXPECT_TRUE(phase_boundaries(2000, 0).empty());
}

TEST(PhasedSchedule, FiftyThousandDocumentsMake782BatchesLongestFirst) {
  std::vector<int64_t> len;
  uint64_t s = 1;
  for (int i = 0; i < 50000; ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    len.push_back(static_cast<int64_t>(1 + (s >> 40) % 100000));
  }
  const auto b = doc_batches(len, 64);
  ASSERT_EQ(b.size(), 782u);
  EXPECT_EQ(b.front().size(), 16u) << "the partial batch holds the 16 longest and is processed first";
  for (size_t j = 1; j < b.size(); ++j) EXPECT_EQ(b[j].size(), 64u);
  auto longest = [&](const std::vector<int64_t>& ids) {
    int64_t m = 0;
    for (int64_t d : ids) m = std::max(m, len[static_cast<size_t>(d)]);
    return m;
  };
  for (size_t j = 1; j < b.size(); ++j) EXPECT_GE(longest(b[j - 1]), longest(b[j]));
  EXPECT_EQ(longest(b.front()), *std::max_element(len.begin(), len.end()));
  // #1855's boundaries in batches: 833 documents are reached after 16 + 13·64 = 848, i.e. 14 batches.
  EXPECT_EQ(phase_ends(b, phase_boundaries(2500, 3)), (std::vector<int64_t>{14, 27, 40}));
}

TEST(PhasedSchedule, DocumentsIncludeTheNextBosAndCoverEveryTarget) {
  // Stream (T = 11): 5 9 | 1 4 4 | 1 7 | 1 8 8 8  → documents [0,2) [2,5) [5,7) [7,11) of inputs.
  const std::vector<int64_t> t = {5, 9, 1, 4, 4, 1, 7, 1, 8, 8, 8, 1};
  const auto d = split_documents(t.data(), static_cast<int64_t>(t.size()), 1);
  ASSERT_EQ(d.size(), 4u);
  const int64_t starts[4] = {0, 2, 5, 7}, lens[4] = {2, 3, 2, 4};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(d[i].start, starts[i]);
    EXPECT_EQ(d[i].pred_len, lens[i]);
  }
  // The final BOS (the last target) starts no document.
  EXPECT_EQ(d.back().start + d.back().pred_len, 11);
}

TEST(PhasedSchedule, RanksGetBalancedDeterministicShares) {
  const auto r = assign_ranks({10, 9, 8, 1, 1, 1}, 2);
  EXPECT_EQ(r, (std::vector<int>{0, 1, 1, 0, 0, 0}));  // loads 13 and 17 → 10+1+1+1 = 13, 9+8 = 17
  EXPECT_EQ(assign_ranks({3, 3}, 1), (std::vector<int>{0, 0}));
}

// ---- adapters --------------------------------------------------------------------------------------

Json looped_gpt() {
  return Json{{"name", "gpt"}, {"vocab_size", 16}, {"layers", 3}, {"dim", 32}, {"heads", 4}, {"kv_heads", 2},
              {"recurrence", {{"name", "segment_loop"}, {"loop_start", 1}, {"loop_end", 1}, {"num_loops", 2}, {"activate_at", 0.0}}}};
}

std::shared_ptr<LanguageModel> model_of(const Json& j) {
  torch::manual_seed(5);
  auto m = testing::build_model(j);
  testing::perturb(*m, 0.05);
  m->eval();
  return m;
}

TEST(BatchedLora, OneAdapterSetPerVirtualLayerWithTheSpecsParameterCounts) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  BatchedLora lora(*m, 2, LoraOptions{4, 1.0}, torch::kCPU);
  EXPECT_EQ(lora.virtual_layers(), 5);  // blocks 0, 1, 1, 1, 2
  // Per layer q 4·(32+32), k and v 4·(32+16), o and mlp 4·(32+32); head 4·(32+16).
  EXPECT_EQ(lora.parameters_per_document(), 5 * (3 * 256 + 2 * 192) + 4 * 48);
  for (auto [seed, rank, expected] : {std::tuple<const char*, int64_t, int64_t>{"pr1693", 96, 8355840}, {"pr1855", 80, 6963200}}) {
    Recipe r = load_recipe(kSrc + "/recipes/" + seed + ".json", {});
    auto big = ModelRegistry::get().build(r.section("model"));
    big->on_train_progress(1.0);  // the loop on, as the artifact's model is scored
    BatchedLora l(*big, 1, LoraOptions{rank, 1.0}, torch::kCPU);
    EXPECT_EQ(l.virtual_layers(), 17) << seed;
    EXPECT_EQ(l.parameters_per_document(), expected) << seed;  // spec 9.4's table
  }
}

TEST(BatchedLora, AtResetNoLogitChangesAndEachDocumentAdaptsOnlyItsRow) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  torch::NoGradGuard g;
  auto x = torch::randint(0, 16, {3, 10}, torch::kInt64), y = torch::randint(0, 16, {3, 10}, torch::kInt64);
  const auto plain = m->token_nll(x, y);
  auto lora = std::make_shared<BatchedLora>(*m, 3, LoraOptions{4, 1.5}, torch::kCPU);
  at::Generator gen = at::detail::createCPUGenerator(3);
  lora->reset(true, gen);
  {
    ScopedTap tap(m->taps(), lora);
    EXPECT_TRUE(torch::equal(m->token_nll(x, y), plain)) << "B = 0: the adapters add exactly nothing";
    for (auto& p : lora->parameters())
      if (p.size(1) != 4) p[1].normal_(0, 0.3);  // B of document 1 only
    const auto adapted = m->token_nll(x, y);
    EXPECT_TRUE(torch::equal(adapted[0], plain[0]));
    EXPECT_TRUE(torch::equal(adapted[2], plain[2]));
    EXPECT_GT((adapted[1] - plain[1]).abs().max().item<double>(), 1e-3);
  }
  EXPECT_TRUE(torch::equal(m->token_nll(x, y), plain)) << "the tap is gone with its scope";
}

TEST(BatchedLora, TheHeadAtChosenColumnsEqualsTheFullNllThereWithAndWithoutAdapters) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  auto x = torch::randint(0, 16, {3, 12}, torch::kInt64), y = torch::randint(0, 16, {3, 12}, torch::kInt64);
  auto cols = torch::tensor({4, 5, 6, 11, 11, 11, 0, 1, 2}, torch::kInt64).view({3, 3});  // repeats: clamped columns
  auto lora = std::make_shared<BatchedLora>(*m, 3, LoraOptions{4, 1.5}, torch::kCPU);
  at::Generator gen = at::detail::createCPUGenerator(4);
  lora->reset(true, gen);
  for (auto& p : lora->parameters()) {
    torch::NoGradGuard g;
    if (p.size(1) != 4) p.normal_(0, 0.3);  // every B: the head adapter changes the logits
  }
  for (bool tapped : {false, true}) {
    std::unique_ptr<ScopedTap> tap = tapped ? std::make_unique<ScopedTap>(m->taps(), lora) : nullptr;
    const auto full = m->token_nll(x, y).gather(1, cols);
    const auto at = m->token_nll_at(x, y, cols);
    ASSERT_EQ(at.sizes(), cols.sizes());
    EXPECT_LT((at - full).abs().max().item<double>(), 1e-5 * full.abs().max().item<double>()) << "tapped " << tapped;
    if (!tapped) continue;
    auto grads = [&](const torch::Tensor& loss) {
      for (auto& p : lora->parameters()) p.mutable_grad() = torch::Tensor();
      loss.sum().backward();
      std::vector<torch::Tensor> g;
      for (auto& p : lora->parameters()) g.push_back(p.grad().clone());
      return g;
    };
    const auto g_full = grads(m->token_nll(x, y).gather(1, cols)), g_at = grads(m->token_nll_at(x, y, cols));
    for (size_t i = 0; i < g_full.size(); ++i)
      EXPECT_TRUE(torch::allclose(g_at[i], g_full[i], 1e-4, 1e-6)) << "adapter tensor " << i;
  }
}

// ---- the evaluator -----------------------------------------------------------------------------------

// Documents of lengths 9..40 (BOS = 1, text ids 2..15), each a repeated 5-token pattern of its own.
ValStream documents(int n_docs) {
  torch::manual_seed(21);
  std::vector<int64_t> t;
  for (int d = 0; d < n_docs; ++d) {
    t.push_back(1);
    auto p = torch::randint(2, 16, {5}, torch::kInt64);
    const int64_t len = 8 + (d * 7) % 33;
    for (int64_t i = 0; i < len; ++i) t.push_back(p[i % 5].item<int64_t>());
  }
  t.push_back(1);
  return ValStream{torch::tensor(t, torch::kInt64), {}};
}

struct PositionBytes : ByteCounter {
  torch::Tensor target_bytes(const torch::Tensor&, const torch::Tensor&, const torch::Tensor& pos) const override {
    return pos.to(torch::kFloat64);
  }
};

Json phased(double lr, double sgd_lr) {
  return Json{{"name", "phased_lora_ttt"}, {"doc_batch", 3}, {"chunk", 8}, {"context", 64}, {"rank", 4},
              {"lr", lr}, {"prefix_docs", 6}, {"phases", 2}, {"sgd_lr", sgd_lr}, {"sgd_chunk_tokens", 32},
              {"sgd_seq_len", 16}, {"sgd_batch", 2}, {"seed", 9}};
}

EvalContext ctx(Communicator* comm = nullptr) {
  return EvalContext{64, 0, torch::kCPU, comm ? comm : testing::one_rank_of(0, 1), "ttt"};
}

EvalResult run(const Json& section, LanguageModel& m, const ValStream& val, Communicator* comm = nullptr) {
  return EvaluatorRegistry::get().build(testing::component("evaluator", section))->evaluate(m, val, PositionBytes(), ctx(comm));
}

TEST(PhasedTtt, LearningRateZeroEqualsScoringEachDocumentAlone) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  const ValStream val = documents(10);
  const EvalResult r = run(phased(0.0, 0.0), *m, val);
  const int64_t T = val.tokens.numel() - 1;
  double expect = 0;
  torch::NoGradGuard g;
  for (const Doc& d : split_documents(val.tokens.data_ptr<int64_t>(), T + 1, 1)) {
    auto x = val.tokens.slice(0, d.start, d.start + d.pred_len).view({1, -1});
    auto y = val.tokens.slice(0, d.start + 1, d.start + d.pred_len + 1).view({1, -1});
    expect += m->token_nll(x, y).to(torch::kFloat64).sum().item<double>();
  }
  EXPECT_EQ(r.tokens, static_cast<double>(T));
  EXPECT_EQ(r.bytes, static_cast<double>(T) * (T + 1) / 2);
  EXPECT_NEAR(r.loss_sum, expect, 1e-5 * expect);
}

TEST(PhasedTtt, AdaptingLowersTheLossAndTheBaseWeightsAreRestored) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  std::map<std::string, torch::Tensor> before;
  for (const auto& [k, v] : testing::params_of(*m)) before[k] = v.clone();
  const ValStream val = documents(10);
  const double plain = run(phased(0.0, 0.0), *m, val).val_loss();
  const double lora_only = run(phased(0.03, 0.0), *m, val).val_loss();
  const double both = run(phased(0.03, 0.3), *m, val).val_loss();
  EXPECT_LT(lora_only, plain - 0.05) << plain << " " << lora_only;
  EXPECT_LT(both, plain - 0.05) << plain << " " << both;
  // the global SGD over the scored prefix between phases changes the later phases' scores
  EXPECT_GT(std::abs(both - lora_only), 1e-6) << lora_only << " " << both;
  for (const auto& [k, v] : testing::params_of(*m)) {
    EXPECT_TRUE(torch::equal(v, before.at(k))) << k;
    EXPECT_TRUE(v.requires_grad()) << k;
  }
}

TEST(PhasedTtt, APlantedUpdateBeforeScoreStopsNamingTheChunkAndDocuments) {
  testing::SingleThreaded one;
  auto m = model_of(looped_gpt());
  const ValStream val = documents(10);
  PhasedLoraTtt illegal(testing::component("evaluator", phased(0.03, 0.0)));
  illegal.plant_update_before_score = true;
  try {
    illegal.evaluate(*m, val, PositionBytes(), ctx());
    FAIL() << "an update before its chunk is scored must stop the run";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("chunk 0 of batch 0 (documents"), std::string::npos) << e.what();
  }
}

TEST(PhasedTtt, TwoThreadRanksGiveTheOneProcessTotals) {
  testing::SingleThreaded one;
  const ValStream val = documents(10);
  auto m = model_of(looped_gpt());
  const EvalResult whole = run(phased(0.03, 0.05), *m, val);
  std::vector<std::shared_ptr<LanguageModel>> models = {model_of(looped_gpt()), model_of(looped_gpt())};
  std::vector<EvalResult> got(2);
  std::vector<std::string> errors(2);
  testing::run_ranks(2, [&](int r, Communicator& comm) {
    try {
      got[static_cast<size_t>(r)] = run(phased(0.03, 0.05), *models[static_cast<size_t>(r)], val, &comm);
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(r)] = e.what();
    }
  });
  for (size_t r = 0; r < 2; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(got[r].tokens, whole.tokens);
    EXPECT_EQ(got[r].bytes, whole.bytes);
    // Averaged half-batch gradients differ from the whole batch's in the last bits, amplified by the steps.
    EXPECT_NEAR(got[r].loss_sum, whole.loss_sum, 1e-3 * whole.loss_sum) << "rank " << r;
  }
}

}  // namespace
}  // namespace pgolf
