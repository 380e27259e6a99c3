#include "framework/named_state.h"

#include <map>
#include <stdexcept>

namespace pgolf {

NamedTensors named_state(torch::nn::Module& m, bool floating_only) {
  NamedTensors out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/true))
    if (!floating_only || b.value().is_floating_point()) out.emplace_back(b.key(), b.value());
  return out;
}

void load_named_state(torch::nn::Module& m, const NamedTensors& state, const std::string& what) {
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  torch::NoGradGuard g;
  for (auto& [name, dst] : named_state(m)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error(what + ": has no tensor '" + name + "' that the model needs");
    if (!it->second.sizes().equals(dst.sizes()))
      throw std::runtime_error(what + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) +
                               ", the model's is " + c10::str(dst.sizes()));
    dst.copy_(it->second.to(dst.device(), dst.scalar_type()));
    by_name.erase(it);
  }
  if (!by_name.empty()) throw std::runtime_error(what + ": holds tensor '" + by_name.begin()->first + "' the model lacks");
}

}  // namespace pgolf
