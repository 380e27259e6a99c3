#include "ttt/doc_schedule.h"

#include <algorithm>
#include <numeric>

namespace pgolf {

std::vector<Doc> split_documents(const int64_t* tokens, int64_t n, int64_t bos_id) {
  std::vector<int64_t> starts{0};
  for (int64_t p = 1; p < n - 1; ++p)
    if (tokens[p] == bos_id) starts.push_back(p);
  std::vector<Doc> docs;
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t end = i + 1 < starts.size() ? starts[i + 1] : n - 1;
    docs.push_back(Doc{starts[i], end - starts[i]});
  }
  return docs;
}

std::vector<int64_t> phase_boundaries(int64_t prefix_docs, int64_t phases) {
  std::vector<int64_t> out;
  for (int64_t k = 1; k <= phases; ++k) out.push_back(prefix_docs * k / phases);
  return out;
}

std::vector<std::vector<int64_t>> doc_batches(const std::vector<int64_t>& lengths, int64_t batch) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < order.size(); i += static_cast<size_t>(batch))
    out.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                     order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + static_cast<size_t>(batch))));
  std::reverse(out.begin(), out.end());  // longest batch first
  return out;
}

std::vector<int64_t> phase_ends(const std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& boundaries) {
  std::vector<int64_t> ends;
  for (int64_t boundary : boundaries) {
    int64_t scored = 0, j = 0;
    while (j < static_cast<int64_t>(batches.size()) && scored < boundary) scored += static_cast<int64_t>(batches[static_cast<size_t>(j++)].size());
    ends.push_back(scored >= boundary ? j : static_cast<int64_t>(batches.size()));
  }
  return ends;
}

double batch_cost(const std::vector<int64_t>& doc_ids, const std::vector<Doc>& docs, int64_t chunk, int64_t context) {
  int64_t chunks = 0;
  for (int64_t d : doc_ids) chunks = std::max(chunks, doc_chunks(docs[static_cast<size_t>(d)].pred_len, chunk));
  double cost = 0;
  for (int64_t ci = 0; ci < chunks; ++ci) cost += static_cast<double>(std::min(chunk * (ci + 1), context));
  return cost * static_cast<double>(doc_ids.size());
}

std::vector<int> assign_ranks(const std::vector<double>& costs, int world) {
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<size_t>(world), 0.0);
  std::vector<int> rank(costs.size(), 0);
  for (size_t i : order) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    rank[i] = static_cast<int>(r);
    load[r] += costs[i];
  }
  return rank;
}

}  // namespace pgolf
