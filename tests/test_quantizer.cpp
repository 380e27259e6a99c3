// int8_row quantiser. Expected codes, scales and dequantised values come from a plain-Python model of the
// formulas with fp32 arithmetic emulated exactly (Fractions): quantile rank = fp32(q)·(n−1) in fp32, linear
// interpolation, s = max(clip/127, 1/127) in fp32, codes = clamp(round_half_even(clamp(w, ±clip)/s), ±127),
// fp16(s) stored, dequant = codes·fp32(fp16(s)). A second test uses torch::quantile as the oracle.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "framework/artifact.h"

namespace {

using pgolf::Json;

std::shared_ptr<pgolf::Quantizer> make(const Json& keys = Json::object()) {
  const pgolf::Schema* schema = pgolf::SchemaCatalog::get().find("quantizer", "int8_row");
  Json v = Json{{"name", "int8_row"}};
  const Json valid = schema->validate(keys, "artifact.quantizer", "test");  // items() must not outlive it
  for (auto& [k, x] : valid.items()) v[k] = x;
  return pgolf::QuantizerRegistry::get().build(pgolf::Config(v, "artifact.quantizer"));
}

const torch::Tensor& find(const pgolf::NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return t;
  throw std::runtime_error("test: no tensor " + name);
}

uint16_t half_bits(const torch::Tensor& t, int64_t i) {
  uint16_t b;
  std::memcpy(&b, static_cast<const char*>(t.contiguous().data_ptr()) + 2 * i, 2);
  return b;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

constexpr int64_t kN = 40000;  // 2 × 40000 = 80000 > 65536: quantised

// Row 0: k/256 with |k| ≤ 127 plus outliers 3, −2.5, 2 (clip interpolates between 2.5 and 3);
// row 1: |w| ≤ 50/8192, so clip/127 < 1/127 and the scale floor applies. Exact in fp32 and bf16.
torch::Tensor hand_matrix() {
  torch::Tensor w = torch::empty({2, kN});
  auto a = w.accessor<float, 2>();
  for (int64_t j = 0; j < kN; ++j) {
    a[0][j] = j == 5 ? 3.0f : j == 100 ? -2.5f : j == 7 ? 2.0f : static_cast<float>((j * 37) % 255 - 127) / 256.0f;
    a[1][j] = static_cast<float>((j * 13) % 101 - 50) / 8192.0f;
  }
  return w;
}

int64_t code_hash(const torch::Tensor& codes) {  // Σ code[j]·(j+1), as the Python script sums it
  int64_t h = 0;
  const int8_t* c = codes.contiguous().data_ptr<int8_t>();
  for (int64_t j = 0; j < codes.numel(); ++j) h += static_cast<int64_t>(c[j]) * (j + 1);
  return h;
}

int64_t abs_sum(const torch::Tensor& codes) { return codes.to(torch::kInt64).abs().sum().item<int64_t>(); }

TEST(Quantizer, HandMadeRowsGiveExactCodesAndScales) {
  const torch::Tensor w = hand_matrix();
  const auto q = make()->quantize_state({{"blocks.0.mlp.fc.weight", w}});
  ASSERT_EQ(q.tensors.size(), 2u);
  const torch::Tensor& codes = find(q.tensors, "blocks.0.mlp.fc.weight.q");
  const torch::Tensor& scale = find(q.tensors, "blocks.0.mlp.fc.weight.scale");
  ASSERT_EQ(codes.scalar_type(), torch::kInt8);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{2, kN}));
  ASSERT_EQ(scale.scalar_type(), torch::kFloat16);
  ASSERT_EQ(scale.sizes(), (std::vector<int64_t>{2}));
  // Row 0: rank = fp32(0.9999984)·39999 = 39998.9375 -> clip = 2.5 + 0.9375·0.5 = 2.96875,
  // s = 2.96875/127 = 0.0233759842813015 (fp32) -> fp16 0x25fc = 0.02337646484375.
  EXPECT_EQ(half_bits(scale, 0), 0x25fc);
  // Row 1: clip = 50/8192, clip/127 < 1/127 -> s = fp32(1/127) -> fp16 0x2008 = 0.00787353515625.
  EXPECT_EQ(half_bits(scale, 1), 0x2008);
  const auto c = codes.accessor<int8_t, 2>();
  const int64_t idx[] = {0, 1, 2, 5, 7, 100, 255, 39999};
  const int want0[] = {-21, -15, -9, 127, 86, -107, -21, 12};
  const int want1[] = {-1, -1, 0, 0, 1, 1, 1, 0};
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(c[0][idx[k]], want0[k]) << "row 0, column " << idx[k];
    EXPECT_EQ(c[1][idx[k]], want1[k]) << "row 1, column " << idx[k];
  }
  EXPECT_EQ(code_hash(codes[0]), -324620);  // every code of each row, checked at once
  EXPECT_EQ(abs_sum(codes[0]), 428522);
  EXPECT_EQ(code_hash(codes[1]), -22179);
  EXPECT_EQ(abs_sum(codes[1]), 14258);

  const auto m = q.meta["tensors"]["blocks.0.mlp.fc.weight"];
  EXPECT_EQ(m["scheme"], "int8_row");
  EXPECT_EQ(m["dtype"], "float32");
  EXPECT_EQ(m["shape"], Json::array({2, kN}));

  const auto deq = make()->dequantize(q);
  ASSERT_EQ(deq.size(), 1u);
  const torch::Tensor& d = deq[0].second;
  ASSERT_EQ(d.scalar_type(), torch::kFloat32);
  const auto da = d.accessor<float, 2>();
  const double want_deq0[] = {-0.49090576171875, -0.35064697265625, -0.21038818359375, 2.96881103515625,
                              2.0103759765625,   -2.50128173828125, -0.49090576171875, 0.280517578125};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(da[0][idx[k]], want_deq0[k]) << "column " << idx[k];
  EXPECT_EQ(da[1][0], -0.00787353515625f);
  EXPECT_EQ(da[1][7], 0.00787353515625f);
  // Every unclipped value comes back within s/2 plus the fp16 rounding of s, |code|·|fp16(s) − s|.
  const double s32[] = {0.0233759842813015, 0.007874015718698502}, s16[] = {0.02337646484375, 0.00787353515625};
  const double clip[] = {2.96875, 50.0 / 8192.0};
  const auto wa = w.accessor<float, 2>();
  for (int r = 0; r < 2; ++r) {
    double worst = -1;
    for (int64_t j = 0; j < kN; ++j) {
      if (std::abs(wa[r][j]) > clip[r]) continue;
      const double bound = s32[r] / 2 + std::abs(c[r][j]) * std::abs(s16[r] - s32[r]);
      worst = std::max(worst, std::abs(static_cast<double>(da[r][j]) - wa[r][j]) - bound);
    }
    EXPECT_LE(worst, 0.0) << "row " << r;
  }
}

