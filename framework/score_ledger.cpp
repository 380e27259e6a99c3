#include "framework/score_ledger.h"

#include <limits>
#include <stdexcept>

namespace pgolf {

namespace {
constexpr int64_t kNoTag = std::numeric_limits<int64_t>::max();
}

ScoreLedger::ScoreLedger(int64_t targets, torch::Device device, Communicator& comm) : T_(targets), comm_(comm) {
  auto i32 = torch::TensorOptions().dtype(torch::kInt32).device(device);
  local_ = torch::zeros({T_}, i32);
  global_ = torch::zeros({T_}, i32);
  scored_at_ = torch::full({T_}, -1, i32);
  deferred_ = torch::full({}, kNoTag, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

void ScoreLedger::scored(const torch::Tensor& pos, const torch::Tensor& weight) {
  auto p = pos.reshape({-1}).clamp(0, T_ - 1);
  auto w = weight.reshape({-1}).to(torch::kInt32);
  local_.index_add_(0, p, w);
  // Unscored entries carry -1 and leave the maximum alone.
  auto stamp = torch::where(w > 0, torch::full_like(w, static_cast<int32_t>(updates_)), torch::full_like(w, -1));
  scored_at_.scatter_reduce_(0, p, stamp, "amax");
}

void ScoreLedger::scored(int64_t a, int64_t b) {
  local_.slice(0, a, b).add_(1);
  scored_at_.slice(0, a, b).fill_(static_cast<int32_t>(updates_));
}

void ScoreLedger::sync(int64_t a, int64_t b) {
  auto part = local_.slice(0, a, b).clone();
  comm_.all_reduce_sum(part);
  global_.slice(0, a, b).copy_(part);
}

void ScoreLedger::fail_unscored(const torch::Tensor& bad_pos, const std::string& what) const {
  const int64_t first = bad_pos.min().item<int64_t>();
  throw std::runtime_error("TTT legality (score before update, spec 9.1 C3): " + what + " would train on " +
                           std::to_string(bad_pos.numel()) + " target(s) not yet scored, the first at input " +
                           std::to_string(first) + " (after " + std::to_string(updates_) + " updates)");
}

void ScoreLedger::check_update(int64_t a, int64_t b, const std::string& what, bool local) const {
  if (a < 0 || b > T_ || a >= b)
    throw std::runtime_error("TTT legality: " + what + " trains on targets [" + std::to_string(a) + ", " +
                             std::to_string(b) + ") outside the " + std::to_string(T_) + " targets");
  auto counts = (local ? local_ : global_).slice(0, a, b);
  auto bad = (counts <= 0).nonzero();
  if (bad.numel() > 0) fail_unscored(bad.reshape({-1}) + a, what);
}

void ScoreLedger::check_update(const torch::Tensor& pos, const torch::Tensor& weight, const std::string& what,
                               bool local) const {
  auto p = pos.reshape({-1}), w = weight.reshape({-1}) > 0;
  auto counts = (local ? local_ : global_).index_select(0, p.clamp(0, T_ - 1));
  auto bad = (w & ((counts <= 0) | (p < 0) | (p >= T_))).nonzero().reshape({-1});
  if (bad.numel() > 0) fail_unscored(p.index_select(0, bad), what);
}

void ScoreLedger::defer_check(const torch::Tensor& pos, const torch::Tensor& weight, int64_t tag, bool local) {
  auto p = pos.reshape({-1}), w = weight.reshape({-1}) > 0;
  auto counts = (local ? local_ : global_).index_select(0, p.clamp(0, T_ - 1));
  auto bad = (w & ((counts <= 0) | (p < 0) | (p >= T_))).any();
  auto t = torch::where(bad, torch::full_like(deferred_, tag), torch::full_like(deferred_, kNoTag));
  deferred_ = torch::minimum(deferred_, t);
}

void ScoreLedger::flush_deferred(const std::function<std::string(int64_t)>& what) {
  const int64_t tag = deferred_.item<int64_t>();
  if (tag == kNoTag) return;
  deferred_.fill_(kNoTag);
  throw std::runtime_error("TTT legality (score before update, spec 9.1 C3): " + what(tag) +
                           " trained on target(s) not yet scored");
}

void ScoreLedger::finish(int64_t expected_total, bool allow_rescore, const std::string& who) {
  sync(0, T_);
  auto bad = (allow_rescore ? global_ < 1 : global_ != 1).nonzero().reshape({-1});
  if (bad.numel() > 0) {
    const int64_t i = bad[0].item<int64_t>();
    throw std::runtime_error(who + ": single-pass scoring violated (spec 9.1 C4): " + std::to_string(bad.numel()) +
                             " target(s) scored " + (allow_rescore ? "never" : "other than once") + ", the first at input " +
                             std::to_string(i) + " (scored " + std::to_string(global_[i].item<int64_t>()) + " times)");
  }
  const int64_t total = global_.sum().item<int64_t>();
  if (total != expected_total)
    throw std::runtime_error(who + ": " + std::to_string(total) + " scores were made, expected " +
                             std::to_string(expected_total));
}

}  // namespace pgolf
