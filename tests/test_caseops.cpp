// CaseOps (spec posttrain §3.2, §3.3, §11.6): hand vectors from the encoding rules, the bijection on random
// and adversarial UTF-8, streaming over arbitrary chunk splits, decoder and UTF-8 errors, and the byte
// sidecar of a trained CaseOps tokenizer adding up to each document's UTF-8 length.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "tokenizers/caseops.h"
#include "tokenizers/document_encoder.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/train_sentencepiece.h"

namespace fs = std::filesystem;
using pgolf::caseops_decode;
using pgolf::caseops_encode;

namespace {

const std::string T = "\xEE\x80\x81";  // TITLE U+E001
const std::string A = "\xEE\x80\x82";  // ALLCAPS U+E002
const std::string C = "\xEE\x80\x83";  // CAPNEXT U+E003
const std::string E = "\xEE\x80\x84";  // ESC U+E004

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(CaseOps, OperatorCodePoints) {
  EXPECT_EQ(pgolf::caseops::utf8(pgolf::caseops::kTitle), T);
  EXPECT_EQ(pgolf::caseops::utf8(pgolf::caseops::kAllCaps), A);
  EXPECT_EQ(pgolf::caseops::utf8(pgolf::caseops::kCapNext), C);
  EXPECT_EQ(pgolf::caseops::utf8(pgolf::caseops::kEsc), E);
}

TEST(CaseOps, SpecVector) {
  // posttrain §11.6.
  EXPECT_EQ(caseops_encode("The NASA iPhone"), T + "the " + A + "nasa i" + C + "phone");
  EXPECT_EQ(caseops_decode(T + "the " + A + "nasa i" + C + "phone"), "The NASA iPhone");
}

TEST(CaseOps, HandVectorsFromTheRules) {
  // Each expected string follows §3.2's rules by hand: a word is a maximal run of [A-Za-z].
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"plain words stay", "plain words stay"},
      {"I", T + "i"},                                  // a single capital: TITLE
      {"A b", T + "a b"},
      {"AB", A + "ab"},                                // two capitals: ALLCAPS
      {"iPhone", "i" + C + "phone"},                   // mixed, lowercase first
      {"McDonald", T + "mc" + C + "donald"},           // TITLE, then CAPNEXT inside
      {"ABCdef", T + "a" + C + "b" + C + "cdef"},      // mixed: not ALLCAPS, not title
      {"aB", "a" + C + "b"},
      {"don't", "don't"},                              // the apostrophe splits the word
      {"DON'T", A + "don'" + T + "t"},
      {"Hello123World", T + "hello123" + T + "world"},  // digits split words
      {"COVID19", A + "covid19"},
      {"\xC3\x89" "COLE", "\xC3\x89" + A + "cole"},    // É is not an ASCII letter: untouched, splits
      {"Na\xC3\xAFVE", T + "na\xC3\xAF" + A + "ve"},
      {"\xC3\x9F" "TRASSE \xC4\xB0", "\xC3\x9F" + A + "trasse \xC4\xB0"},
      {"A\nB\tCD", T + "a\n" + T + "b\t" + A + "cd"},
      {T, E + T},                                      // literal operators are escaped
      {E + E, E + E + E + E},
      {"X" + C + "y", T + "x" + E + C + "y"},
      {"\xEE\x80\x80" "\xEE\x80\x85", "\xEE\x80\x80" "\xEE\x80\x85"},  // U+E000, U+E005: not operators
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(caseops_encode(in), want) << "encode '" << in << "'";
    EXPECT_EQ(caseops_decode(want), in) << "decode of '" << in << "'";
  }
}

// Random strings over an adversarial alphabet: both cases of letters (runs of capitals), digits,
// apostrophes, whitespace, the operators and their neighbours, 2-, 3- and 4-byte characters.
std::string random_adversarial(std::mt19937& rng, int len) {
  static const std::vector<std::string> atoms = {
      "a", "z", "A", "Z", "I", "q", "Q", "0", "9", "'", " ", "  ", "\n", "\t", "-", ".", T, A, C, E,
      "\xEE\x80\x80", "\xEE\x80\x85", "\xC3\xA9", "\xC3\x89", "\xC4\xB0", "\xC3\x9F", "\xE6\x97\xA5", "\xEF\xAC\x81",
      "\xF0\x9F\x98\x80", "\xEF\xBC\xA1", "iPhone", "McDonald", "NASA", "The", "ABCdef", "don't"};
  std::string s;
  for (int i = 0; i < len; ++i) s += atoms[rng() % atoms.size()];
  return s;
}