TEST(Quantizer, ClipPercentileKey) {
  // 100 -> rank 39999, clip = max|w| = 3, s = fp32(3/127) -> fp16 0.02362060546875 (0x260c).
  const auto q = make({{"clip_percentile", 100.0}})->quantize_state({{"w", hand_matrix()}});
  const torch::Tensor& codes = find(q.tensors, "w.q");
  EXPECT_EQ(find(q.tensors, "w.scale")[0].item<float>(), 0.02362060546875f);
  EXPECT_EQ(codes[0][0].item<int8_t>(), -21);
  EXPECT_EQ(codes[0][5].item<int8_t>(), 127);
  EXPECT_EQ(codes[0][7].item<int8_t>(), 85);
  EXPECT_EQ(codes[0][100].item<int8_t>(), -106);
}

TEST(Quantizer, Bf16MatrixComesBackAsBf16) {
  const auto quant = make();
  const auto q = quant->quantize_state({{"w", hand_matrix().to(torch::kBFloat16)}});  // exact in bf16
  EXPECT_EQ(code_hash(find(q.tensors, "w.q")[0]), -324620);                 // same codes as fp32
  EXPECT_EQ(q.meta["tensors"]["w"]["dtype"], "bfloat16");
  const torch::Tensor d = quant->dequantize(q)[0].second;
  ASSERT_EQ(d.scalar_type(), torch::kBFloat16);
  // bf16 of the fp32 dequantised values (ties to even), from the script.
  EXPECT_EQ(d[0][0].item<float>(), -0.490234375f);
  EXPECT_EQ(d[0][5].item<float>(), 2.96875f);
  EXPECT_EQ(d[0][100].item<float>(), -2.5f);
  EXPECT_EQ(d[0][7].item<float>(), 2.015625f);
  EXPECT_EQ(d[0][39999].item<float>(), 0.28125f);
}

