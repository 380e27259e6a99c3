// framework/stats: Welch's t-test and the seed aggregation against values computed elsewhere.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/stats.h"

namespace pgolf::stats {
namespace {

TEST(Stats, MeanAndSampleSdByHand) {
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum 32, sample variance 32/7.
  const std::vector<double> x{2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(mean(x), 5.0);
  EXPECT_NEAR(sample_sd(x), std::sqrt(32.0 / 7.0), 1e-15);
  EXPECT_TRUE(std::isnan(sample_sd({1.0})));
}

TEST(Stats, IncompleteBetaClosedForms) {
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1-x)^b; I_{1/2}(a, a) = 1/2.
  EXPECT_NEAR(incomplete_beta(1, 1, 0.3), 0.3, 1e-14);
  EXPECT_NEAR(incomplete_beta(2.5, 1, 0.7), std::pow(0.7, 2.5), 1e-14);
  EXPECT_NEAR(incomplete_beta(1, 3.5, 0.2), 1 - std::pow(0.8, 3.5), 1e-14);
  EXPECT_NEAR(incomplete_beta(7.25, 7.25, 0.5), 0.5, 1e-14);
  EXPECT_THROW(incomplete_beta(0, 1, 0.5), std::invalid_argument);
}

// Critical values of Student's t, two-sided, from the published table in the NIST/SEMATECH e-Handbook of
// Statistical Methods, §1.3.6.7.2 (three decimals, so p agrees to about 1e-4).
TEST(Stats, StudentTMatchesPublishedTable) {
  EXPECT_NEAR(student_t_two_sided_p(12.706, 1), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(3.182, 3), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(5.841, 3), 0.01, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(2.776, 4), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(4.604, 4), 0.01, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(2.228, 10), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(0.0, 7), 1.0, 1e-15);
  EXPECT_NEAR(student_t_two_sided_p(-2.776, 4), student_t_two_sided_p(2.776, 4), 1e-15);
}

// Expected values: scripts/welch_reference.py (ours), mpmath 1.3.0 at 30 digits, the p-value both from
// mpmath's incomplete beta and from integrating the t density (they agree to 1e-20).
struct WelchCase {
  std::vector<double> a, b;
  double delta, t, df, p;
};

TEST(Stats, WelchMatchesMpmathReference) {
  const std::vector<WelchCase> cases{
      // n = 3 each, equal variances
      {{1.10, 1.12, 1.11}, {1.08, 1.09, 1.085}, -0.025, -3.8729833462074169, 2.9411764705882353, 0.031562231625678487},
      // n = 5 vs n = 3, variances 0.00625 vs 0.26333
      {{2.0, 2.1, 1.9, 2.05, 1.95}, {1.5, 2.5, 1.8}, -0.066666666666666667, -0.22343230939117824, 2.0571590216402208,
       0.84343288240298864},
      // n = 3 each, unequal variances, values like seeds' val_bpb
      {{1.0812, 1.0820, 1.0809}, {1.0755, 1.0791, 1.0749}, -0.0048666666666666667, -3.5997298108672268,
       2.2496656916265573, 0.058002012700869236},
  };
  for (const auto& c : cases) {
    const WelchResult r = welch_t_test(c.a, c.b);
    EXPECT_NEAR(r.delta, c.delta, 1e-12);
    EXPECT_NEAR(r.t, c.t, 1e-9 * std::fabs(c.t));
    EXPECT_NEAR(r.df, c.df, 1e-9 * c.df);
    EXPECT_NEAR(r.p, c.p, 1e-9 * c.p);
  }
}

TEST(Stats, WelchRefusesTooFewOrConstantValues) {
  EXPECT_THROW(welch_t_test({1.0}, {1.0, 2.0}), std::invalid_argument);
  EXPECT_THROW(welch_t_test({1.0, 1.0}, {2.0, 2.0}), std::invalid_argument);
}

TEST(Stats, AggregateReportsFailedSeedAndSkipsIt) {
  const nlohmann::json seeds = nlohmann::json::parse(R"([
    {"seed": 42,  "status": "ok",     "summary": {"val_bpb": 1.5, "steps": 10, "within_budget": true}},
    {"seed": 314, "status": "failed", "exit_code": 1, "summary": {"val_bpb": 9.0}},
    {"seed": 999, "status": "ok",     "summary": {"val_bpb": 1.7, "steps": 10, "quantized_val_bpb": 1.8}}
  ])");
  const nlohmann::json agg = aggregate_seeds(seeds);
  EXPECT_EQ(agg["count"], 2);
  EXPECT_EQ(agg["failed"], nlohmann::json::array({314}));
  EXPECT_NEAR(agg["metrics"]["val_bpb"]["mean"].get<double>(), 1.6, 1e-15);
  EXPECT_NEAR(agg["metrics"]["val_bpb"]["sd"].get<double>(), std::sqrt(0.02), 1e-15);
  EXPECT_EQ(agg["metrics"]["val_bpb"]["count"], 2);
  EXPECT_EQ(agg["metrics"]["steps"]["sd"].get<double>(), 0.0);
  EXPECT_EQ(agg["metrics"]["quantized_val_bpb"]["count"], 1);
  EXPECT_TRUE(agg["metrics"]["quantized_val_bpb"]["sd"].is_null());
  EXPECT_FALSE(agg["metrics"].contains("within_budget"));  // booleans are not figures
}

}  // namespace
}  // namespace pgolf::stats
