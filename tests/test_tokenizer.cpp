// SentencePiece training with the challenge settings, the model wrapper, and the text input readers.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/train_sentencepiece.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using pgolf::PieceType;
using pgolf::SentencePieceModel;

namespace {

std::string make_temp_dir(const char* tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/pgolf_" + tag + "_XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

using pgolf::testing::TempDir;

// Deterministic English-like lines with many multi-digit numbers; no character outside [a-z0-9 .,].
std::string make_corpus(int lines) {
  static const char* words[] = {"the",  "of",   "and",  "to",    "in",   "is",    "that", "for",  "it",   "with",
                                "as",   "was",  "on",   "be",    "at",   "by",    "this", "had",  "not",  "are",
                                "but",  "from", "or",   "have",  "an",   "they",  "which", "one", "you",  "were",
                                "her",  "all",  "she",  "there", "would", "their", "we",  "him",  "been", "has",
                                "when", "who",  "will", "more",  "no",   "if",    "out",  "so",   "said", "what",
                                "time", "these", "two", "may",   "then", "first", "any",  "like", "over", "back"};
  const size_t nwords = sizeof(words) / sizeof(words[0]);
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  std::string out;
  for (int l = 0; l < lines; ++l) {
    const int n = 5 + next() % 11;
    for (int w = 0; w < n; ++w) {
      if (w) out += next() % 9 == 0 ? ", " : " ";
      if (next() % 7 == 0) out += std::to_string(next() % 100000);
      else out += words[next() % nwords];
    }
    out += ".\n";
  }
  return out;
}

// A minimal protobuf reader for the checks on the saved TrainerSpec / NormalizerSpec (last value wins).
struct ProtoField {
  uint64_t varint = 0;
  uint32_t fixed32 = 0;
  std::string bytes;
};
std::map<int, ProtoField> parse_proto(const std::string& b) {
  std::map<int, ProtoField> out;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const uint8_t c = static_cast<uint8_t>(b.at(i++));
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
  };
  while (i < b.size()) {
    const uint64_t key = varint();
    ProtoField f;
    switch (key & 7) {
      case 0: f.varint = varint(); break;
      case 1: i += 8; break;
      case 2: {
        const size_t n = varint();
        f.bytes = b.substr(i, n);
        i += n;
        break;
      }
      case 5: std::memcpy(&f.fixed32, b.data() + i, 4); i += 4; break;
      default: throw std::runtime_error("unexpected wire type");
    }
    out[static_cast<int>(key >> 3)] = f;
  }
  return out;
}

class Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("tok");
    pgolf::write_file_atomic(dir_ + "/corpus.txt", make_corpus(3000));
    pgolf::train_sentencepiece({dir_ + "/corpus.txt"}, 320, dir_ + "/model/sp", 2);
    model_ = new SentencePieceModel(dir_ + "/model/sp.model");
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    fs::remove_all(dir_);
  }
  static std::string dir_;
  static SentencePieceModel* model_;
};
std::string Tokenizer::dir_;
SentencePieceModel* Tokenizer::model_ = nullptr;

TEST_F(Tokenizer, SpecialIdsAreTheChallengeLayout) {
  const SentencePieceModel& sp = *model_;
  EXPECT_EQ(sp.vocab_size(), 320);
  EXPECT_EQ(sp.piece(0), "<pad>");
  EXPECT_EQ(sp.piece(1), "<s>");
  EXPECT_EQ(sp.piece(2), "</s>");
  EXPECT_EQ(sp.piece(3), "<unk>");
  EXPECT_TRUE(sp.is_control(0) && sp.is_control(1) && sp.is_control(2));
  EXPECT_TRUE(sp.is_unknown(3));
  EXPECT_EQ(sp.pad_id(), 0);
  EXPECT_EQ(sp.bos_id(), 1);
  EXPECT_EQ(sp.eos_id(), 2);
  EXPECT_EQ(sp.unk_id(), 3);
}

TEST_F(Tokenizer, ByteFallbackPiecesFollowTheSpecials) {
  const SentencePieceModel& sp = *model_;
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    ASSERT_EQ(sp.piece(4 + b), name) << "id " << 4 + b;
    ASSERT_TRUE(sp.is_byte(4 + b));
  }
  // After the bytes come learned pieces: normal, not byte/control.
  EXPECT_EQ(sp.type(260), PieceType::Normal);
  EXPECT_FALSE(sp.is_unused(260));
  EXPECT_THROW(sp.piece(320), std::runtime_error);
}

