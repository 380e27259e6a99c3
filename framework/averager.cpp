#include "framework/averager.h"

namespace pgolf {

std::vector<std::pair<std::string, torch::Tensor>> averaged_tensors(LanguageModel& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers(/*recurse=*/true))
    if (b.value().is_floating_point()) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace pgolf
