// The artifact containers (posttrain §7.1-7.3): every one round-trips random quantised states bit-exactly;
// the standard container is byte shuffle + brotli-11 and zstd22 is zstd level 22 of the same archive; the
// PGRP layout is checked field by field against an independent construction in this file (a brute-force
// nearest-neighbour chain in double precision, column-major bytes by loops); damaged, truncated and foreign
// artifacts are refused naming the file; a missing lrzip stops the pipeline build naming the package.
#include <gtest/gtest.h>

#ifdef PGOLF_HAVE_BROTLI
#include <brotli/encode.h>
#endif

#include <cstdlib>
#include <random>

#include "framework/artifact.h"
#include "framework/tensor_archive.h"
#include "quant/byte_shuffle.h"
#include "quant/lrzip.h"
#include "quant/nn_order.h"

namespace pgolf {
namespace {

bool have_brotli() { return SchemaCatalog::get().find("compressor", "brotli") != nullptr; }

torch::Tensor codes(int64_t rows, int64_t cols, int lo, int hi, uint32_t seed) {
  torch::manual_seed(seed);
  return torch::randint(lo, hi + 1, {rows, cols}, torch::kInt8);
}

// A hand-made quantised state: int8 codes of the PGRP groups (odd shapes, layers 0, 1, 10 so that name order
// and layer order differ), fp16 scales, a 1-D int8 gate, fp32 / bf16 passthrough.
QuantizedState sample_state(uint32_t seed = 1) {
  QuantizedState q;
  auto add = [&](const std::string& n, torch::Tensor t) { q.tensors.emplace_back(n, std::move(t)); };
  add("tok_emb.weight.q", codes(13, 5, -3, 3, seed));
  add("tok_emb.weight.scale", torch::rand({13}).to(torch::kFloat16));
  for (int layer : {0, 10, 1}) {
    const std::string b = "blocks." + std::to_string(layer) + ".";
    add(b + "attn.c_q.weight.q", codes(7, 5, -31, 31, seed + layer + 1));
    add(b + "attn.c_k.weight.q", codes(3, 5, -31, 31, seed + layer + 2));
    add(b + "mlp.fc.weight.q", codes(9, 5, -2, 2, seed + layer + 3));
    add(b + "mlp.fc.weight.scale", torch::rand({9}).to(torch::kFloat16));
    add(b + "attn.gate.q", codes(1, 3, -127, 127, seed).reshape({3}));
  }
  add("blocks.0.attn_scale", torch::rand({5}));
  add("skip_weights", torch::rand({2, 5}).to(torch::kBFloat16));
  q.meta = Json{{"quantizer", "by hand"}, {"tensors", {{"tok_emb.weight", {{"scheme", "int6"}}}}}};
  return q;
}

std::map<std::string, torch::Tensor> by_name(const NamedTensors& t) { return {t.begin(), t.end()}; }

void expect_same(const QuantizedState& a, const QuantizedState& b, const std::string& what) {
  EXPECT_EQ(a.meta, b.meta) << what;
  const auto x = by_name(a.tensors), y = by_name(b.tensors);
  ASSERT_EQ(x.size(), y.size()) << what;
  for (const auto& [n, t] : x) {
    ASSERT_TRUE(y.count(n)) << what << ": " << n << " lost";
    const torch::Tensor u = y.at(n);
    EXPECT_EQ(t.scalar_type(), u.scalar_type()) << what << ": " << n;
    EXPECT_EQ(t.sizes(), u.sizes()) << what << ": " << n;
    EXPECT_EQ(0, std::memcmp(t.contiguous().data_ptr(), u.contiguous().data_ptr(), t.numel() * t.element_size()))
        << what << ": " << n << " differs";
  }
}

std::vector<Json> containers() {
  std::vector<Json> c = {Json{{"name", "archive"}}, Json{{"name", "zstd22"}}};
  if (have_brotli()) c.push_back(Json{{"name", "standard"}});
  if (have_brotli() && !find_program("lrzip").empty()) c.push_back(Json{{"name", "pergroup"}});
  return c;
}

TEST(ArtifactContainer, EveryContainerRoundTripsBitExact) {
  ASSERT_FALSE(find_program("lrzip").empty()) << "lrzip is missing: run scripts/setup.sh (Debian package lrzip)";
  ASSERT_TRUE(have_brotli()) << "this build has no brotli (libbrotli-dev)";
  for (const Json& spec : containers())
    for (uint32_t seed : {1u, 7u}) {
      const auto c = make_container(spec, "test.container");
      const QuantizedState q = sample_state(seed);
      const std::string bytes = c->pack(q);
      expect_same(q, c->unpack(bytes, "a.bin"), spec.dump());
      EXPECT_EQ(bytes, c->pack(q)) << spec.dump() << ": not deterministic";
    }
}

TEST(ArtifactContainer, StandardIsShuffledBrotli11AndZstd22IsPlainZstd) {
  ASSERT_TRUE(have_brotli());
  const QuantizedState q = sample_state();
  const std::string archive = serialize_state(q);
  // BSHF by hand on an odd length: even offsets, then odd offsets (lane p has floor(n/2) + (p < n mod 2) bytes).
  EXPECT_EQ(byte_shuffle("abcdefg", 2), std::string("BSHF\x02", 5) + "acegbdf");
  std::string lanes = "BSHF";
  lanes.push_back('\x02');
  for (size_t i = 0; i < archive.size(); i += 2) lanes.push_back(archive[i]);
  for (size_t i = 1; i < archive.size(); i += 2) lanes.push_back(archive[i]);
  const std::string standard = make_container(Json{{"name", "standard"}}, "t")->pack(q);
#ifdef PGOLF_HAVE_BROTLI
  // The library itself, quality 11, window 2^22, on the shuffled bytes.
  std::string want(BrotliEncoderMaxCompressedSize(lanes.size()), '\0');
  size_t n = want.size();
  ASSERT_TRUE(BrotliEncoderCompress(11, 22, BROTLI_MODE_GENERIC, lanes.size(), reinterpret_cast<const uint8_t*>(lanes.data()),
                                    &n, reinterpret_cast<uint8_t*>(want.data())));
  want.resize(n);
  EXPECT_EQ(standard, want);
#endif
  const auto zstd = make_compressor(Json{{"name", "zstd"}, {"level", 22}}, "t");
  EXPECT_EQ(make_container(Json{{"name", "zstd22"}}, "t")->pack(q), zstd->compress(archive));
}

// The spec's chain, written independently: distances in double by loops, first strictly smaller wins.
std::vector<int64_t> brute_force_order(const torch::Tensor& m) {
  const int64_t n = m.size(0), d = m.size(1);
  const auto a = m.to(torch::kInt32).contiguous();
  const int32_t* p = a.data_ptr<int32_t>();
  std::vector<int64_t> order = {0};
  std::vector<bool> used(n, false);
  used[0] = true;
  while (static_cast<int64_t>(order.size()) < n) {
    const int64_t last = order.back();
    int64_t best = -1;
    double best_d = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (used[j]) continue;
      double dist = 0;
      for (int64_t k = 0; k < d; ++k) dist += std::abs(p[j * d + k] - p[last * d + k]);
      if (best < 0 || dist < best_d) best = j, best_d = dist;
    }
    used[best] = true;
    order.push_back(best);
  }
  return order;
}

TEST(ArtifactPergroup, NearestNeighbourOrderMatchesBruteForce) {
  // Values in a narrow range make many ties: they must go to the lowest index.
  for (auto [rows, cols, range, seed] : std::vector<std::tuple<int, int, int, int>>{
           {1, 4, 3, 1}, {2, 3, 1, 2}, {17, 5, 1, 3}, {64, 9, 2, 4}, {200, 33, 31, 5}, {301, 64, 127, 6}}) {
    const torch::Tensor m = codes(rows, cols, -range, range, seed);
    const torch::Tensor got = nearest_neighbour_order(m);
    const std::vector<int64_t> want = brute_force_order(m);
    ASSERT_EQ(got.numel(), rows);
    EXPECT_EQ(std::vector<int64_t>(got.data_ptr<int64_t>(), got.data_ptr<int64_t>() + rows), want)
        << rows << "x" << cols << " range " << range;
  }
}

uint32_t u32_at(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

// Column-major bytes of m with its rows taken in `order`, by loops.
std::string column_major(const torch::Tensor& m, const std::vector<int64_t>& order) {
  std::string out;
  const auto a = m.contiguous();
  const int8_t* p = a.data_ptr<int8_t>();
  for (int64_t c = 0; c < m.size(1); ++c)
    for (int64_t r : order) out.push_back(static_cast<char>(p[r * m.size(1) + c]));
  return out;
}

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST(ArtifactPergroup, StreamLayoutFieldByField) {
  ASSERT_FALSE(find_program("lrzip").empty()) << "lrzip is missing: run scripts/setup.sh (Debian package lrzip)";
  ASSERT_TRUE(have_brotli());
  const QuantizedState q = sample_state(3);
  const auto t = by_name(q.tensors);
  const std::string blob = make_container(Json{{"name", "pergroup"}}, "t")->pack(q);
  ASSERT_EQ(blob.substr(0, 4), "PGRP");
  ASSERT_EQ(u32_at(blob, 4), 9u);
  std::vector<std::string> s;
  size_t at = 8 + 9 * 4;
  for (int i = 0; i < 9; ++i) {
    const uint32_t len = u32_at(blob, 8 + 4 * i);
    s.push_back(blob.substr(at, len));
    at += len;
  }
  EXPECT_EQ(at, blob.size()) << "the lengths do not add up to the file";
  // Groups in the fixed order; layers 0, 1, 10 by index; sorted groups in NN order; all column-major.
  std::string perms;
  auto sorted_part = [&](const std::string& n) {
    const std::vector<int64_t> o = brute_force_order(t.at(n));
    for (int64_t v : o) perms += std::string{static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)};
    return column_major(t.at(n), o);
  };
  const std::vector<std::string> layers = {"blocks.0.", "blocks.1.", "blocks.10."};
  std::vector<std::string> want(7);
  want[0] = sorted_part("tok_emb.weight.q");
  for (const auto& b : layers) want[1] += column_major(t.at(b + "attn.c_k.weight.q"), identity(3));
  for (const auto& b : layers) want[2] += sorted_part(b + "attn.c_q.weight.q");
  for (const auto& b : layers) want[5] += sorted_part(b + "mlp.fc.weight.q");
  for (int g = 0; g < 7; ++g) {
    if (want[g].empty()) {
      EXPECT_TRUE(s[g].empty()) << "group " << g << " should be an empty stream";
      continue;
    }
    EXPECT_EQ(s[g].substr(0, 4), "LRZI") << "group " << g << " is not an lrzip stream";
    EXPECT_EQ(lrzip_decompress("lrzip", s[g]), want[g]) << "group " << g;
  }
  // Remainder: brotli (lgwin 24) of an archive with every non-group tensor and the manifest.
  const auto brotli = make_compressor(Json{{"name", "brotli"}}, "t");
  const QuantizedState rest = deserialize_state(brotli->decompress(s[7]), "remainder");
  std::vector<std::string> names;
  for (const auto& [n, x] : rest.tensors) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"blocks.0.attn.gate.q", "blocks.0.attn_scale", "blocks.0.mlp.fc.weight.scale",
                                             "blocks.1.attn.gate.q", "blocks.1.mlp.fc.weight.scale",
                                             "blocks.10.attn.gate.q", "blocks.10.mlp.fc.weight.scale",
                                             "skip_weights", "tok_emb.weight.scale"}));
  EXPECT_EQ(rest.meta["m"], q.meta);
  EXPECT_EQ(rest.meta["s"][2][2], Json::array({"blocks.10.attn.c_q.weight.q", 7, 5}));
  EXPECT_EQ(rest.meta["s"][0][0], Json::array({"tok_emb.weight.q", 13, 5}));
  // Permutations: uint16 LE, tok_emb, then c_q layers, then mlp.fc layers.
  EXPECT_EQ(brotli->decompress(s[8]), perms);
  EXPECT_EQ(perms.size(), 2u * (13 + 3 * 7 + 3 * 9));
}

