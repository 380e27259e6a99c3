// The quantized-state container: exact layout (hand-assembled bytes, CRC from Python's zlib.crc32), round
// trips for every dtype, determinism, and rejection of every truncation and every single-byte corruption.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "framework/artifact.h"

namespace {

using pgolf::Json;
using pgolf::QuantizedState;

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return s;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

// One tensor of every supported dtype, with edge values, odd shapes, a scalar and an empty tensor.
QuantizedState every_dtype() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  QuantizedState q;
  q.tensors = {
      {"f32", torch::tensor({1.5f, -2.25f, 3e38f, 1e-45f, -0.0f, inf, nan}).reshape({7, 1})},
      {"f16", torch::tensor({1.5f, -2.0f, 65504.0f, 0.0999755859375f}).to(torch::kFloat16).reshape({2, 2})},
      {"bf16", torch::tensor({1.0f, -2.5f, 0.0078125f}).to(torch::kBFloat16)},
      {"i8", torch::tensor({-128, 127, 0, -1}, torch::kInt8).reshape({1, 2, 2})},
      {"u8", torch::tensor({0, 255, 17}, torch::kUInt8)},
      {"i16", torch::tensor({-32768, 32767, 5}, torch::kInt16)},
      {"i32", torch::tensor({std::numeric_limits<int32_t>::min(), 7}, torch::kInt32)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}, torch::kInt64)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::full({}, 0.25f)},
      {"empty", torch::zeros({0, 3}, torch::kFloat16)},
      {"transposed", torch::arange(6, torch::kInt32).reshape({2, 3}).t()},  // non-contiguous view
  };
  q.meta = {{"quantizer", "x"}, {"tensors", {{"zeta", 1}, {"alpha", {{"shape", {2, 3}}, {"s", "ü"}}}}}};
  return q;
}

TEST(Container, ExactLayoutOfASmallState) {
  QuantizedState q;
  q.tensors = {{"a", torch::tensor({1, -1}, torch::kInt8)}};
  // "PGQS" · version 1 · meta length 2 · "{}" · 1 tensor · name length 1 · "a" · dtype 4 (int8) · rank 1 ·
  // dim 2 · 2 bytes · 01 FF · CRC-32 0x38f64d87 (zlib.crc32 of the bytes before it), little-endian.
  const std::string want = unhex(
      "504751530100000002000000000000007b7d01000000010000006104010200000000000000020000000000000001ff874df638");
  EXPECT_EQ(pgolf::serialize_state(q), want);
  const QuantizedState back = pgolf::deserialize_state(want, "t.bin");
  ASSERT_EQ(back.tensors.size(), 1u);
  EXPECT_EQ(back.tensors[0].first, "a");
  EXPECT_TRUE(same_bits(back.tensors[0].second, torch::tensor({1, -1}, torch::kInt8)));
  EXPECT_EQ(back.meta, Json::object());
}

TEST(Container, RoundTripsEveryDtypeBitExact) {
  const QuantizedState q = every_dtype();
  const QuantizedState back = pgolf::deserialize_state(pgolf::serialize_state(q), "t.bin");
  ASSERT_EQ(back.tensors.size(), q.tensors.size());
  for (size_t i = 0; i < q.tensors.size(); ++i) {
    SCOPED_TRACE(q.tensors[i].first);
    EXPECT_EQ(back.tensors[i].first, q.tensors[i].first);
    EXPECT_TRUE(same_bits(back.tensors[i].second, q.tensors[i].second));
  }
  EXPECT_EQ(back.tensors[11].second.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(back.tensors[11].second[2][1].item<int32_t>(), 5);  // transposed: [i][j] = 3*j + i
  EXPECT_EQ(back.tensors[9].second.dim(), 0);
  EXPECT_EQ(back.meta.dump(), q.meta.dump());  // key order too
}

TEST(Container, DeterministicBytes) {
  const std::string a = pgolf::serialize_state(every_dtype()), b = pgolf::serialize_state(every_dtype());
  EXPECT_EQ(a, b);
  // Serialise → deserialise → serialise reproduces the bytes (contiguity does not leak into them).
  EXPECT_EQ(pgolf::serialize_state(pgolf::deserialize_state(a, "t.bin")), a);
}

TEST(Container, RejectsEveryTruncationNamingTheFile) {
  const std::string full = pgolf::serialize_state(every_dtype());
  for (size_t n = 0; n < full.size(); ++n) {
    try {
      pgolf::deserialize_state(full.substr(0, n), "run/artifact.bin");
      ADD_FAILURE() << "accepted a container truncated to " << n << " of " << full.size() << " bytes";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("run/artifact.bin"), std::string::npos) << e.what();
    }
  }
}

