#include "framework/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#ifdef PGOLF_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <mutex>
#include <set>
#include <stdexcept>

#include "framework/io.h"

namespace pgolf {

namespace {

constexpr const char* kFormat = "pgolf-checkpoint-1";

torch::Tensor generator_state(const at::Generator& g) {
  at::Generator gen = g;  // a handle on the same generator
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(const at::Generator& g, const torch::Tensor& s) {
  at::Generator gen = g;
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(s);
}

// Parameters first, then buffers: the order model_state in the Trainer uses.
std::vector<std::pair<std::string, torch::Tensor>> model_tensors(LanguageModel& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

std::map<std::string, torch::Tensor> strip_prefix(const NamedTensors& all, const std::string& prefix) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : all)
    if (name.compare(0, prefix.size(), prefix) == 0) out[name.substr(prefix.size())] = t;
  return out;
}

}  // namespace

TrainingState capture_state(const TrainingParts& parts) {
  TrainingState s;
  for (const auto& [name, t] : model_tensors(parts.model)) s.model.emplace_back(name, t.detach().clone());
  for (const auto& o : parts.optimizers) s.optimizers.push_back(o->state());
  for (const auto& a : parts.averagers) {
    s.averagers.push_back(a->state());
    s.averager_meta.push_back(a->meta());
  }
  s.loader = parts.loader.state();
  s.cpu_rng = generator_state(at::detail::getDefaultCPUGenerator());
#ifdef PGOLF_WITH_CUDA
  if (torch::cuda::is_available()) s.cuda_rng = generator_state(at::cuda::detail::getDefaultCUDAGenerator(0));
#endif
  return s;
}

void restore_state(const TrainingParts& parts, const TrainingState& s, const std::string& what) {
  {
    std::map<std::string, torch::Tensor> by_name(s.model.begin(), s.model.end());
    torch::NoGradGuard g;
    for (auto& [name, dst] : model_tensors(parts.model)) {
      auto it = by_name.find(name);
      if (it == by_name.end()) throw std::runtime_error(what + ": has no tensor '" + name + "' that the model needs");
      if (!it->second.sizes().equals(dst.sizes()) || it->second.scalar_type() != dst.scalar_type())
        throw std::runtime_error(what + ": tensor '" + name + "' has another shape or dtype than the model's");
      dst.copy_(it->second);
      by_name.erase(it);
    }
    if (!by_name.empty())
      throw std::runtime_error(what + ": holds model tensor '" + by_name.begin()->first + "' that the model lacks");
  }
  if (s.optimizers.size() != parts.optimizers.size())
    throw std::runtime_error(what + ": holds " + std::to_string(s.optimizers.size()) + " optimizer group(s), the recipe has " +
                             std::to_string(parts.optimizers.size()));
  for (size_t i = 0; i < parts.optimizers.size(); ++i) {
    try {
      parts.optimizers[i]->load_state(s.optimizers[i]);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": optim.groups[" + std::to_string(i) + "]: " + e.what());
    }
  }
  if (s.averagers.size() != parts.averagers.size())
    throw std::runtime_error(what + ": holds " + std::to_string(s.averagers.size()) + " averager(s), the recipe has " +
                             std::to_string(parts.averagers.size()));
  for (size_t i = 0; i < parts.averagers.size(); ++i) {
    try {
      parts.averagers[i]->load_state(s.averagers[i], s.averager_meta[i]);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": optim.averaging[" + std::to_string(i) + "]: " + e.what());
    }
  }
  parts.loader.restore(s.loader);
  if (s.cpu_rng.defined()) set_generator_state(at::detail::getDefaultCPUGenerator(), s.cpu_rng);
#ifdef PGOLF_WITH_CUDA
  if (s.cuda_rng.defined() && torch::cuda::is_available())
    set_generator_state(at::cuda::detail::getDefaultCUDAGenerator(0), s.cuda_rng);
#endif
}

std::string encode_checkpoint(const TrainingState& s, const Json& meta) {
  QuantizedState q;
  for (const auto& [name, t] : s.model) q.tensors.emplace_back("model/" + name, t);
  for (size_t i = 0; i < s.optimizers.size(); ++i)
    for (const auto& [key, t] : s.optimizers[i]) q.tensors.emplace_back("optim/" + std::to_string(i) + "/" + key, t);
  for (size_t i = 0; i < s.averagers.size(); ++i)
    for (const auto& [key, t] : s.averagers[i]) q.tensors.emplace_back("avg/" + std::to_string(i) + "/" + key, t);
  if (s.cpu_rng.defined()) q.tensors.emplace_back("rng/cpu", s.cpu_rng);
  if (s.cuda_rng.defined()) q.tensors.emplace_back("rng/cuda", s.cuda_rng);
  q.meta = meta;
  q.meta["format"] = kFormat;
  q.meta["optimizers"] = s.optimizers.size();
  q.meta["averager_meta"] = s.averager_meta;
  q.meta["loader"] = s.loader;
  return serialize_state(q);
}

TrainingState decode_checkpoint(const std::string& bytes, const std::string& what, Json* meta) {
  QuantizedState q;
  try {
    q = deserialize_state(bytes, what);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": not a usable checkpoint: " + e.what());
  }
  if (!q.meta.is_object() || q.meta.value("format", "") != kFormat)
    throw std::runtime_error(what + ": not a pgolf checkpoint of format " + kFormat + " (meta.format is " +
                             (q.meta.is_object() && q.meta.contains("format") ? q.meta["format"].dump() : "missing") + ")");
  TrainingState s;
  for (const auto& [name, t] : q.tensors)
    if (name.rfind("model/", 0) == 0) s.model.emplace_back(name.substr(6), t);
  const size_t n_opt = q.meta["optimizers"].get<size_t>();
  for (size_t i = 0; i < n_opt; ++i) s.optimizers.push_back(strip_prefix(q.tensors, "optim/" + std::to_string(i) + "/"));
  for (const auto& m : q.meta["averager_meta"]) {
    s.averagers.push_back(strip_prefix(q.tensors, "avg/" + std::to_string(s.averagers.size()) + "/"));
    s.averager_meta.push_back(m);
  }
  for (const auto& [name, t] : q.tensors) {
    if (name == "rng/cpu") s.cpu_rng = t;
    if (name == "rng/cuda") s.cuda_rng = t;
  }
  s.loader = q.meta["loader"];
  if (meta) *meta = std::move(q.meta);
  return s;
}

void write_checkpoint(const std::string& path, const TrainingState& state, const Json& meta) {
  write_file_atomic(path, encode_checkpoint(state, meta));
}

TrainingState read_checkpoint(const std::string& path, Json* meta) { return decode_checkpoint(read_file(path), path, meta); }

std::string first_difference(const Json& a, const Json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
    for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      const std::string p = path.empty() ? k : path + "." + k;
      if (!a.contains(k) || !b.contains(k))
        return p + ": " + (a.contains(k) ? a[k].dump() : "absent") + " vs " + (b.contains(k) ? b[k].dump() : "absent");
      std::string d = first_difference(a[k], b[k], p);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      std::string d = first_difference(a[i], b[i], path + "[" + std::to_string(i) + "]");
      if (!d.empty()) return d;
    }
    return "";
  }
  return a == b ? "" : (path.empty() ? "(root)" : path) + ": " + a.dump() + " vs " + b.dump();
}

}  // namespace pgolf