// Random valid UTF-8 over the whole code space (no surrogates), biased to ASCII letters.
std::string random_codepoints(std::mt19937& rng, int len) {
  std::string s;
  for (int i = 0; i < len; ++i) {
    uint32_t cp;
    switch (rng() % 4) {
      case 0: cp = 'A' + rng() % 26; break;
      case 1: cp = 'a' + rng() % 26; break;
      case 2: cp = 0xE000 + rng() % 8; break;
      default:
        do cp = rng() % 0x110000;
        while (cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

void expect_bijection(const std::string& s) {
  const std::string enc = caseops_encode(s);
  ASSERT_EQ(caseops_decode(enc), s);
  ASSERT_EQ(pgolf::utf8_invalid_offset(enc), std::string::npos);
  for (char c : enc) ASSERT_FALSE(c >= 'A' && c <= 'Z') << "an ASCII capital survived encoding";
  // Injective on these inputs too: encoding is undone exactly, and re-encoding the decoded text agrees.
  ASSERT_EQ(caseops_encode(caseops_decode(enc)), enc);
}

TEST(CaseOps, RoundTripOnRandomAdversarialStrings) {
  std::mt19937 rng(20240520);
  for (int i = 0; i < 3000; ++i) {
    const std::string s = random_adversarial(rng, 1 + rng() % 40);
    SCOPED_TRACE(s);
    expect_bijection(s);
  }
}

TEST(CaseOps, RoundTripOnRandomCodePoints) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::string s = random_codepoints(rng, 1 + rng() % 60);
    expect_bijection(s);
  }
}

TEST(CaseOps, StreamingEqualsOneShotForAnyChunking) {
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_adversarial(rng, 30) + random_codepoints(rng, 30);
    const std::string want = caseops_encode(s);
    // Cut at random byte positions: inside words, inside multi-byte characters, between an ESC and its
    // character.
    std::string got;
    pgolf::CaseOpsEncoder enc;
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t n = std::min<size_t>(s.size() - pos, rng() % 5);
      enc.feed(std::string_view(s).substr(pos, n), got);
      pos += n;
    }
    enc.finish(got);
    ASSERT_EQ(got, want);
    std::string back;
    pgolf::CaseOpsDecoder dec;
    pos = 0;
    while (pos < want.size()) {
      const size_t n = std::min<size_t>(want.size() - pos, rng() % 5);
      dec.feed(std::string_view(want).substr(pos, n), back);
      pos += n;
    }
    dec.finish(back);
    ASSERT_EQ(back, s);
  }
}

TEST(CaseOps, DecoderRejectsWhatEncodeNeverProduces) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {T, "byte 3: a case operator dangles at the end"},
      {C, "byte 3: a case operator dangles at the end"},
      {E, "byte 3: a case operator dangles at the end"},
      {T + " x", "byte 3: a case operator is followed by a character that is not an ASCII letter"},
      {"a" + T + "b", "byte 1: TITLE/ALLCAPS inside a word"},
      {"ab" + A + "c", "byte 2: TITLE/ALLCAPS inside a word"},
      {T + A + "b", "byte 3: a case operator is followed by another operator"},
      {C + C + "b", "byte 3: a case operator is followed by another operator"},
      {E + "a", "byte 3: ESC (U+E004) is not followed by one of U+E001..U+E004"},
      {T + E + T, "byte 3: a case operator is followed by ESC"},
      {"ok\xC3", "byte 2: not valid UTF-8"},
      {"\xFF", "byte 0: not valid UTF-8"},
  };
  for (const auto& [in, want] : bad) {
    const std::string m = error_of([&] { caseops_decode(in); });
    EXPECT_NE(m.find(want), std::string::npos) << "input '" << in << "': " << m;
  }
  // Accepted though encode never writes them: CAPNEXT at a word start, and capitals passed through.
  EXPECT_EQ(caseops_decode(C + "ab"), "Ab");
  EXPECT_EQ(caseops_decode("aBc"), "aBc");
}