TEST_F(Tokenizer, UnseenCharacterEncodesToItsUtf8Bytes) {
  // U+03A9 is CE A9 in UTF-8; byte pieces sit at 4 + byte value: 4 + 0xCE = 210, 4 + 0xA9 = 173.
  EXPECT_EQ(model_->encode("\xCE\xA9"), (std::vector<int>{210, 173}));
}

TEST_F(Tokenizer, EncodeDecodeRoundTrip) {
  const std::string text = "the quick brown fox jumps over 2024 lazy dogs. \xCE\xA9 caf\xC3\xA9";
  const auto ids = model_->encode(text);
  EXPECT_GT(ids.size(), 10u);
  EXPECT_EQ(model_->decode(ids), text);
}

TEST_F(Tokenizer, DigitsAreAlwaysSplit) {
  // The corpus is full of multi-digit numbers; with split_digits no piece may hold more than one digit.
  const auto pieces = model_->encode_pieces("31415 and 2024 then 99999");
  int digits = 0;
  for (const auto& p : pieces)
    for (char c : p)
      if (c >= '0' && c <= '9') {
        ++digits;
        EXPECT_EQ(p.size(), 1u) << "piece '" << p << "' holds a digit and more";
      }
  EXPECT_EQ(digits, 14);
}

TEST_F(Tokenizer, NoDummyPrefixAndNfkc) {
  const auto pieces = model_->encode_pieces("the time");
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, "the\xE2\x96\x81time") << "no dummy-prefix space before the first word, U+2581 for the space";
  // NFKC folds fullwidth letters (U+FF54 U+FF48 U+FF45 = "the") to ASCII.
  EXPECT_EQ(model_->encode("\xEF\xBD\x94\xEF\xBD\x88\xEF\xBD\x85"), model_->encode("the"));
}

TEST_F(Tokenizer, SavedTrainerSettingsAreTheChallengeOnes) {
  // Field numbers from sentencepiece_model.proto: ModelProto 2 = TrainerSpec, 3 = NormalizerSpec.
  const auto top = parse_proto(pgolf::read_file(dir_ + "/model/sp.model"));
  const auto trainer = parse_proto(top.at(2).bytes);
  const auto norm = parse_proto(top.at(3).bytes);
  EXPECT_EQ(trainer.at(3).varint, 2u);     // model_type BPE
  EXPECT_EQ(trainer.at(4).varint, 320u);   // vocab_size
  float coverage;
  std::memcpy(&coverage, &trainer.at(10).fixed32, 4);
  EXPECT_FLOAT_EQ(coverage, 0.999f);       // character_coverage
  EXPECT_EQ(trainer.at(25).varint, 1u);    // split_digits
  EXPECT_EQ(trainer.at(33).varint, 0u);    // hard_vocab_limit
  EXPECT_EQ(trainer.at(35).varint, 1u);    // byte_fallback
  EXPECT_EQ(trainer.at(40).varint, 3u);    // unk_id
  EXPECT_EQ(trainer.at(41).varint, 1u);    // bos_id
  EXPECT_EQ(trainer.at(42).varint, 2u);    // eos_id
  EXPECT_EQ(trainer.at(43).varint, 0u);    // pad_id
  EXPECT_EQ(norm.at(1).bytes, "nmt_nfkc");  // normalizer name
  EXPECT_EQ(norm.at(3).varint, 0u);         // add_dummy_prefix
}

TEST_F(Tokenizer, WritesModelAndVocabOnly) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_ + "/model")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"sp.model", "sp.vocab"}));
  std::ifstream vocab(dir_ + "/model/sp.vocab");
  std::string line;
  int n = 0;
  while (std::getline(vocab, line)) {
    ASSERT_LT(n, 320);
    EXPECT_EQ(line.substr(0, line.find('\t')), model_->piece(n)) << "line " << n + 1;
    ++n;
  }
  EXPECT_EQ(n, 320);
}

TEST_F(Tokenizer, TrainingIsDeterministicAcrossThreadCounts) {
  pgolf::train_sentencepiece({dir_ + "/corpus.txt"}, 320, dir_ + "/t1/sp", 1);
  EXPECT_EQ(pgolf::read_file(dir_ + "/t1/sp.vocab"), pgolf::read_file(dir_ + "/model/sp.vocab"));
}

TEST_F(Tokenizer, TrainingFromJsonlUsesTheTextField) {
  // The same lines as documents of a JSON-lines file train the same model.
  std::ifstream in(dir_ + "/corpus.txt");
  std::string line, jsonl;
  int i = 0;
  std::string doc;
  while (std::getline(in, line)) {
    doc += line + "\n";
    if (++i % 3 == 0) {
      jsonl += pgolf::Json{{"id", i}, {"text", doc}}.dump() + "\n";
      doc.clear();
    }
  }
  if (!doc.empty()) jsonl += pgolf::Json{{"text", doc}}.dump() + "\n";
  pgolf::write_file_atomic(dir_ + "/c.jsonl", jsonl);
  pgolf::train_sentencepiece({dir_ + "/c.jsonl"}, 320, dir_ + "/t2/sp", 2);
  EXPECT_EQ(pgolf::read_file(dir_ + "/t2/sp.vocab"), pgolf::read_file(dir_ + "/model/sp.vocab"));
}