TEST(Container, RejectsEverySingleByteCorruption) {
  const std::string full = pgolf::serialize_state(every_dtype());
  for (size_t i = 0; i < full.size(); ++i) {
    std::string bad = full;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    try {
      pgolf::deserialize_state(bad, "run/artifact.bin");
      ADD_FAILURE() << "accepted a container with byte " << i << " altered";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("run/artifact.bin"), std::string::npos) << e.what();
    }
  }
}

TEST(Container, SaysWhatIsWrong) {
  QuantizedState q;
  q.tensors = {{"a", torch::tensor({1, -1}, torch::kInt8)}};
  const std::string good = pgolf::serialize_state(q);
  auto message = [](const std::string& b) {
    try {
      pgolf::deserialize_state(b, "x.bin");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("PK\x03\x04 a zip file").find("PGQS"), std::string::npos);
  std::string v = good;
  v[4] = 2;  // format version 2
  EXPECT_NE(message(v).find("version 2"), std::string::npos);
  std::string d = good;
  d[27] = 42;  // the dtype byte (offset 4+4+8+2+4+4+1 = 27)
  EXPECT_NE(message(d).find("unknown dtype code 42"), std::string::npos);
  std::string c = good;
  c[45] = 0x7f;  // a data byte: only the checksum can tell
  EXPECT_NE(message(c).find("checksum"), std::string::npos);
  EXPECT_NE(message(good.substr(0, 40)).find("truncated"), std::string::npos);
}

TEST(Container, SerializeRejectsWhatItCannotStore) {
  QuantizedState q;
  q.tensors = {{"w", torch::zeros({2}, torch::kFloat64)}};
  try {
    pgolf::serialize_state(q);
    ADD_FAILURE() << "float64 accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
  }
  q.tensors = {{"w", torch::zeros({2})}, {"w", torch::zeros({2})}};
  EXPECT_THROW(pgolf::serialize_state(q), std::runtime_error);
}

TEST(Container, FullPipelineThroughQuantizerAndCompressor) {
  // quantise → serialise → compress → decompress → deserialise → dequantise equals dequantising directly.
  Json qcfg = pgolf::SchemaCatalog::get().find("quantizer", "int8_row")->validate(Json::object(), "q", "t");
  qcfg["name"] = "int8_row";
  auto quantizer = pgolf::QuantizerRegistry::get().build(pgolf::Config(qcfg, "q"));
  auto compressor = pgolf::CompressorRegistry::get().build(pgolf::Config(
      Json{{"name", "zlib"}, {"level", 9}, {"byte_shuffle", true}}, "c"));
  torch::manual_seed(1);
  pgolf::NamedTensors state = {{"tok_emb.weight", torch::randn({300, 256}) * 0.02},
                               {"blocks.0.attn_scale", torch::rand({256})},
                               {"blocks.0.mlp.fc.weight", torch::randn({64, 32})},
                               {"step", torch::tensor({12345}, torch::kInt64)}};
  const QuantizedState q = quantizer->quantize_state(state);
  const std::string blob = compressor->compress(pgolf::serialize_state(q));
  const auto direct = quantizer->dequantize(q);
  const auto reloaded = quantizer->dequantize(pgolf::deserialize_state(compressor->decompress(blob), "a.bin"));
  ASSERT_EQ(direct.size(), reloaded.size());
  for (size_t i = 0; i < direct.size(); ++i) {
    EXPECT_EQ(direct[i].first, reloaded[i].first);
    EXPECT_TRUE(same_bits(direct[i].second, reloaded[i].second)) << direct[i].first;
  }
}

}  // namespace