TEST(CaseOps, EncoderRejectsInvalidUtf8WithTheStreamOffset) {
  EXPECT_NE(error_of([] { caseops_encode("\xC0\x80"); }).find("not valid UTF-8 at byte 0"), std::string::npos);
  EXPECT_NE(error_of([] { caseops_encode("ab\xED\xA0\x80"); }).find("at byte 2"), std::string::npos);  // surrogate
  EXPECT_NE(error_of([] { caseops_encode("xy\xF4\x90\x80\x80"); }).find("at byte 2"), std::string::npos);  // > U+10FFFF
  EXPECT_NE(error_of([] { caseops_encode("abc\xE2\x82"); }).find("at byte 3 (truncated"), std::string::npos);
  const std::string m = error_of([] {
    pgolf::CaseOpsEncoder enc;
    std::string out;
    enc.feed("hello ", out);
    enc.feed("w\xC3", out);  // held back: may be completed by the next chunk
    enc.feed("\xA9 \x80", out);
  });
  EXPECT_NE(m.find("at byte 10"), std::string::npos) << m;
}

TEST(CaseOps, Utf8Validation) {
  EXPECT_EQ(pgolf::utf8_invalid_offset("caf\xC3\xA9 \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(pgolf::utf8_invalid_offset("ab\x80"), 2u);          // lone continuation byte
  EXPECT_EQ(pgolf::utf8_invalid_offset("\xC1\xBF"), 0u);        // overlong 2-byte
  EXPECT_EQ(pgolf::utf8_invalid_offset("a\xE0\x9F\xBF"), 1u);   // overlong 3-byte
  EXPECT_EQ(pgolf::utf8_invalid_offset("\xF0\x8F\xBF\xBF"), 0u);  // overlong 4-byte
  EXPECT_EQ(pgolf::utf8_invalid_offset("\xEF\xBF\xBF"), std::string::npos);  // U+FFFF is valid
  EXPECT_EQ(pgolf::utf8_invalid_offset("\xF4\x8F\xBF\xBF"), std::string::npos);  // U+10FFFF
  EXPECT_EQ(pgolf::utf8_invalid_offset("x\xC3"), 1u);           // truncated at the end
}

TEST(CaseOps, SidecarByteCountOfTheSpecSegmentation) {
  // §11.6: pieces [TITLE, the, ▁, ALLCAPS, nasa, ▁i, CAPNEXT, phone] -> [0, 3, 1, 0, 4, 2, 0, 5] = 15.
  const std::vector<std::string> spans = {T, "the", " ", A, "nasa", " i", C, "phone"};
  const std::vector<int64_t> want = {0, 3, 1, 0, 4, 2, 0, 5};
  pgolf::CaseOpsByteCounter counter;
  int64_t sum = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(counter.count(spans[i]), want[i]) << i;
    sum += want[i];
  }
  EXPECT_EQ(sum, 15);
  EXPECT_EQ(std::string("The NASA iPhone").size(), 15u);
  // ESC is 0 and the escaped operator its 3 bytes, also when a piece boundary falls between them.
  pgolf::CaseOpsByteCounter c2;
  EXPECT_EQ(c2.count(E), 0);
  EXPECT_EQ(c2.count(T), 3);
  EXPECT_EQ(c2.count(T), 0);
  EXPECT_EQ(c2.count(E + E + "\xC3\xA9"), 5);  // an escaped ESC (3) + é (2)
}

TEST(CaseOps, SpanBytesGivesUncoveredBytesToNeighbours) {
  // "  ab  cd  " with pieces over [2,4), [6,8) and an empty one at 8: the leading gap goes to the first
  // piece, the inner gap [4,6) to the piece before it, the trailing gap to the last piece with bytes of
  // its own (not the empty one).
  const std::string text = "  ab  cd  ";
  const std::vector<pgolf::PieceSpan> spans = {{10, 2, 4}, {11, 6, 8}, {12, 8, 8}};
  auto len = [](std::string_view s) { return static_cast<int64_t>(s.size()); };
  EXPECT_EQ(pgolf::span_bytes(spans, text, len), (std::vector<int64_t>{6, 4, 0}));
  EXPECT_EQ(pgolf::span_bytes({}, text, len), (std::vector<int64_t>{}));
  // CaseOps text "  " TITLE "ab" with a leading gap: the operator stays at 0, "ab" takes the spaces.
  const std::string co = "  " + T + "ab ";
  pgolf::CaseOpsByteCounter counter;
  EXPECT_EQ(pgolf::span_bytes({{4, 2, 5}, {20, 5, 7}}, co, [&](std::string_view s) { return counter.count(s); }),
            (std::vector<int64_t>{0, 5}));
}

// ---- with a trained CaseOps tokenizer -------------------------------------------------------------

// Mixed-case English-like documents with the §3.2 trouble makers and whitespace SentencePiece rewrites.
std::vector<std::string> make_mixed_docs(int n, uint32_t seed) {
  static const std::vector<std::string> words = {
      "The", "the", "NASA", "iPhone", "McDonald", "I", "a", "A", "model", "Model", "MODEL", "token", "Data",
      "don't", "DON'T", "it's", "x86", "COVID19", "3rd", "caf\xC3\xA9", "\xC3\x89" "cole", "STRA\xC3\x9F" "E",
      "\xE6\x97\xA5\xE6\x9C\xAC", "\xEF\xAC\x81ne", "\xEF\xBC\xA1\xEF\xBC\xA2", "x\xC2\xB2", "\xF0\x9F\x98\x80",
      T, E, "ABCdef", "golf", "Golf", "of", "and", "to", "in", "2024", "1,000"};
  static const std::vector<std::string> gaps = {" ", " ", " ", "  ", "\t", "\n", " \n\n ", ", ", ". "};
  std::mt19937 rng(seed);
  std::vector<std::string> docs;
  for (int d = 0; d < n; ++d) {
    std::string doc = rng() % 4 == 0 ? "  " : "";  // leading whitespace, which SentencePiece drops
    const int len = 5 + rng() % 60;
    for (int i = 0; i < len; ++i) {
      if (i) doc += gaps[rng() % gaps.size()];
      doc += words[rng() % words.size()];
    }
    if (rng() % 3 == 0) doc += " \n";  // trailing whitespace, dropped too
    docs.push_back(doc);
  }
  return docs;
}

class CaseOpsTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* base = std::getenv("TMPDIR");
    dir_ = std::string(base && *base ? base : "/tmp") + "/pgolf_caseops_XXXXXX";
    if (!::mkdtemp(dir_.data())) throw std::runtime_error("mkdtemp failed");
    std::string jsonl;
    for (const auto& d : make_mixed_docs(400, 1)) jsonl += pgolf::Json{{"text", d}}.dump() + "\n";
    pgolf::write_file_atomic(dir_ + "/train.jsonl", jsonl);
    pgolf::SpTrainOptions opt;
    opt.transform = [](std::string_view s) { return caseops_encode(s); };
    for (const std::string& op : {T, A, C, E}) opt.user_defined_symbols.push_back(op);
    pgolf::train_sentencepiece({dir_ + "/train.jsonl"}, 400, dir_ + "/co", 2, opt);
    pgolf::train_sentencepiece({dir_ + "/train.jsonl"}, 400, dir_ + "/plain", 2);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string dir_;
};
std::string CaseOpsTokenizer::dir_;