TEST_F(Tokenizer, TrainingErrorsLeaveNothing) {
  pgolf::write_file_atomic(dir_ + "/bad.jsonl", "{\"text\": \"a b\"}\n{\"txt\": \"c\"}\n");
  try {
    pgolf::train_sentencepiece({dir_ + "/bad.jsonl"}, 320, dir_ + "/bad/sp", 1);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2:"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ + "/bad"));
  // 100 < 256 byte pieces + 4 specials + the characters: SentencePiece refuses.
  EXPECT_THROW(pgolf::train_sentencepiece({dir_ + "/corpus.txt"}, 100, dir_ + "/small/sp", 1), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir_ + "/small"));
  EXPECT_THROW(pgolf::train_sentencepiece({dir_ + "/missing.txt"}, 320, dir_ + "/m/sp", 1), std::runtime_error);
}

TEST(SentencePieceModel, MissingModelSaysHowToMakeOne) {
  try {
    SentencePieceModel sp("/nonexistent/dir/tok.model");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("/nonexistent/dir/tok.model"), std::string::npos) << m;
    EXPECT_NE(m.find("pgolf-data train-tokenizer"), std::string::npos) << m;
    EXPECT_NE(m.find("make data"), std::string::npos) << m;
  }
}

TEST(SentencePieceModel, CorruptModelIsNamed) {
  const TempDir tmp("tokbad");
  const std::string& dir = tmp.path;
  pgolf::write_file_atomic(dir + "/junk.model", std::string("\xff\xff\xff\x01not a model", 15));
  try {
    SentencePieceModel sp(dir + "/junk.model");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir + "/junk.model"), std::string::npos) << m;
    EXPECT_NE(m.find("not a readable SentencePiece model"), std::string::npos) << m;
  }
}

TEST(TextInput, LineReaderPlainAndXz) {
  const TempDir tmp("lines");
  const std::string& dir = tmp.path;
  const std::string text = "alpha\n\nbeta gamma\r\nlast-without-newline";
  pgolf::write_file_atomic(dir + "/a.txt", text);
  const std::string xz = pgolf::testing::xz_compress(text);
  pgolf::write_file_atomic(dir + "/a.txt.xz", xz);
  for (const std::string f : {"/a.txt", "/a.txt.xz"}) {
    pgolf::LineReader r(dir + f);
    std::string line;
    std::vector<std::string> lines;
    while (r.next(line)) lines.push_back(line);
    EXPECT_EQ(lines, (std::vector<std::string>{"alpha", "", "beta gamma\r", "last-without-newline"})) << f;
    EXPECT_EQ(r.line_number(), 4);
    EXPECT_EQ(pgolf::LineReader(dir + f).read_all(), text) << f;
  }
  pgolf::write_file_atomic(dir + "/trunc.xz", xz.substr(0, xz.size() / 2));
  try {
    pgolf::LineReader(dir + "/trunc.xz").read_all();
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("trunc.xz: cannot decompress"), std::string::npos) << e.what();
  }
}

TEST(TextInput, JsonlTextField) {
  EXPECT_EQ(pgolf::jsonl_text(R"({"id": 7, "text": "h\u00e9llo\nworld"})", "f.jsonl", 1), "h\xC3\xA9llo\nworld");
  auto message = [](const std::string& line) {
    try {
      pgolf::jsonl_text(line, "d/f.jsonl", 12);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("{\"text\": 3}").rfind("d/f.jsonl:12: ", 0), 0u);
  EXPECT_NE(message("{\"text\": 3}").find("not a string"), std::string::npos);
  EXPECT_NE(message("{\"body\": \"x\"}").find("no field \"text\""), std::string::npos);
  EXPECT_NE(message("[\"text\"]").find("JSON object"), std::string::npos);
  EXPECT_NE(message("{\"text\": \"unterminated").find("not valid JSON"), std::string::npos);
  EXPECT_TRUE(pgolf::is_jsonl("a/b.jsonl"));
  EXPECT_TRUE(pgolf::is_jsonl("b.jsonl.xz"));
  EXPECT_FALSE(pgolf::is_jsonl("b.txt"));
  EXPECT_FALSE(pgolf::is_jsonl("b.json"));
}

}  // namespace
