// Casefold (spec posttrain §3.4: NFKC, then lowercase as Python's str.lower()): vectors computed with
// Python 3.11's unicodedata.normalize("NFKC", s).lower() and pasted as bytes, a tokenizer trained on
// casefolded text, and the refusal of a byte sidecar for it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "framework/io.h"
#include "tokenizers/casefold.h"
#include "tokenizers/document_encoder.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/train_sentencepiece.h"

namespace fs = std::filesystem;

namespace {

TEST(Casefold, AsciiIsLowercasedWithoutIcu) {
  EXPECT_EQ(pgolf::casefold("Hello WORLD, iPhone 2024!\n"), "hello world, iphone 2024!\n");
  EXPECT_EQ(pgolf::casefold(""), "");
}

TEST(Casefold, MatchesPythonNfkcLower) {
  if (!pgolf::casefold_available()) GTEST_SKIP() << "built without ICU: non-ASCII casefold is unavailable";
  const std::vector<std::pair<std::string, std::string>> cases = {
      // ＡＢＣ ｄｅｆ -> abc def (fullwidth)
      {"\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\x20\xEF\xBD\x84\xEF\xBD\x85\xEF\xBD\x86", "\x61\x62\x63\x20\x64\x65\x66"},
      // ﬁne Ⅻ ½ x² -> fine xii 1⁄2 x2 (compatibility decompositions)
      {"\xEF\xAC\x81\x6E\x65\x20\xE2\x85\xAB\x20\xC2\xBD\x20\x78\xC2\xB2",
       "\x66\x69\x6E\x65\x20\x78\x69\x69\x20\x31\xE2\x81\x84\x32\x20\x78\x32"},
      // İstanbul -> i̇stanbul (U+0130 lowercases to i + U+0307: 2 bytes become 3)
      {"\xC4\xB0\x73\x74\x61\x6E\x62\x75\x6C", "\x69\xCC\x87\x73\x74\x61\x6E\x62\x75\x6C"},
      // ΟΔΟΣ ΣΑΣ Σ -> οδος σας σ (final sigma)
      {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3\x20\xCE\xA3\xCE\x91\xCE\xA3\x20\xCE\xA3",
       "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82\x20\xCF\x83\xCE\xB1\xCF\x82\x20\xCF\x83"},
      // Straße -> straße (lower, not case folding: ß stays)
      {"\x53\x74\x72\x61\xC3\x9F\x65", "\x73\x74\x72\x61\xC3\x9F\x65"},
      // ǅemal -> džemal
      {"\xC7\x85\x65\x6D\x61\x6C", "\x64\xC5\xBE\x65\x6D\x61\x6C"},
      // U+212B e U+0301 -> å é (composition)
      {"\xE2\x84\xAB\x20\x65\xCC\x81", "\xC3\xA5\x20\xC3\xA9"},
      // Hangul jamo -> one syllable
      {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"},
      // Ω ﬀ ㎏ -> ω ff kg
      {"\xE2\x84\xA6\x20\xEF\xAC\x80\x20\xE3\x8E\x8F", "\xCF\x89\x20\x66\x66\x20\x6B\x67"},
      // ÀÉÎ 𝐀 -> àéî a
      {"\xC3\x80\xC3\x89\xC3\x8E\x20\xF0\x9D\x90\x80", "\xC3\xA0\xC3\xA9\xC3\xAE\x20\x61"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(pgolf::casefold(in), want) << in;
}

TEST(Casefold, InvalidUtf8IsAnError) {
  try {
    pgolf::casefold("ab\xFF");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 at byte 2"), std::string::npos) << e.what();
  }
}

TEST(Casefold, TokenizerTrainedOnCasefoldedText) {
  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/pgolf_casefold_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  struct Cleanup {
    std::string d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};
  // ASCII text, so that this part runs without ICU too.
  const char* words[] = {"The", "THE", "the", "Model", "model", "MODEL", "Data", "iPhone", "NASA", "of", "And", "to"};
  std::string corpus;
  uint32_t x = 3;
  for (int line = 0; line < 1500; ++line) {
    for (int w = 0; w < 9; ++w) {
      x = x * 1103515245u + 12345u;
      corpus += std::string(w ? " " : "") + words[(x >> 16) % 12];
    }
    corpus += ".\n";
  }
  pgolf::write_file_atomic(dir + "/c.txt", corpus);
  pgolf::SpTrainOptions opt;
  opt.transform = [](std::string_view s) { return pgolf::casefold(s); };
  pgolf::train_sentencepiece({dir + "/c.txt"}, 300, dir + "/cf", 1, opt);
  pgolf::SentencePieceModel sp(dir + "/cf.model");
  for (int i = 0; i < sp.vocab_size(); ++i) {
    if (sp.type(i) != pgolf::PieceType::Normal) continue;
    for (char c : sp.piece(i)) EXPECT_FALSE(c >= 'A' && c <= 'Z') << "piece " << i << " '" << sp.piece(i) << "'";
  }
  // prepare's casefold encoding is SentencePiece over the casefolded document; no byte sidecar.
  const pgolf::DocumentEncoder enc(pgolf::Transform::Casefold, dir + "/cf.model");
  std::vector<uint16_t> tokens;
  enc.encode("The NASA Model", tokens, nullptr);
  std::vector<uint16_t> want = {1};
  for (int id : sp.encode("the nasa model")) want.push_back(static_cast<uint16_t>(id));
  EXPECT_EQ(tokens, want);
  EXPECT_FALSE(enc.sidecar_supported());
  std::vector<uint16_t> bytes;
  EXPECT_THROW(enc.encode("The", tokens, &bytes), std::runtime_error);
}

}  // namespace
