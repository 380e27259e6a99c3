// The per-group serializer of #1855 (posttrain §7.3, blob magic "PGRP"). The int8 codes of the 7 role groups
// (tok_emb, c_k, c_q, c_v, attn.proj, mlp.fc, mlp.proj) are laid out per group: rows of tok_emb / c_q / mlp.fc
// in greedy L1 nearest-neighbour order (uint16 permutations kept), every matrix column-major, the group's
// matrices concatenated by layer, each group through `lrzip -z -L 9` (one process per group, in parallel).
// Everything else (scales, passthrough, LQER factors, gates) is the remainder: a tensor archive through brotli-11
// with lgwin 24, whose meta also holds the quantiser's meta, the shape manifest and a CRC-32 of every other
// stream's decoded bytes. Layout: "PGRP" · u32 n_streams (9) · n × u32 lengths · the streams (7 groups,
// remainder, permutations), all little-endian.
#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <thread>

#include "framework/artifact.h"
#include "framework/tensor_archive.h"
#include "quant/lrzip.h"
#include "quant/nn_order.h"

namespace pgolf {
namespace {

constexpr int kGroups = 7;
constexpr uint32_t kStreams = kGroups + 2;
struct GroupSpec {
  const char* key;
  bool sorted;
};
constexpr std::array<GroupSpec, kGroups> kSpec = {{{"tok_emb.weight.q", true},
                                                   {"attn.c_k.weight.q", false},
                                                   {"attn.c_q.weight.q", true},
                                                   {"attn.c_v.weight.q", false},
                                                   {"attn.proj.weight.q", false},
                                                   {"mlp.fc.weight.q", true},
                                                   {"mlp.proj.weight.q", false}}};

// "blocks.<i>.rest" -> i (and rest), else -1 (and the name).
int64_t layer_of(const std::string& name, std::string* rest) {
  *rest = name;
  if (name.rfind("blocks.", 0) != 0) return -1;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7 || name.find_first_not_of("0123456789", 7) != dot) return -1;
  *rest = name.substr(dot + 1);
  return std::stoll(name.substr(7, dot - 7));
}

int group_of(const std::string& name, const torch::Tensor& t) {
  if (t.scalar_type() != torch::kInt8 || t.dim() != 2) return -1;
  std::string key;
  const int64_t layer = layer_of(name, &key);
  for (int g = 0; g < kGroups; ++g)
    if (key == kSpec[g].key && (g == 0) == (layer < 0)) return g;
  return -1;
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// fn(i) for i < n, each on its own thread (each runs one lrzip process); rethrows the first failure.
void parallel_for_each(int n, const std::function<void(int)>& fn) {
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::string stream_name(uint32_t i) {
  return i < kGroups ? std::string("group ") + kSpec[i].key : i == kGroups ? "remainder" : "permutations";
}

class PerGroupContainer : public Container {
 public:
  PerGroupContainer(std::string lrzip, std::shared_ptr<Compressor> remainder, std::shared_ptr<Compressor> perms)
      : lrzip_(std::move(lrzip)), remainder_(std::move(remainder)), perms_(std::move(perms)) {}

  std::string pack(const QuantizedState& q) const override;
  QuantizedState unpack(const std::string& bytes, const std::string& what) const override;
  std::string part_of(const std::string& name, const torch::Tensor& t) const override {
    const int g = group_of(name, t);
    return stream_name(g < 0 ? kGroups : g);
  }
  std::vector<std::pair<std::string, int64_t>> parts(const std::string& bytes, const std::string& what) const override {
    std::vector<std::pair<std::string, int64_t>> out;
    const auto streams = split(bytes, what);
    for (uint32_t i = 0; i < kStreams; ++i) out.emplace_back(stream_name(i), static_cast<int64_t>(streams[i].size()));
    return out;
  }

 private:
  std::vector<std::string> split(const std::string& bytes, const std::string& what) const;
  QuantizedState rebuild(const QuantizedState& remainder, const std::vector<std::string>& blobs, const std::string& perms,
                         const std::string& what) const;

  std::string lrzip_;
  std::shared_ptr<Compressor> remainder_, perms_;
};

std::string PerGroupContainer::pack(const QuantizedState& q) const {
  NamedTensors sorted = q.tensors;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::array<NamedTensors, kGroups> groups;
  QuantizedState rest;
  for (const auto& e : sorted) {
    const int g = group_of(e.first, e.second);
    (g < 0 ? rest.tensors : groups[g]).push_back(e);
  }
  std::vector<std::string> blobs(kGroups);
  std::string perms;
  Json manifest = Json::array();
  for (int g = 0; g < kGroups; ++g) {
    std::string unused;
    std::stable_sort(groups[g].begin(), groups[g].end(),
                     [&](const auto& a, const auto& b) { return layer_of(a.first, &unused) < layer_of(b.first, &unused); });
    Json shapes = Json::array();
    for (const auto& [name, t0] : groups[g]) {
      torch::Tensor t = t0.detach().to(torch::kCPU).contiguous();
      if (kSpec[g].sorted) {
        if (t.size(0) > 65536)
          throw std::runtime_error("pergroup: '" + name + "' has " + std::to_string(t.size(0)) +
                                   " rows; its uint16 row permutation holds at most 65536");
        const torch::Tensor perm = nearest_neighbour_order(t);
        t = t.index_select(0, perm);
        const torch::Tensor p16 = perm.to(torch::kInt32);
        for (int64_t i = 0; i < p16.numel(); ++i) {
          const auto v = static_cast<uint16_t>(p16.data_ptr<int32_t>()[i]);
          perms.push_back(static_cast<char>(v & 0xFF));
          perms.push_back(static_cast<char>(v >> 8));
        }
      }
      const torch::Tensor cm = t.t().contiguous();  // column-major
      blobs[g].append(static_cast<const char*>(cm.data_ptr()), cm.numel());
      shapes.push_back(Json::array({name, t.size(0), t.size(1)}));
    }
    manifest.push_back(shapes);
  }
  Json crc = Json::array();
  for (const auto& b : blobs) crc.push_back(crc32(b.data(), b.size()));
  crc.push_back(crc32(perms.data(), perms.size()));
  rest.meta = Json{{"m", q.meta}, {"s", manifest}, {"crc", crc}};
  const std::string rest_bytes = serialize_state(rest);
  std::vector<std::string> streams(kStreams);
  // The slowest group bounds the time. The two small brotli streams run one after the other on one thread:
  // the 16-core GPU machine crashed while two brotli encoders started at once (Ubuntu 24.04's libbrotli 1.1.0;
  // the cause is not confirmed, and serialising them costs nothing).
  parallel_for_each(kGroups + 1, [&](int i) {
    if (i < kGroups && !blobs[i].empty()) streams[i] = lrzip_compress(lrzip_, blobs[i]);
    if (i < kGroups) return;
    streams[kGroups] = remainder_->compress(rest_bytes);
    if (!perms.empty()) streams[kGroups + 1] = perms_->compress(perms);
  });
  std::string out = "PGRP";
  put_u32(out, kStreams);
  for (const auto& s : streams) put_u32(out, static_cast<uint32_t>(s.size()));
  for (const auto& s : streams) out += s;
  return out;
}

std::vector<std::string> PerGroupContainer::split(const std::string& bytes, const std::string& what) const {
  if (bytes.size() < 4 || bytes.compare(0, 4, "PGRP") != 0)
    throw std::runtime_error(what + ": not a per-group (PGRP) artifact: it does not begin with \"PGRP\" (is the "
                             "recipe's container the one that wrote it?)");
  const size_t head = 8 + 4 * kStreams;
  if (bytes.size() < 8 || get_u32(bytes.data() + 4) != kStreams)
    throw std::runtime_error(what + ": damaged PGRP artifact: " +
                             (bytes.size() < 8 ? std::string("truncated in the header")
                                               : "stream count " + std::to_string(get_u32(bytes.data() + 4)) + ", expected 9"));
  if (bytes.size() < head)
    throw std::runtime_error(what + ": damaged PGRP artifact: truncated in the stream lengths (" +
                             std::to_string(bytes.size()) + " bytes)");
  std::vector<std::string> streams(kStreams);
  size_t pos = head;
  for (uint32_t i = 0; i < kStreams; ++i) {
    const size_t len = get_u32(bytes.data() + 8 + 4 * i);
    if (len > bytes.size() - pos)
      throw std::runtime_error(what + ": damaged PGRP artifact: truncated: stream " + std::to_string(i + 1) + " (" +
                               stream_name(i) + ") needs " + std::to_string(len) + " bytes, " +
                               std::to_string(bytes.size() - pos) + " remain");
    streams[i] = bytes.substr(pos, len);
    pos += len;
  }
  if (pos != bytes.size())
    throw std::runtime_error(what + ": damaged PGRP artifact: " + std::to_string(bytes.size() - pos) +
                             " unexpected bytes after the last stream");
  return streams;
}

QuantizedState PerGroupContainer::unpack(const std::string& bytes, const std::string& what) const {
  const std::vector<std::string> streams = split(bytes, what);
  auto decode = [&](uint32_t i, const std::function<std::string(const std::string&)>& fn) {
    try {
      return fn(streams[i]);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": damaged PGRP artifact: stream " + std::to_string(i + 1) + " (" +
                               stream_name(i) + "): " + e.what());
    }
  };
  std::vector<std::string> raw(kStreams);
  parallel_for_each(kStreams, [&](int i) {
    raw[i] = decode(i, [&](const std::string& s) {
      if (i == kGroups) return remainder_->decompress(s);  // never empty: it holds the manifest
      return s.empty() ? s : i < kGroups ? lrzip_decompress(lrzip_, s) : perms_->decompress(s);
    });
  });
  const QuantizedState rest = deserialize_state(raw[kGroups], what + " (remainder stream)");
  return rebuild(rest, std::vector<std::string>(raw.begin(), raw.begin() + kGroups), raw[kGroups + 1], what);
}

QuantizedState PerGroupContainer::rebuild(const QuantizedState& rest, const std::vector<std::string>& blobs,
                                          const std::string& perms, const std::string& what) const {
  const auto bad = [&](const std::string& m) { return std::runtime_error(what + ": damaged PGRP artifact: " + m); };
  const Json& meta = rest.meta;
  if (!meta.is_object() || !meta.contains("m") || !meta.contains("s") || !meta.contains("crc") || meta["s"].size() != kGroups ||
      meta["crc"].size() != kStreams - 1)
    throw bad("the remainder's meta lacks the quantiser meta, shape manifest or checksums");
  for (uint32_t i = 0; i < kStreams - 1; ++i) {
    const std::string& b = i < kGroups ? blobs[i] : perms;
    if (meta["crc"][i].get<uint32_t>() != crc32(b.data(), b.size()))
      throw bad("stream " + std::to_string(i < kGroups ? i + 1 : kStreams) + " (" +
                stream_name(i < kGroups ? i : kStreams - 1) + "): checksum mismatch (the bytes were altered)");
  }
  QuantizedState q;
  q.tensors = rest.tensors;
  q.meta = meta["m"];
  size_t perm_at = 0;
  for (int g = 0; g < kGroups; ++g) {
    size_t at = 0;
    for (const auto& e : meta["s"][g]) {
      const std::string name = e.at(0).get<std::string>();
      const int64_t rows = e.at(1).get<int64_t>(), cols = e.at(2).get<int64_t>();
      if (rows < 0 || cols < 0 || static_cast<size_t>(rows * cols) > blobs[g].size() - at)
        throw bad("'" + name + "' claims more bytes than group " + kSpec[g].key + " holds");
      torch::Tensor cm = torch::empty({cols, rows}, torch::kInt8);
      std::memcpy(cm.data_ptr(), blobs[g].data() + at, rows * cols);
      at += rows * cols;
      torch::Tensor t = cm.t().contiguous();
      if (kSpec[g].sorted) {
        if (perms.size() - perm_at < static_cast<size_t>(2 * rows)) throw bad("the permutation stream is too short");
        torch::Tensor inv = torch::full({rows}, -1, torch::kInt64);
        for (int64_t i = 0; i < rows; ++i, perm_at += 2) {
          const int64_t p = static_cast<uint8_t>(perms[perm_at]) | (static_cast<uint8_t>(perms[perm_at + 1]) << 8);
          if (p >= rows || inv.data_ptr<int64_t>()[p] >= 0) throw bad("the permutation of '" + name + "' is not one");
          inv.data_ptr<int64_t>()[p] = i;
        }
        t = t.index_select(0, inv);
      }
      q.tensors.emplace_back(name, t);
    }
    if (at != blobs[g].size()) throw bad(std::string("group ") + kSpec[g].key + " holds bytes its manifest does not name");
  }
  if (perm_at != perms.size()) throw bad("the permutation stream holds more than the sorted groups need");
  std::sort(q.tensors.begin(), q.tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return q;
}

PGOLF_REGISTER(
    ContainerRegistry, "pergroup",
    Schema().string("lrzip", "lrzip", "the lrzip program (Debian package lrzip), a name on PATH or a path"),
    [](const Config& c) -> std::shared_ptr<Container> {
      const std::string lrzip = c.s("lrzip");
      if (find_program(lrzip).empty())
        throw ConfigError(c.key_path("lrzip") + ": the pergroup container runs the program '" + lrzip +
                          "', which is not on PATH; install the Debian package lrzip (apt-get install lrzip, or "
                          "scripts/setup.sh), or choose another container");
      return std::make_shared<PerGroupContainer>(
          lrzip, make_compressor(Json{{"name", "brotli"}, {"quality", 11}, {"lgwin", 24}}, c.key_path("remainder")),
          make_compressor(Json{{"name", "brotli"}, {"quality", 11}}, c.key_path("permutations")));
    },
    "spec 7.3 (#1855): PGRP, 7 role groups through lrzip (NN row order, column-major), remainder brotli lgwin 24");
PGOLF_USES("container", "pergroup", "compressor", "brotli");

}  // namespace
}  // namespace pgolf
