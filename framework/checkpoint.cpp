#include "framework/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#ifdef PGOLF_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <mutex>
#include <set>
#include <stdexcept>

#include "framework/io.h"
#include "framework/tensor_archive.h"

namespace pgolf {

namespace {

constexpr ArchiveFormat kCheckpoint = {{'P', 'G', 'C', 'K'}, "checkpoint",
                                       "it was damaged or cut short; resume from an intact copy or start the run again",
                                       "pass the checkpoint.bin a pgolf run wrote"};

#ifdef PGOLF_WITH_CUDA
const at::Generator& cuda_generator() { return at::cuda::detail::getDefaultCUDAGenerator(c10::cuda::current_device()); }
#endif

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

std::map<std::string, torch::Tensor> strip_prefix(const NamedTensors& all, const std::string& prefix) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : all)
    if (name.compare(0, prefix.size(), prefix) == 0) out[name.substr(prefix.size())] = t;
  return out;
}

}  // namespace

TrainingState capture_state(const TrainingParts& parts) {
  TrainingState s;
  for (const auto& [name, t] : named_state(parts.model)) s.model.emplace_back(name, t.detach().clone());
  for (const auto& o : parts.optimizers) s.optimizers.push_back(o->state());
  for (const auto& h : parts.hooks) {
    s.hooks.push_back(h->state());
    s.hook_meta.push_back(h->meta());
  }
  s.loader = parts.loader.state();
  s.cpu_rng = generator_state(at::detail::getDefaultCPUGenerator());
#ifdef PGOLF_WITH_CUDA
  if (torch::cuda::is_available()) s.cuda_rng = generator_state(cuda_generator());
#endif
  return s;
}

void restore_state(const TrainingParts& parts, const TrainingState& s, const std::string& what) {
  load_named_state(parts.model, s.model, what);
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
  if (s.hooks.size() != parts.hooks.size())
    throw std::runtime_error(what + ": holds " + std::to_string(s.hooks.size()) + " training hook(s), the recipe has " +
                             std::to_string(parts.hooks.size()));
  for (size_t i = 0; i < parts.hooks.size(); ++i) {
    try {
      parts.hooks[i]->load_state(s.hooks[i], s.hook_meta[i]);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": train.hooks[" + std::to_string(i) + "]: " + e.what());
    }
  }
  parts.loader.restore(s.loader);
  if (s.cpu_rng.defined()) set_generator_state(at::detail::getDefaultCPUGenerator(), s.cpu_rng);
#ifdef PGOLF_WITH_CUDA
  if (s.cuda_rng.defined() && torch::cuda::is_available())
    set_generator_state(cuda_generator(), s.cuda_rng);
#endif
}

std::string encode_checkpoint(const TrainingState& s, const Json& meta) {
  NamedTensors tensors;
  for (const auto& [name, t] : s.model) tensors.emplace_back("model/" + name, t);
  for (size_t i = 0; i < s.optimizers.size(); ++i)
    for (const auto& [key, t] : s.optimizers[i]) tensors.emplace_back("optim/" + std::to_string(i) + "/" + key, t);
  for (size_t i = 0; i < s.hooks.size(); ++i)
    for (const auto& [key, t] : s.hooks[i]) tensors.emplace_back("hook/" + std::to_string(i) + "/" + key, t);
  if (s.cpu_rng.defined()) tensors.emplace_back("rng/cpu", s.cpu_rng);
  if (s.cuda_rng.defined()) tensors.emplace_back("rng/cuda", s.cuda_rng);
  Json m = meta;
  m["optimizers"] = s.optimizers.size();
  m["hook_meta"] = s.hook_meta;
  m["loader"] = s.loader;
  return pack_archive(kCheckpoint, tensors, m);
}

TrainingState decode_checkpoint(const std::string& bytes, const std::string& what, Json* meta) {
  NamedTensors tensors;
  Json m;
  unpack_archive(kCheckpoint, bytes, what, &tensors, &m);
  TrainingState s;
  for (const auto& [name, t] : tensors)
    if (name.rfind("model/", 0) == 0) s.model.emplace_back(name.substr(6), t);
  const size_t n_opt = m.at("optimizers").get<size_t>();
  for (size_t i = 0; i < n_opt; ++i) s.optimizers.push_back(strip_prefix(tensors, "optim/" + std::to_string(i) + "/"));
  for (const auto& hm : m.at("hook_meta")) {
    s.hooks.push_back(strip_prefix(tensors, "hook/" + std::to_string(s.hooks.size()) + "/"));
    s.hook_meta.push_back(hm);
  }
  for (const auto& [name, t] : tensors) {
    if (name == "rng/cpu") s.cpu_rng = t;
    if (name == "rng/cuda") s.cuda_rng = t;
  }
  s.loader = m.at("loader");
  if (meta) *meta = std::move(m);
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
