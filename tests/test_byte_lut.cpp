// The LUT byte counter: hand-checked piece tables (spec posttrain §8.2, §11.5; training §5.1) and the
// registered "lut" counter over a trained tokenizer.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/eval.h"
#include "framework/io.h"
#include "framework/registry.h"
#include "tokenizers/byte_lut.h"
#include "tokenizers/train_sentencepiece.h"

namespace fs = std::filesystem;
using pgolf::ByteLut;
using pgolf::PieceType;

namespace {

const std::string S = "\xE2\x96\x81";  // U+2581

// id: 0 <pad> 1 <s> 2 </s> 3 <unk> 4 <0x41> 5 <0xC3> 6 ▁Hello 7 , 8 ▁world 9 ▁the 10 ▁ 11 ▁é 12 the
//     13 ▁▁x 14 <unused> 15 <cap> (zero-byte marker) 16 é; table size 20, so 17..19 lie past the pieces.
ByteLut hand_lut() {
  const std::vector<std::string> pieces = {"<pad>", "<s>",  "</s>",       "<unk>", "<0x41>", "<0xC3>",
                                           S + "Hello", ",",  S + "world", S + "the", S,     S + "\xC3\xA9",
                                           "the",       S + S + "x", "<unused>", "<cap>", "\xC3\xA9"};
  const std::vector<PieceType> types = {
      PieceType::Control, PieceType::Control, PieceType::Control, PieceType::Unknown, PieceType::Byte,
      PieceType::Byte,    PieceType::Normal,  PieceType::Normal,  PieceType::Normal,  PieceType::Normal,
      PieceType::Normal,  PieceType::Normal,  PieceType::Normal,  PieceType::Normal,  PieceType::Unused,
      PieceType::Normal,  PieceType::Normal};
  return pgolf::build_byte_lut(pieces, types, 20, {"<cap>"});
}

TEST(ByteLut, TableEntries) {
  const ByteLut lut = hand_lut();
  ASSERT_EQ(lut.size(), 20);
  // Hand-derived: control/unknown/unused and ids past the pieces are 0-byte boundaries; bytes are 1;
  // "▁Hello" 5+space, "," 1, "▁world" 5+space, "▁the" 3+space, "▁" 0+space, "▁é" 2+space, "the" 3,
  // "▁▁x" 3+1 (one marker stripped) + space, "<cap>" 0, "é" 2.
  const std::vector<int32_t> base = {0, 0, 0, 0, 1, 1, 5, 1, 5, 3, 0, 2, 3, 4, 0, 0, 2, 0, 0, 0};
  const std::vector<uint8_t> space = {0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0};
  const std::vector<uint8_t> boundary = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1};
  EXPECT_EQ(lut.base_bytes, base);
  EXPECT_EQ(lut.has_leading_space, space);
  EXPECT_EQ(lut.is_boundary, boundary);
}

TEST(ByteLut, SpecVectorHelloWorld) {
  // posttrain §11.5: targets [<s>, ▁Hello, ",", ▁world] after [—, <s>, ▁Hello, ","] -> 0, 5, 1, 6 = 12.
  const ByteLut lut = hand_lut();
  const std::vector<int64_t> prev = {7, 1, 6, 7}, tgt = {1, 6, 7, 8};
  const std::vector<int64_t> want = {0, 5, 1, 6};
  int64_t sum = 0;
  for (size_t i = 0; i < tgt.size(); ++i) {
    EXPECT_EQ(lut.bytes(prev[i], tgt[i]), want[i]) << "target " << i;
    sum += lut.bytes(prev[i], tgt[i]);
  }
  EXPECT_EQ(sum, 12);
}

