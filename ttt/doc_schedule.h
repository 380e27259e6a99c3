// The schedule of phased TTT (spec posttrain §9.3), as arithmetic on document lengths:
//   documents   BOS positions b0 < b1 < ...; document i predicts inputs [b_i, b_{i+1}) (so it includes the
//               next BOS as its last target); the last ends at T; text before the first BOS is a document.
//   batches     documents sorted by length ascending (stable), cut into batches of `batch` from the shortest
//               (the last batch, the longest, may be partial), processed longest batch first.
//   phases      cumulative boundaries ⌊P·k/φ⌋, k = 1..φ; phase k ends after the first batch (in processing
//               order) at which the documents scored so far reach boundary k (deterministic, every rank
//               agrees: this replaces the references' timing-dependent shared counter).
//   ranks       within each phase, batches go to ranks longest-processing-time first (deterministic).
#pragma once

#include <cstdint>
#include <vector>

namespace pgolf {

struct Doc {
  int64_t start = 0;     // first input (a BOS, or 0)
  int64_t pred_len = 0;  // inputs [start, start + pred_len)
};

// tokens: the stream (n = T + 1 tokens).
std::vector<Doc> split_documents(const int64_t* tokens, int64_t n, int64_t bos_id);

// ⌊P·k/φ⌋ for k = 1..φ.
std::vector<int64_t> phase_boundaries(int64_t prefix_docs, int64_t phases);

// Document indices per batch, in processing order (batch 0 holds the longest documents).
std::vector<std::vector<int64_t>> doc_batches(const std::vector<int64_t>& lengths, int64_t batch);

// For each boundary, the number of batches (in processing order) after which that phase's global update
// runs: the first count whose documents reach the boundary (batches.size() when never reached).
std::vector<int64_t> phase_ends(const std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& boundaries);

// Scoring chunks of a document of pred_len inputs with chunk size `chunk` (at least 1).
inline int64_t doc_chunks(int64_t pred_len, int64_t chunk) { return pred_len > 0 ? (pred_len + chunk - 1) / chunk : 0; }

// The forward work of one batch: Σ over its chunks of rows × width (the LPT cost).
double batch_cost(const std::vector<int64_t>& doc_ids, const std::vector<Doc>& docs, int64_t chunk, int64_t context);

// The rank of each batch, given their costs: largest first to the least-loaded rank (ties to the
// lowest rank). Every rank computes the same answer.
std::vector<int> assign_ranks(const std::vector<double>& costs, int world);

}  // namespace pgolf