TEST_F(CaseOpsTokenizer, OperatorsAreUserDefinedPiecesFourToSeven) {
  pgolf::SentencePieceModel sp(dir_ + "/co.model");
  EXPECT_EQ(sp.piece(4), T);
  EXPECT_EQ(sp.piece(5), A);
  EXPECT_EQ(sp.piece(6), C);
  EXPECT_EQ(sp.piece(7), E);
  EXPECT_EQ(sp.piece(8), "<0x00>");  // byte fallback follows the operators
  EXPECT_TRUE(pgolf::is_caseops_tokenizer(sp));
  EXPECT_FALSE(pgolf::is_caseops_tokenizer(pgolf::SentencePieceModel(dir_ + "/plain.model")));
  // CaseOps leaves no ASCII capital; only nmt_nfkc's folding of the fullwidth word "ＡＢ" (untouched by
  // CaseOps, which sees no ASCII there) can bring capitals back, and only A and B.
  for (const auto& p : sp.pieces()) {
    if (p.rfind("<", 0) == 0) continue;
    for (char c : p) EXPECT_FALSE(c >= 'C' && c <= 'Z') << "piece '" << p << "' holds an ASCII capital";
  }
  // The operators stay single tokens wherever they are.
  EXPECT_EQ(sp.encode(T + "the" + C), (std::vector<int>{4, sp.encode("the")[0], 6}));
}