TEST(ByteLut, LeadingSpaceCountsOnlyAfterNonBoundary) {
  const ByteLut lut = hand_lut();
  EXPECT_EQ(lut.bytes(1, 9), 3);   // "▁the" after BOS
  EXPECT_EQ(lut.bytes(7, 9), 4);   // after ","
  EXPECT_EQ(lut.bytes(3, 9), 3);   // after <unk>: a boundary
  EXPECT_EQ(lut.bytes(14, 9), 3);  // after an unused id
  EXPECT_EQ(lut.bytes(18, 9), 3);  // after an id past the tokenizer
  EXPECT_EQ(lut.bytes(4, 9), 4);   // after a byte piece
  EXPECT_EQ(lut.bytes(15, 9), 4);  // after the zero-byte marker, which is no boundary
  EXPECT_EQ(lut.bytes(1, 10), 0);  // "▁" alone after BOS
  EXPECT_EQ(lut.bytes(7, 10), 1);  // "▁" alone after ","
  EXPECT_EQ(lut.bytes(1, 4), 1);   // byte piece, whatever its name's length
  EXPECT_EQ(lut.bytes(7, 5), 1);
  EXPECT_EQ(lut.bytes(7, 11), 3);  // "▁é": 2 UTF-8 bytes + space
  EXPECT_EQ(lut.bytes(1, 11), 2);
  EXPECT_EQ(lut.bytes(7, 13), 5);  // "▁▁x": only the first marker is the space
  EXPECT_EQ(lut.bytes(7, 12), 3);  // "the" without a marker
  EXPECT_EQ(lut.bytes(7, 2), 0);   // </s>
  EXPECT_EQ(lut.bytes(7, 19), 0);  // past the tokenizer
}

TEST(ByteLut, OutOfRangeIdsAreErrors) {
  const ByteLut lut = hand_lut();
  EXPECT_THROW(lut.bytes(7, 20), std::runtime_error);
  EXPECT_THROW(lut.bytes(20, 7), std::runtime_error);
  EXPECT_THROW(lut.bytes(-1, 7), std::runtime_error);
  EXPECT_THROW(pgolf::build_byte_lut({"a", "b"}, {PieceType::Normal}, 4), std::runtime_error);
  EXPECT_THROW(pgolf::build_byte_lut({"a", "b"}, {PieceType::Normal, PieceType::Normal}, 1), std::runtime_error);
}

