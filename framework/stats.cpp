// Welch's t-test from first principles: the Student-t tail through the regularised incomplete beta function,
// evaluated by its continued fraction (Abramowitz & Stegun 26.5.8) with the modified Lentz method.
#include "framework/stats.h"

#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

namespace pgolf::stats {

double mean(const std::vector<double>& x) {
  if (x.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double sample_sd(const std::vector<double>& x) {
  if (x.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  const double m = mean(x);
  double ss = 0;
  for (double v : x) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(x.size() - 1));
}

namespace {

// The continued fraction of I_x(a, b) without its prefactor; converges fast for x < (a + 1) / (a + b + 2).
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double f = d;
  for (int m = 1; m <= 10000; ++m) {
    const double dm = m;
    // even term d_{2m}, then odd term d_{2m+1}
    for (const double coef : {dm * (b - dm) * x / ((a + 2 * dm - 1) * (a + 2 * dm)),
                              -(a + dm) * (a + b + dm) * x / ((a + 2 * dm) * (a + 2 * dm + 1))}) {
      d = 1.0 + coef * d;
      if (std::fabs(d) < kTiny) d = kTiny;
      c = 1.0 + coef / c;
      if (std::fabs(c) < kTiny) c = kTiny;
      d = 1.0 / d;
      f *= c * d;
    }
    if (std::fabs(c * d - 1.0) < kEps) return f;
  }
  throw std::runtime_error("incomplete_beta: continued fraction did not converge");
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1))
    throw std::invalid_argument("incomplete_beta: needs a, b > 0 and 0 <= x <= 1");
  if (x == 0 || x == 1) return x;
  // log of x^a (1-x)^b / B(a, b)
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
  return 1.0 - std::exp(log_front) * beta_continued_fraction(b, a, 1.0 - x) / b;  // I_x(a,b) = 1 - I_{1-x}(b,a)
}

double student_t_two_sided_p(double t, double df) {
  if (!(df > 0)) throw std::invalid_argument("student_t_two_sided_p: needs df > 0");
  if (std::isinf(t)) return 0.0;
  return incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
}

WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) throw std::invalid_argument("Welch's t-test needs at least two values per group");
  const double na = static_cast<double>(a.size()), nb = static_cast<double>(b.size());
  const double va = std::pow(sample_sd(a), 2) / na, vb = std::pow(sample_sd(b), 2) / nb;
  if (va + vb == 0) throw std::invalid_argument("Welch's t-test: both groups have zero variance");
  WelchResult r;
  r.delta = mean(b) - mean(a);
  r.t = r.delta / std::sqrt(va + vb);
  r.df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
  r.p = student_t_two_sided_p(r.t, r.df);
  return r;
}

nlohmann::json aggregate_seeds(const nlohmann::json& seeds) {
  nlohmann::json out{{"count", 0}, {"failed", nlohmann::json::array()}, {"metrics", nlohmann::json::object()}};
  std::map<std::string, std::vector<double>> values;
  for (const auto& s : seeds) {
    if (s.value("status", "") != "ok") {
      out["failed"].push_back(s.at("seed"));
      continue;
    }
    out["count"] = out["count"].get<int>() + 1;
    const nlohmann::json summary = s.value("summary", nlohmann::json::object());  // named: items() must not outlive it
    for (const auto& [k, v] : summary.items())
      if (v.is_number() && !v.is_boolean()) values[k].push_back(v.get<double>());
  }
  for (const auto& [k, v] : values) {
    const double sd = sample_sd(v);
    out["metrics"][k] = {{"mean", mean(v)}, {"sd", std::isnan(sd) ? nlohmann::json() : nlohmann::json(sd)},
                         {"count", v.size()}, {"values", v}};
  }
  return out;
}

}  // namespace pgolf::stats
