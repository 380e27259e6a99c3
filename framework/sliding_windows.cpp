#include "framework/sliding_windows.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pgolf {

SlidingWindows::SlidingWindows(int64_t targets, int64_t seq_len, int64_t stride, bool rescore_tail)
    : T_(targets), S_(seq_len), stride_(stride), rescore_tail_(rescore_tail) {
  if (T_ <= 0 || S_ <= 0 || stride_ <= 0 || stride_ > S_)
    throw std::invalid_argument("sliding windows: need targets > 0 and 0 < stride <= seq_len; got T=" +
                                std::to_string(T_) + " seq_len=" + std::to_string(S_) + " stride=" + std::to_string(stride_));
  if (rescore_tail_) {
    count_ = std::max<int64_t>(1, T_ / stride_);  // ws = k·stride with T − ws ≥ stride
  } else {
    const int64_t ctx = S_ - stride_;  // ws + ctx < T
    count_ = T_ > ctx ? (T_ - ctx + stride_ - 1) / stride_ : 1;
  }
}

Window SlidingWindows::at(int64_t k) const {
  Window w;
  w.start = k * stride_;
  w.len = std::min(w.start + S_, T_) - w.start;
  if (k == 0) return w;  // both rules score the whole first window
  w.score_from = rescore_tail_ ? std::max<int64_t>(w.len - stride_, 0) : S_ - stride_;
  return w;
}

int64_t SlidingWindows::scored_tokens() const {
  if (!rescore_tail_) return T_;
  return std::min(S_, T_) + (count_ - 1) * stride_;  // every later window has len ≥ stride and scores stride
}

int64_t SlidingWindows::first_scoring_at_or_after(int64_t pos) const {
  int64_t lo = 0, hi = count_;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (at(mid).first_scored() < pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

WindowChunks::WindowChunks(const SlidingWindows& windows, int64_t chunk_tokens) : w_(windows), C_(chunk_tokens) {
  if (C_ <= 0) throw std::invalid_argument("TTT chunks: chunk_tokens must be positive, got " + std::to_string(C_));
  chunks_ = (w_.targets() + C_ - 1) / C_;
}

int64_t WindowChunks::first_window(int64_t c) const {
  return c >= chunks_ ? w_.count() : w_.first_scoring_at_or_after(c * C_);
}

int64_t WindowChunks::end(int64_t c) const { return std::min((c + 1) * C_, w_.targets()); }

}  // namespace pgolf