void expect_refused(const Container& c, const std::string& bytes, const std::string& why) {
  try {
    c.unpack(bytes, "run/artifact.bin");
    ADD_FAILURE() << why << ": accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("run/artifact.bin"), std::string::npos) << why << ": " << e.what();
  }
}

TEST(ArtifactContainer, DamagedTruncatedAndForeignArtifactsAreRefused) {
  ASSERT_FALSE(find_program("lrzip").empty()) << "lrzip is missing: run scripts/setup.sh (Debian package lrzip)";
  const QuantizedState q = sample_state(5);
  std::map<std::string, std::string> packed;
  for (const Json& spec : containers()) packed[spec["name"]] = make_container(spec, "t")->pack(q);
  for (const Json& spec : containers()) {
    const auto c = make_container(spec, "t");
    const std::string good = packed[spec["name"]], name = spec["name"];
    for (size_t n : {size_t{0}, size_t{3}, size_t{8}, good.size() / 2, good.size() - 1}) expect_refused(*c, good.substr(0, n), name + " truncated to " + std::to_string(n));
    for (size_t at : {size_t{0}, size_t{5}, size_t{9}, size_t{20}, good.size() / 3, good.size() / 2, good.size() - 2}) {
      std::string bad = good;
      bad[at] = static_cast<char>(bad[at] ^ 0x5A);
      expect_refused(*c, bad, name + " byte " + std::to_string(at) + " flipped");
    }
    expect_refused(*c, good + "x", name + " with a trailing byte");
    for (const auto& [other, bytes] : packed)
      if (other != name) expect_refused(*c, bytes, name + " reading a " + other + " artifact");
  }
}

TEST(ArtifactPergroup, MissingLrzipIsAConfigErrorNamingThePackage) {
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  setenv("PATH", "/nonexistent-pgolf-dir", 1);
  std::string msg;
  try {
    make_container(Json{{"name", "pergroup"}}, "pipeline[4].container");
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(msg.find("pipeline[4].container.lrzip"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Debian package lrzip"), std::string::npos) << msg;
  EXPECT_THROW(make_container(Json{{"name", "pergroup"}, {"lrzip", "/no/such/lrzip"}}, "c"), ConfigError);
}

}  // namespace
}  // namespace pgolf