TEST_F(CaseOpsTokenizer, SidecarOfEachDocumentAddsUpToItsUtf8Length) {
  const pgolf::DocumentEncoder enc(pgolf::Transform::CaseOps, dir_ + "/co.model");
  pgolf::SentencePieceModel sp(dir_ + "/co.model");
  int operators_seen = 0;
  for (const auto& doc : make_mixed_docs(150, 2)) {
    std::vector<uint16_t> tokens, bytes;
    enc.encode(doc, tokens, &bytes);
    ASSERT_EQ(bytes.size(), tokens.size());
    ASSERT_EQ(tokens[0], 1);
    ASSERT_EQ(bytes[0], 0);  // BOS
    int64_t sum = 0;
    for (uint16_t b : bytes) sum += b;
    EXPECT_EQ(sum, static_cast<int64_t>(doc.size())) << doc;
    // The ids are SentencePiece's for the transformed text (spans and ids agree).
    std::vector<uint16_t> want = {1};
    for (int id : sp.encode(caseops_encode(doc))) want.push_back(static_cast<uint16_t>(id));
    EXPECT_EQ(tokens, want);
    // TITLE/ALLCAPS/CAPNEXT and ESC tokens count 0; an operator after an ESC is a literal: 3 bytes, plus
    // the whitespace SentencePiece dropped at the document's start (end) when it is the first (last) token
    // with bytes of its own.
    size_t first_real = 0, last_real = 0;
    for (size_t i = 1; i < bytes.size(); ++i)
      if (bytes[i] > 0) {
        if (!first_real) first_real = i;
        last_real = i;
      }
    const size_t lead = doc.find_first_not_of(" \t\n");
    const size_t trail = doc.size() - 1 - doc.find_last_not_of(" \t\n");
    for (size_t i = 1; i < tokens.size(); ++i) {
      if (tokens[i] < 4 || tokens[i] > 7) continue;
      ++operators_seen;
      const bool literal = tokens[i - 1] == 7 && !(i >= 2 && tokens[i - 2] == 7);
      const size_t want = literal ? 3 + (i == first_real ? lead : 0) + (i == last_real ? trail : 0) : 0;
      EXPECT_EQ(bytes[i], want) << "token " << i << " of " << doc;
    }
  }
  EXPECT_GT(operators_seen, 500);
}

TEST_F(CaseOpsTokenizer, PlainSidecarAddsUpToo) {
  const pgolf::DocumentEncoder enc(pgolf::Transform::None, dir_ + "/plain.model");
  for (const auto& doc : make_mixed_docs(100, 3)) {
    std::vector<uint16_t> tokens, bytes;
    enc.encode(doc, tokens, &bytes);
    int64_t sum = 0;
    for (uint16_t b : bytes) sum += b;
    EXPECT_EQ(sum, static_cast<int64_t>(doc.size())) << doc;
  }
  // A document of whitespace only has no token to carry its bytes: [BOS] alone, 0 bytes.
  std::vector<uint16_t> tokens, bytes;
  enc.encode(" \n ", tokens, &bytes);
  EXPECT_EQ(tokens, (std::vector<uint16_t>{1}));
  EXPECT_EQ(bytes, (std::vector<uint16_t>{0}));
}

TEST_F(CaseOpsTokenizer, TokenizerAndTransformMustMatch) {
  const std::string m1 = error_of([&] { pgolf::DocumentEncoder(pgolf::Transform::None, dir_ + "/co.model"); });
  EXPECT_NE(m1.find("is a CaseOps tokenizer"), std::string::npos) << m1;
  EXPECT_NE(m1.find("--transform caseops"), std::string::npos) << m1;
  const std::string m2 = error_of([&] { pgolf::DocumentEncoder(pgolf::Transform::CaseOps, dir_ + "/plain.model"); });
  EXPECT_NE(m2.find("has no CaseOps operator pieces"), std::string::npos) << m2;
  const pgolf::DocumentEncoder enc(pgolf::Transform::CaseOps, dir_ + "/co.model");
  std::vector<uint16_t> tokens;
  const std::string m3 = error_of([&] { enc.encode("ok \xC3(", tokens, nullptr); });
  EXPECT_NE(m3.find("not valid UTF-8 at byte 3"), std::string::npos) << m3;
}

}  // namespace