TEST(LutByteCounter, TensorPathMatchesHandValues) {
  pgolf::LutByteCounter counter(hand_lut());
  auto prev = torch::tensor({7, 1, 6, 7, 1, 7}, torch::kInt64);
  auto tgt = torch::tensor({1, 6, 7, 8, 9, 9}, torch::kInt64);
  auto pos = torch::arange(6, torch::kInt64);
  auto bytes = counter.target_bytes(prev, tgt, pos);
  EXPECT_EQ(bytes.scalar_type(), torch::kFloat64);
  const std::vector<double> want = {0, 5, 1, 6, 3, 4};
  ASSERT_EQ(bytes.numel(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(bytes[i].item<double>(), want[i]) << i;
  // Shapes are kept (an evaluator may pass [batch, seq]).
  auto b2 = counter.target_bytes(prev.view({2, 3}), tgt.view({2, 3}), pos.view({2, 3}));
  EXPECT_EQ(b2.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b2.sum().item<double>(), 19.0);
}

TEST(LutByteCounter, IdPastTheTableIsAClearError) {
  pgolf::LutByteCounter counter(hand_lut(), "tokenizer t.model");
  try {
    counter.target_bytes(torch::tensor({7, 7}, torch::kInt64), torch::tensor({8, 20}, torch::kInt64),
                         torch::tensor({1, 2}, torch::kInt64));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("token id 20"), std::string::npos) << m;
    EXPECT_NE(m.find("[0, 20)"), std::string::npos) << m;
    EXPECT_NE(m.find("t.model"), std::string::npos) << m;
  }
  EXPECT_THROW(counter.target_bytes(torch::tensor({-1}, torch::kInt64), torch::tensor({8}, torch::kInt64),
                                    torch::tensor({1}, torch::kInt64)),
               std::runtime_error);
}

// The registered counter over a real tokenizer: on text that SentencePiece normalisation leaves as it is,
// the byte counts of [BOS] + encode(text) add up to the text's UTF-8 length.
TEST(LutByteCounter, RegisteredCounterCountsTheTextBytes) {
  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/pgolf_lut_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};  // also when an assertion ends the test early
  std::string corpus;
  const char* words[] = {"the", "time", "of", "their", "over", "and", "then", "there", "when", "we", "to"};
  uint32_t x = 7;
  for (int line = 0; line < 2000; ++line) {
    for (int w = 0; w < 8; ++w) {
      x = x * 1103515245u + 12345u;
      corpus += std::string(w ? " " : "") + words[(x >> 16) % 11];
    }
    corpus += ".\n";
  }
  pgolf::write_file_atomic(dir + "/c.txt", corpus);
  pgolf::train_sentencepiece({dir + "/c.txt"}, 300, dir + "/sp", 1);

  pgolf::ByteCounterContext ctx;
  ctx.tokenizer_path = dir + "/sp.model";
  ctx.vocab_size = 400;  // a model vocabulary larger than the tokenizer's
  // Validated as a recipe's eval section would be: the schema fills zero_byte_pieces = [].
  pgolf::Schema eval;
  eval.component("byte_counter", "byte_counter", "lut", "counter");
  const pgolf::Json section = eval.validate(pgolf::Json::object(), "eval", "r.json");
  EXPECT_EQ(section["byte_counter"], (pgolf::Json{{"name", "lut"}, {"zero_byte_pieces", pgolf::Json::array()}}));
  pgolf::Config cfg(section["byte_counter"], "eval.byte_counter");
  auto counter = pgolf::ByteCounterRegistry::get().build(cfg, ctx);
  const auto* lut_counter = dynamic_cast<const pgolf::LutByteCounter*>(counter.get());
  ASSERT_NE(lut_counter, nullptr);
  EXPECT_EQ(lut_counter->lut().size(), 400);
  EXPECT_EQ(lut_counter->lut().is_boundary[350], 1);

  pgolf::SentencePieceModel sp(ctx.tokenizer_path);
  const std::string text = "then the time of the quick fox, 2024 \xCE\xA9 caf\xC3\xA9 and there.";
  std::vector<int64_t> ids = {1};
  for (int id : sp.encode(text)) ids.push_back(id);
  auto t = torch::tensor(ids, torch::kInt64);
  const int64_t n = t.numel();
  auto bytes = counter->target_bytes(t.slice(0, 0, n - 1), t.slice(0, 1, n), torch::arange(1, n));
  EXPECT_EQ(bytes.sum().item<double>(), static_cast<double>(text.size()));

  // zero_byte_pieces: a named piece costs 0 bytes and stays a non-boundary; unknown names are errors.
  const std::string marker = sp.piece(280);
  pgolf::Config zcfg(pgolf::Json{{"name", "lut"}, {"zero_byte_pieces", {marker}}}, "eval.byte_counter");
  auto z = pgolf::ByteCounterRegistry::get().build(zcfg, ctx);
  const auto& zl = dynamic_cast<const pgolf::LutByteCounter*>(z.get())->lut();
  EXPECT_EQ(zl.base_bytes[280], 0);
  EXPECT_EQ(zl.has_leading_space[280], 0);
  EXPECT_EQ(zl.is_boundary[280], 0);
  pgolf::Config bad(pgolf::Json{{"name", "lut"}, {"zero_byte_pieces", {"<nope>"}}}, "eval.byte_counter");
  EXPECT_THROW(pgolf::ByteCounterRegistry::get().build(bad, ctx), pgolf::ConfigError);

  ctx.tokenizer_path = dir + "/missing.model";
  EXPECT_THROW(pgolf::ByteCounterRegistry::get().build(cfg, ctx), std::runtime_error);
}

}  // namespace
