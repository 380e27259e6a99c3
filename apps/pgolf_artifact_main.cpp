// pgolf-artifact: looks inside an artifact file.
//
//   pgolf-artifact inspect ARTIFACT [--container NAME|JSON] [--budget N] [--code-bytes N]
//   pgolf-artifact bench CONTAINER [--layers 11 --dim 512 --kv-dim 256 --mlp 2048 --vocab 8192]
//
// bench: packs and unpacks a synthetic int6 state of that shape (#1855's by default: Gaussian codes in
// [-31, 31], fp16 row scales, with the spec's names), checks the round trip, prints the sizes and times.
// Per stored part (PGRP streams), per tensor and per role group: quantiser, bits, stored bytes, share of the
// decimal budget, budget left. The container is recognised from the bytes unless named. Stored bytes of a
// tensor are its part's bytes shared out by raw size (a compressed stream has no per-tensor sizes).
#include <array>
#include <chrono>
#include <thread>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>

#include "framework/artifact.h"
#include "framework/crash.h"
#include "framework/io.h"

namespace pgolf {
namespace {

void usage(FILE* to) {
  std::fprintf(to,
               "usage: pgolf-artifact inspect ARTIFACT [--container NAME|JSON] [--budget N] [--code-bytes N]\n"
               "  --container C   the container that wrote it (default: recognised from the bytes)\n"
               "  --budget N      decimal byte budget (default 16000000)\n"
               "  --code-bytes N  counted code bytes to add (default: artifact_code_bytes of the summary.json beside it)\n"
               "       pgolf-artifact bench CONTAINER [--layers N] [--dim N] [--kv-dim N] [--mlp N] [--vocab N]\n");
}

// Tries the named container, or every registered one that could have written these bytes.
std::pair<std::string, QuantizedState> open_artifact(const std::string& path, const std::string& bytes,
                                                     const std::string& named, std::shared_ptr<Container>* used) {
  std::vector<Json> tries;
  if (!named.empty()) tries.push_back(named[0] == '{' ? Json::parse(named) : Json{{"name", named}});
  else if (bytes.compare(0, 4, "PGRP") == 0) tries.push_back(Json{{"name", "pergroup"}});
  else
    for (const char* c : {"zlib", "zstd", "brotli", "lzma"}) tries.push_back(Json{{"name", "archive"}, {"compressor", c}});
  std::string errors;
  for (const Json& t : tries) {
    if (!SchemaCatalog::get().find("compressor", t.value("compressor", Json("zlib")).get<std::string>())) continue;
    try {
      *used = make_container(t, "--container");
      return {t.dump(), (*used)->unpack(bytes, path)};
    } catch (const std::exception& e) {
      errors += std::string("\n  as ") + t.dump() + ": " + e.what();
    }
  }
  throw std::runtime_error(path + ": not a readable pgolf artifact" + errors);
}

// The meta entry describing a stored tensor: that of its name, or of the nearest dotted prefix ("x.w.q" -> "x.w").
Json describe(const Json& meta, std::string name) {
  const Json& m = meta.is_object() && meta.contains("tensors") && meta["tensors"].is_object() ? meta["tensors"] : meta;
  while (true) {
    if (m.is_object() && m.contains(name)) return m[name];
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) return Json();
    name.erase(dot);
  }
}

std::pair<std::string, int> quantiser_and_bits(const Json& d, const torch::Tensor& t) {
  std::string q = d.is_string() ? d.get<std::string>() : "";
  int bits = 0;
  if (d.is_object()) {
    for (const char* k : {"scheme", "quantizer", "method"})
      if (q.empty() && d.contains(k) && d[k].is_string()) q = d[k].get<std::string>();
    if (d.contains("bits") && d["bits"].is_number_integer()) bits = d["bits"].get<int>();
  }
  std::smatch m;
  if (bits == 0 && std::regex_search(q, m, std::regex("int([0-9]+)"))) bits = std::stoi(m[1]);
  if (bits == 0) bits = static_cast<int>(t.element_size() * 8);
  return {q.empty() ? "-" : q, bits};
}

std::string role_of(const std::string& name) {
  static const std::regex block("^blocks\\.[0-9]+\\.");
  return std::regex_replace(name, block, "blocks.*.");
}

// The counted code bytes: --code-bytes, else the artifact_code_bytes of the summary.json the trainer wrote
// beside the artifact, else none (said so).
std::pair<int64_t, std::string> code_bytes(const std::string& artifact, int64_t given) {
  if (given >= 0) return {given, "--code-bytes"};
  const std::string summary = (std::filesystem::path(artifact).parent_path() / "summary.json").string();
  if (std::filesystem::is_regular_file(summary)) {
    const Json j = Json::parse(read_file(summary), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("artifact_code_bytes") && j["artifact_code_bytes"].is_number_integer())
      return {j["artifact_code_bytes"].get<int64_t>(), summary};
  }
  return {0, "not counted: no --code-bytes and no summary.json beside the artifact"};
}

int inspect(const std::string& path, const std::string& named, int64_t budget, int64_t given_code) {
  const auto [code, code_from] = code_bytes(path, given_code);
  const std::string bytes = read_file(path);
  std::shared_ptr<Container> c;
  const auto [how, q] = open_artifact(path, bytes, named, &c);
  const auto pct = [&](double b) { return 100.0 * b / static_cast<double>(budget); };
  const int64_t total = static_cast<int64_t>(bytes.size()) + code;
  std::printf("artifact %s: %zu bytes, container %s\n", path.c_str(), bytes.size(), how.c_str());
  std::printf("budget %lld: model %zu + code %lld = %lld (%.2f%%), left %lld%s\ncode bytes: %s\n\n", (long long)budget,
              bytes.size(), (long long)code, (long long)total, pct(static_cast<double>(total)), (long long)(budget - total),
              total > budget ? "  OVER BUDGET" : "", code_from.c_str());
  std::map<std::string, int64_t> stored, raw;
  std::printf("%-28s %14s %9s\n", "part", "stored bytes", "budget%");
  for (const auto& [part, n] : c->parts(bytes, path)) {
    stored[part] = n;
    std::printf("%-28s %14lld %8.3f%%\n", part.c_str(), (long long)n, pct(static_cast<double>(n)));
  }
  for (const auto& [n, t] : q.tensors) raw[c->part_of(n, t)] += t.numel() * t.element_size();
  std::printf("\n%-44s %-9s %-14s %-22s %4s %11s %11s %9s\n", "tensor", "dtype", "shape", "quantiser", "bits", "raw",
              "~stored", "budget%");
  std::map<std::string, std::array<double, 3>> roles;  // tensors, raw, stored
  for (const auto& [n, t] : q.tensors) {
    const auto [quant, bits] = quantiser_and_bits(describe(q.meta, n), t);
    const double r = static_cast<double>(t.numel() * t.element_size()), part_raw = static_cast<double>(raw[c->part_of(n, t)]);
    const double s = part_raw > 0 ? r / part_raw * static_cast<double>(stored[c->part_of(n, t)]) : 0.0;
    std::string shape;
    for (int64_t d : t.sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    std::printf("%-44s %-9s %-14s %-22s %4d %11.0f %11.0f %8.3f%%\n", n.c_str(),
                std::string(c10::toString(t.scalar_type())).c_str(), shape.c_str(), quant.c_str(), bits, r, s, pct(s));
    auto& g = roles[role_of(n)];
    g[0] += 1, g[1] += r, g[2] += s;
  }
  std::printf("\n%-44s %7s %12s %12s %9s\n", "group", "tensors", "raw", "~stored", "budget%");
  for (const auto& [role, g] : roles)
    std::printf("%-44s %7.0f %12.0f %12.0f %8.3f%%\n", role.c_str(), g[0], g[1], g[2], pct(g[2]));
  return 0;
}

QuantizedState synthetic_state(const std::map<std::string, int64_t>& a) {
  QuantizedState q;
  torch::manual_seed(0);
  auto add = [&](const std::string& n, int64_t rows, int64_t cols) {
    q.tensors.emplace_back(n + ".q", torch::clamp(torch::round(torch::randn({rows, cols}) * 8), -31, 31).to(torch::kInt8));
    q.tensors.emplace_back(n + ".scale", (torch::rand({rows}) * 1e-3).to(torch::kFloat16));
    q.meta["tensors"][n] = {{"scheme", "int6"}, {"bits", 6}};
  };
  const int64_t d = a.at("dim"), kv = a.at("kv-dim"), m = a.at("mlp");
  add("tok_emb.weight", a.at("vocab"), d);
  for (int64_t i = 0; i < a.at("layers"); ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    add(b + "attn.c_q.weight", d, d);
    add(b + "attn.c_k.weight", kv, d);
    add(b + "attn.c_v.weight", kv, d);
    add(b + "attn.proj.weight", d, d);
    add(b + "mlp.fc.weight", m, d);
    add(b + "mlp.proj.weight", d, m);
    q.tensors.emplace_back(b + "attn_scale", torch::ones({d}));
  }
  return q;
}

int bench(const std::string& container, const std::map<std::string, int64_t>& shape) {
  const auto c = make_container(container[0] == '{' ? Json::parse(container) : Json{{"name", container}}, "bench");
  const QuantizedState q = synthetic_state(shape);
  int64_t raw = 0;
  for (const auto& [n, t] : q.tensors) raw += t.numel() * t.element_size();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string bytes = c->pack(q);
  const auto t1 = std::chrono::steady_clock::now();
  const QuantizedState back = c->unpack(bytes, "bench");
  const auto t2 = std::chrono::steady_clock::now();
  std::map<std::string, torch::Tensor> want(q.tensors.begin(), q.tensors.end());
  bool same = back.tensors.size() == want.size();
  for (const auto& [n, t] : back.tensors) same = same && want.count(n) && torch::equal(want[n], t);
  std::printf("bench %s: %lld raw bytes -> %zu stored; pack %.1fs, unpack %.1fs; round trip %s (%u threads)\n",
              container.c_str(), (long long)raw, bytes.size(), std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count(), same ? "exact" : "DIFFERS",
              std::thread::hardware_concurrency());
  for (const auto& [part, n] : c->parts(bytes, "bench")) std::printf("  %-28s %12lld\n", part.c_str(), (long long)n);
  return same ? 0 : 1;
}

}  // namespace
}  // namespace pgolf

