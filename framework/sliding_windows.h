// Sliding-window geometry (spec posttrain §8.5) and the TTT chunking over it (§9.2), as pure arithmetic:
// counts and ranges come from T, S, stride and C without materialising a token. Index convention: input i
// (0 <= i < T) predicts stream token i + 1, so T = stream length - 1 targets.
//   "1755" rule: windows at ws = k·stride while ws + (S − stride) < T (and always ws = 0); window k covers
//                inputs [ws, min(ws + S, T)); window 0 scores all of them, the others inputs ≥ ws + S − stride.
//                Every target is scored exactly once.
//   "461" rule:  windows at ws = k·stride while min(ws + S, T) − ws ≥ stride (and always ws = 0); window k
//                scores from max(len − stride, 0) (window 0 from 0). The partial windows at the tail all
//                re-score the last `stride` targets: N = T + duplicates (#461's quirk, kept to match it).
#pragma once

#include <cstdint>

namespace pgolf {

struct Window {
  int64_t start = 0;       // first input
  int64_t len = 0;         // inputs [start, start + len)
  int64_t score_from = 0;  // scored inputs [start + score_from, start + len)
  int64_t first_scored() const { return start + score_from; }
  int64_t scored() const { return len - score_from; }
};

class SlidingWindows {
 public:
  // Throws std::invalid_argument unless 0 < stride <= seq_len and targets > 0.
  SlidingWindows(int64_t targets, int64_t seq_len, int64_t stride, bool rescore_tail);
  int64_t count() const { return count_; }
  Window at(int64_t k) const;
  // Σ scored over all windows: T under the 1755 rule, T + the tail's duplicates under the 461 rule.
  int64_t scored_tokens() const;
  // The first window whose first scored input is >= pos (count() if none): first scored inputs are
  // non-decreasing in k, so a chunk's windows are one contiguous index range.
  int64_t first_scoring_at_or_after(int64_t pos) const;
  int64_t targets() const { return T_; }
  int64_t seq_len() const { return S_; }
  int64_t stride() const { return stride_; }
  bool rescore_tail() const { return rescore_tail_; }

 private:
  int64_t T_, S_, stride_;
  bool rescore_tail_;
  int64_t count_ = 0;
};

// Score-first TTT chunks of C inputs: window k belongs to chunk ⌊first_scored / C⌋ (§9.2).
class WindowChunks {
 public:
  WindowChunks(const SlidingWindows& windows, int64_t chunk_tokens);
  int64_t count() const { return chunks_; }
  // Windows [first, last) of chunk c.
  int64_t first_window(int64_t c) const;
  int64_t end_window(int64_t c) const { return first_window(c + 1); }
  // The chunk's inputs [begin, end): the targets its windows score (and its training sequences use).
  int64_t begin(int64_t c) const { return c * C_; }
  int64_t end(int64_t c) const;
  int64_t chunk_tokens() const { return C_; }

 private:
  const SlidingWindows& w_;
  int64_t C_, chunks_;
};

}  // namespace pgolf
