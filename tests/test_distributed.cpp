// Data parallelism in one process: the c10d communicator's collectives (Gloo, ranks as threads over one
// in-process store) against values worked out by hand, the bucketed gradient reducer against the mean of
// the ranks' own gradients, and parallel (sharded) Muon against the single-process update.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "framework/c10d_communicator.h"
#include "framework/grad_sync.h"
#include "framework/optimizer.h"

namespace pgolf {
namespace {

// Runs body(rank, comm) on `world` threads, each a rank of one Gloo group; rethrows the first failure.
void on_ranks(int world, const std::function<void(int, Communicator&)>& body) {
  auto store = make_hash_store();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        DistEnv env;
        env.rank = r, env.world = world, env.local_rank = r, env.local_world = world;
        env.timeout = std::chrono::milliseconds(20000);
        auto comm = make_c10d_communicator(env, store);
        torch::NoGradGuard no_grad;
        body(r, *comm);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) ASSERT_TRUE(errors[r].empty()) << "rank " << r << ": " << errors[r];
}

TEST(Distributed, CollectivesOverGlooGiveTheHandWorkedValues) {
  on_ranks(3, [](int r, Communicator& c) {
    EXPECT_TRUE(c.collective());
    auto sum = torch::tensor({1.0f * r, 2.0f}), avg = torch::tensor({3.0f * r}), mx = torch::tensor({-1.0 * r, 1.0 * r});
    c.all_reduce(sum, ReduceOp::Sum);
    c.all_reduce(avg, ReduceOp::Avg);
    c.all_reduce(mx, ReduceOp::Max);
    EXPECT_TRUE(sum.equal(torch::tensor({3.0f, 6.0f})));  // 0+1+2, 2·3
    EXPECT_TRUE(avg.equal(torch::tensor({3.0f})));        // (0+3+6)/3
    EXPECT_TRUE(mx.equal(torch::tensor({0.0, 2.0})));
    // reduce-scatter of [r, 10r, 100r] (one row per rank): rank k receives Σ_r row k = 3·10^k.
    auto in = torch::tensor({1.0f, 10.0f, 100.0f}) * r, out = torch::empty({1});
    c.reduce_scatter_async(out, in, ReduceOp::Sum)->wait();
    EXPECT_FLOAT_EQ(out.item<float>(), 3.0f * std::pow(10.0f, static_cast<float>(r)));
    auto gathered = torch::empty({6});
    c.all_gather_async(gathered, torch::tensor({1.0f * r, -1.0f * r}))->wait();
    EXPECT_TRUE(gathered.equal(torch::tensor({0.0f, 0.0f, 1.0f, -1.0f, 2.0f, -2.0f})));
    auto b = torch::full({2}, 7.0 + r);
    c.broadcast(b, 2);
    EXPECT_TRUE(b.equal(torch::full({2}, 9.0)));
    c.barrier();
    EXPECT_EQ(broadcast_string(c, r == 0 ? "runs/x" : "", torch::kCPU), "runs/x");
    EXPECT_EQ(all_gather_strings(c, std::string(r, 'a'), torch::kCPU), (std::vector<std::string>{"", "a", "aa"}));
    EXPECT_TRUE(agree_any(c, r == 1, torch::kCPU));
    EXPECT_DOUBLE_EQ(agree_max(c, r * 1.5, torch::kCPU), 3.0);
  });
}

// A tiny two-layer model, the same weights on every rank, rank-specific inputs.
struct Tiny {
  torch::Tensor w1 = torch::linspace(-1, 1, 12).view({3, 4}).requires_grad_();
  torch::Tensor w2 = torch::linspace(0.5, -0.5, 8).view({4, 2}).requires_grad_();
  torch::Tensor unused = torch::ones({2}).requires_grad_();  // never in the graph: must keep no gradient
  std::vector<torch::Tensor> params() const { return {w1, w2, unused}; }
  torch::Tensor loss(int rank, int micro) const {
    const auto x = torch::arange(6, torch::kFloat32).view({2, 3}) * (0.1 * (rank + 1)) + micro;
    return torch::tanh(x.matmul(w1)).matmul(w2).pow(2).mean();
  }
};

// The mean over ranks of each rank's accumulated (micro-batch mean) gradient, computed in one process.
std::vector<torch::Tensor> reference_grads(int world, int micros) {
  torch::AutoGradMode on(true);
  std::vector<torch::Tensor> mean;
  for (int r = 0; r < world; ++r) {
    Tiny t;
    for (int m = 0; m < micros; ++m) (t.loss(r, m) / micros).backward();
    if (mean.empty()) mean = {t.w1.grad() / world, t.w2.grad() / world};
    else mean[0] += t.w1.grad() / world, mean[1] += t.w2.grad() / world;
  }
  return mean;
}

TEST(Distributed, BucketedReducerAveragesAccumulatedGradientsOverlappedOrNot) {
  const int world = 3, micros = 2;
  const auto want = reference_grads(world, micros);
  for (const int64_t bucket_bytes : {int64_t{1}, int64_t{1} << 20}) {  // one bucket per tensor / one for all
    for (const bool overlapped : {true, false}) {
      on_ranks(world, [&](int r, Communicator& c) {
        torch::AutoGradMode on(true);
        Tiny t;
        GradientReducer reducer(c, t.params(), bucket_bytes);
        EXPECT_EQ(reducer.buckets(), bucket_bytes == 1 ? 3u : 1u);
        for (int step = 0; step < 2; ++step) {  // twice: the buckets are reused
          for (auto& p : t.params()) p.mutable_grad() = torch::Tensor();
          for (int m = 0; m < micros; ++m) {
            if (overlapped && m + 1 == micros) reducer.arm();
            (t.loss(r, m) / micros).backward();
          }
          reducer.finish();
          EXPECT_LT((t.w1.grad() - want[0]).abs().max().item<double>(), 1e-7) << "rank " << r;
          EXPECT_LT((t.w2.grad() - want[1]).abs().max().item<double>(), 1e-7) << "rank " << r;
          EXPECT_FALSE(t.unused.grad().defined());
        }
      });
    }
  }
}

std::shared_ptr<Optimizer> muon(std::vector<NamedParam> params, Communicator* comm, bool row_normalize) {
  Schema s;
  s.component("opt", "optimizer", "", "under test");
  const Json section = {{"name", "muon"}, {"ns_dtype", "fp32"}, {"row_normalize", row_normalize}, {"weight_decay", 0.1}};
  const Json v = s.validate(Json{{"opt", section}}, "", "test");
  return OptimizerRegistry::get().build(Config(v["opt"], "optim.groups[0]"), OptimizerContext{std::move(params), comm});
}

// Five 6x4 matrices (one batch, split 2/2/1 over three ranks), one 3x5 matrix alone, one bank of 4 3x3 slices.
// Drawn once, from the calling thread: rank threads drawing from the global generator at once get each
// other's numbers, so each rank takes a deep copy instead (fresh_copy).
std::vector<NamedParam> muon_params() {
  std::vector<NamedParam> out;
  torch::manual_seed(7);
  for (int i = 0; i < 5; ++i) out.push_back({"m" + std::to_string(i), torch::randn({6, 4})});
  out.push_back({"single", torch::randn({3, 5})});
  out.push_back({"bank", torch::randn({4, 3, 3})});
  for (auto& p : out) {
    p.param.requires_grad_();
    p.param.mutable_grad() = torch::randn(p.param.sizes());
  }
  return out;
}

std::vector<NamedParam> fresh_copy(const std::vector<NamedParam>& from) {
  std::vector<NamedParam> out;
  for (const auto& p : from) {
    out.push_back({p.name, p.param.detach().clone().requires_grad_()});
    out.back().param.mutable_grad() = p.param.grad().clone();
  }
  return out;
}

TEST(Distributed, ShardedMuonEqualsTheSingleProcessUpdate) {
  for (const bool row_normalize : {false, true}) {
    const auto initial = muon_params();
    auto want = fresh_copy(initial);
    LocalCommunicator local;
    auto opt = muon(want, &local, row_normalize);
    for (int step = 0; step < 2; ++step) opt->step(1.0, step);
    for (const int world : {2, 3}) {
      on_ranks(world, [&](int r, Communicator& c) {
        auto got = fresh_copy(initial);
        auto sharded = muon(got, &c, row_normalize);
        for (int step = 0; step < 2; ++step) sharded->step(1.0, step);
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_LT((got[i].param - want[i].param).abs().max().item<double>(), 1e-6)
              << got[i].name << " on rank " << r << " of " << world;
      });
    }
  }
}

}  // namespace
}  // namespace pgolf
