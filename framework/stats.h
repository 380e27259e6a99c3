// Statistics for comparing runs across seeds: mean, sample standard deviation, Welch's unequal-variance
// t-test (two-sided p-value, Welch–Satterthwaite degrees of freedom) and the aggregation of a multi-seed run's
// per-seed summaries. No torch here: pgolf-repro and pgolf-report link this file alone.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pgolf::stats {

double mean(const std::vector<double>& x);
// Sample standard deviation (divisor n - 1); NaN for fewer than two values.
double sample_sd(const std::vector<double>& x);

// The regularised incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1 (continued fraction).
double incomplete_beta(double a, double b, double x);
// P(|T| >= |t|) for Student's t with `df` (> 0, not necessarily whole) degrees of freedom.
double student_t_two_sided_p(double t, double df);

struct WelchResult {
  double delta = 0;  // mean(b) - mean(a)
  double t = 0;      // delta / sqrt(s_a²/n_a + s_b²/n_b)
  double df = 0;     // Welch–Satterthwaite
  double p = 1;      // two-sided
};
// Welch's t-test of b against a; each needs at least two values and the two not both of zero variance.
// Throws std::invalid_argument otherwise.
WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

// Aggregates a multi-seed run: `seeds` is an array of {"seed", "status" ("ok" | "failed" | ...), "summary"}.
// Returns {"count": finished seeds, "failed": [seed...], "metrics": {key: {"mean", "sd", "count", "values"}}}
// over every numeric summary key that at least one finished seed has (count says how many had it).
nlohmann::json aggregate_seeds(const nlohmann::json& seeds);

}  // namespace pgolf::stats