TEST(Quantizer, LargeVectorGetsOneFp32Scale) {
  constexpr int64_t n = 70000;
  torch::Tensor w = torch::empty({n});
  auto a = w.accessor<float, 1>();
  for (int64_t j = 0; j < n; ++j)
    a[j] = j == 11 ? -4.5f : j == 12 ? 4.0f : j == 13 ? 3.5f : static_cast<float>((j * 7919) % 2001 - 1000) / 4096.0f;
  const auto quant = make();
  const auto q = quant->quantize_state({{"ve.scale_table", w}});
  EXPECT_EQ(q.meta["tensors"]["ve.scale_table"]["scheme"], "int8_tensor");
  const torch::Tensor& codes = find(q.tensors, "ve.scale_table.q");
  const torch::Tensor& scale = find(q.tensors, "ve.scale_table.scale");
  ASSERT_EQ(scale.scalar_type(), torch::kFloat32);
  ASSERT_EQ(scale.numel(), 1);
  // rank 69998.890625 between 4 and 4.5: clip = 4.4453125; s = fp32(clip/127 in double).
  EXPECT_EQ(scale.item<float>(), 0.0350024588406086f);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{n}));
  EXPECT_EQ(code_hash(codes), 1435800);
  const int64_t idx[] = {0, 1, 11, 12, 13, 69999};
  const int want[] = {-7, 6, -127, 114, 100, 0};
  const float want_deq[] = {-0.24501721560955048f, 0.21001476049423218f, -4.4453125f,
                            3.9902803897857666f,   3.5002458095550537f,  0.0f};
  const torch::Tensor d = quant->dequantize(q)[0].second;
  for (int k = 0; k < 6; ++k) {
    EXPECT_EQ(codes[idx[k]].item<int8_t>(), want[k]) << idx[k];
    EXPECT_EQ(d[idx[k]].item<float>(), want_deq[k]) << idx[k];
  }
}

TEST(Quantizer, InterpolationRoundsOnceLikeTorchsFusedKernel) {
  // rank weight 0.890625 between a = 1442923/2^19 and b = 6362095/2^20: b + (w−1)(b−a) rounded once is
  // 5.704765796661377 (torch's CPU lerp kernel uses a fused multiply-add); rounding the product first would
  // give 5.704765319824219 and the scale 0.04491941258311272.
  torch::Tensor w = torch::full({70000}, 0.5f);
  w[0] = 1442923.0f / 524288.0f;
  w[1] = -6362095.0f / 1048576.0f;
  const auto q = make()->quantize_state({{"v", w}});
  EXPECT_EQ(find(q.tensors, "v.scale").item<float>(), 0.044919416308403015f);
}

TEST(Quantizer, OtherRanksUseOneScaleAndKeepTheirShape) {
  torch::manual_seed(3);
  const torch::Tensor w = torch::randn({4, 150, 150});
  const auto quant = make();
  const auto q = quant->quantize_state({{"bank", w}});
  EXPECT_EQ(q.meta["tensors"]["bank"]["scheme"], "int8_tensor");
  const torch::Tensor d = quant->dequantize(q)[0].second;
  EXPECT_EQ(d.sizes(), w.sizes());
  const float s = find(q.tensors, "bank.scale").item<float>();
  const float clip = 127.0f * s;  // within an ulp or two of the clip
  const torch::Tensor in = w.abs() <= clip * 0.999f;
  EXPECT_LE((d - w).abs().masked_select(in).max().item<float>(), s * 0.5f * 1.0001f);
}