int main(int argc, char** argv) {
  pgolf::install_crash_report();
  if (argc >= 3 && std::string(argv[1]) == "bench") {
    std::map<std::string, int64_t> shape = {{"layers", 11}, {"dim", 512}, {"kv-dim", 256}, {"mlp", 2048}, {"vocab", 8192}};
    for (int i = 3; i + 1 < argc; i += 2) shape[std::string(argv[i]).substr(2)] = std::stoll(argv[i + 1]);
    try {
      return pgolf::bench(argv[2], shape);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pgolf-artifact: %s\n", e.what());
      return 1;
    }
  }
  if (argc < 3 || std::string(argv[1]) != "inspect") {
    pgolf::usage(stderr);
    return 2;
  }
  std::string container;
  int64_t budget = 16000000, code = -1;
  try {
    for (int i = 3; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) throw pgolf::ConfigError(a + " needs a value");
      if (a == "--container") container = argv[++i];
      else if (a == "--budget") budget = std::stoll(argv[++i]);
      else if (a == "--code-bytes") code = std::stoll(argv[++i]);
      else throw pgolf::ConfigError("unknown argument '" + a + "'");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf-artifact: %s\n", e.what());
    pgolf::usage(stderr);
    return 2;
  }
  try {
    return pgolf::inspect(argv[2], container, budget, code);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf-artifact: %s\n", e.what());
    return 1;
  }
}