TEST(Quantizer, MatchesTorchQuantileBaseline) {
  // The baseline written with torch ops (torch::quantile as the oracle) on random data.
  torch::manual_seed(0);
  torch::Tensor w = torch::randn({64, 1100}) * 0.05;
  w[3].zero_();               // an all-zero row: scale 1/127, codes 0
  w[5][17] = 4.0;             // an outlier that gets clipped
  const double qd = 99.99984 / 100.0;
  const torch::Tensor clip = torch::quantile(w.abs(), qd, 1);
  const torch::Tensor s = (clip / 127.0).clamp_min(1.0 / 127.0);
  const torch::Tensor clipped = torch::maximum(torch::minimum(w, clip.unsqueeze(1)), -clip.unsqueeze(1));
  const torch::Tensor want = torch::clamp(torch::round(clipped / s.unsqueeze(1)), -127, 127).to(torch::kInt8);
  const auto q = make()->quantize_state({{"m", w}});
  EXPECT_TRUE(same_bits(find(q.tensors, "m.q"), want));
  EXPECT_TRUE(same_bits(find(q.tensors, "m.scale"), s.to(torch::kFloat16)));
  EXPECT_EQ(find(q.tensors, "m.q")[3].abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(half_bits(find(q.tensors, "m.scale"), 3), 0x2008);

  const torch::Tensor v = torch::randn({3, 200, 150});
  const float c = torch::quantile(v.abs().flatten(), qd).item<float>();
  const auto qv = make()->quantize_state({{"v", v}});
  EXPECT_EQ(find(qv.tensors, "v.scale").item<float>(), static_cast<float>(static_cast<double>(c) / 127.0));
  const torch::Tensor wantv = torch::clamp(torch::round(torch::clamp(v, -c, c) / find(qv.tensors, "v.scale")), -127, 127);
  EXPECT_TRUE(same_bits(find(qv.tensors, "v.q"), wantv.to(torch::kInt8)));
}

TEST(Quantizer, SmallControlTensorsStayFp32BitExact) {
  const torch::Tensor ctrl = torch::tensor({1.0000001f, 1e-8f, -3.3f});  // none of these survive fp16
  const auto quant = make();
  const auto q = quant->quantize_state({{"blocks.0.attn_scale", ctrl}, {"blocks.3.resid_mix", ctrl * 2}});
  EXPECT_EQ(q.meta["tensors"]["blocks.0.attn_scale"]["scheme"], "fp32");
  EXPECT_TRUE(same_bits(find(q.tensors, "blocks.0.attn_scale"), ctrl));
  const auto d = quant->dequantize(q);
  EXPECT_TRUE(same_bits(d[0].second, ctrl));
  EXPECT_TRUE(same_bits(d[1].second, ctrl * 2));
}

TEST(Quantizer, OtherSmallFloatsGoFp16AndComeBackInTheirDtype) {
  const torch::Tensor small = torch::tensor({0.1f, 1.0f / 3.0f, 1000.3f, -2.7182817f, 1e-8f, 65504.0f});
  const torch::Tensor lanes = torch::tensor({1.0f, -2.5f}).to(torch::kBFloat16);
  const auto quant = make();
  const auto q = quant->quantize_state({{"blocks.0.norm.weight", small}, {"lane_lambda", lanes}});
  EXPECT_EQ(q.meta["tensors"]["blocks.0.norm.weight"]["scheme"], "fp16");
  const torch::Tensor& stored = find(q.tensors, "blocks.0.norm.weight");
  ASSERT_EQ(stored.scalar_type(), torch::kFloat16);
  const uint16_t bits[] = {0x2e66, 0x3555, 0x63d1, 0xc170, 0x0000, 0x7bff};  // Python struct 'e'
  for (int i = 0; i < 6; ++i) EXPECT_EQ(half_bits(stored, i), bits[i]) << i;
  const auto d = quant->dequantize(q);
  ASSERT_EQ(d[0].second.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(same_bits(d[0].second, torch::tensor({0.0999755859375f, 0.333251953125f, 1000.5f, -2.71875f, 0.0f, 65504.0f})));
  ASSERT_EQ(d[1].second.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(same_bits(d[1].second, lanes));
}

TEST(Quantizer, PatternAndThresholdKeys) {
  const torch::Tensor t = torch::tensor({1.0000001f, 2.0f});
  const auto q = make({{"keep_fp32_patterns", {"norm"}}})->quantize_state({{"a.norm.w", t}, {"a.attn_scale", t}});
  EXPECT_EQ(q.meta["tensors"]["a.norm.w"]["scheme"], "fp32");
  EXPECT_EQ(q.meta["tensors"]["a.attn_scale"]["scheme"], "fp16");
  // The threshold is inclusive: 65536 elements pass through, 65537 are quantised.
  const auto b = make()->quantize_state({{"at", torch::ones({65536})}, {"over", torch::ones({65537})}});
  EXPECT_EQ(b.meta["tensors"]["at"]["scheme"], "fp16");
  EXPECT_EQ(b.meta["tensors"]["over"]["scheme"], "int8_tensor");
  const auto m = make({{"keep_float_max_numel", 10}})->quantize_state({{"m", torch::ones({4, 4})}});
  EXPECT_EQ(m.meta["tensors"]["m"]["scheme"], "int8_row");
}

TEST(Quantizer, NonFloatTensorsPassThroughExactly) {
  const torch::Tensor big = torch::arange(100000, torch::kInt64) * 7 - 3;
  const torch::Tensor i32 = torch::tensor({std::numeric_limits<int32_t>::min(), 0, 9}, torch::kInt32);
  const torch::Tensor flags = torch::arange(70000) % 3 == 0;
  const torch::Tensor u8 = torch::tensor({0, 200, 255}, torch::kUInt8);
  const auto quant = make();
  const auto q = quant->quantize_state({{"perm", big}, {"i", i32}, {"mask", flags}, {"u", u8}});
  EXPECT_EQ(q.meta["tensors"]["perm"]["scheme"], "raw");
  const auto d = quant->dequantize(q);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_TRUE(same_bits(d[0].second, big));
  EXPECT_TRUE(same_bits(d[1].second, i32));
  EXPECT_TRUE(same_bits(d[2].second, flags));
  EXPECT_TRUE(same_bits(d[3].second, u8));
}

TEST(Quantizer, DequantizeReturnsEverySourceNameInOrder) {
  torch::manual_seed(2);
  const pgolf::NamedTensors state = {{"z.weight", torch::randn({300, 300})}, {"a.q_gain", torch::ones({8})},
                                     {"m.bias", torch::zeros({300})},         {"n", torch::tensor({1})},
                                     {"v", torch::randn({70000})}};
  const auto quant = make();
  const auto d = quant->dequantize(quant->quantize_state(state));
  ASSERT_EQ(d.size(), state.size());
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].first, state[i].first);
    EXPECT_EQ(d[i].second.sizes(), state[i].second.sizes());
    EXPECT_EQ(d[i].second.scalar_type(), state[i].second.scalar_type());
  }
  // Deterministic: the same state quantises to the same container bytes.
  EXPECT_EQ(pgolf::serialize_state(quant->quantize_state(state)), pgolf::serialize_state(quant->quantize_state(state)));
}

TEST(Quantizer, RejectsNonFiniteCollisionsAndForeignMeta) {
  torch::Tensor w = torch::zeros({2, kN});
  w[1][3] = std::numeric_limits<float>::quiet_NaN();
  try {
    make()->quantize_state({{"blocks.1.attn.c_k.weight", w}});
    ADD_FAILURE() << "NaN accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.attn.c_k.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make()->quantize_state({{"a", torch::zeros({2, kN})}, {"a.q", torch::zeros({2})}}), std::runtime_error);

  auto q = make()->quantize_state({{"w", hand_matrix()}});
  pgolf::QuantizedState foreign = q;
  foreign.meta["quantizer"] = "gptq";
  EXPECT_THROW(make()->dequantize(foreign), std::runtime_error);
  pgolf::QuantizedState no_dtype = q;
  no_dtype.meta["tensors"]["w"].erase("dtype");
  EXPECT_THROW(make()->dequantize(no_dtype), std::runtime_error);
  pgolf::QuantizedState missing = q;
  missing.tensors.pop_back();  // drop w.scale
  try {
    make()->dequantize(missing);
    ADD_FAILURE() << "missing scale accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("w.scale"), std::string::npos) << e.what();
  }
}

}  // namespace
