// The cap tokenizer (spec posttrain §3.5, reconstructed): the weighted sampler against exact inclusion
// probabilities, which pieces are eligible, the cap model's layout, encoding <cap> + lowercase piece and
// back, and its bytes: <cap> counts 0 and is no boundary, so the LUT total equals the base encoding's.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/eval.h"
#include "framework/io.h"
#include "tokenizers/byte_lut.h"
#include "tokenizers/cap_tokenizer.h"
#include "tokenizers/document_encoder.h"
#include "tokenizers/train_sentencepiece.h"

namespace fs = std::filesystem;
using pgolf::SentencePieceModel;

namespace {

const std::string S = "\xE2\x96\x81";  // U+2581

TEST(WeightedSample, SingleDrawsFollowTheWeights) {
  // k = 1: P(i) = w_i / sum w = 0.1, 0.2, 0.3, 0.4.
  const std::vector<double> w = {1, 2, 3, 4};
  std::vector<int> hits(4, 0);
  const int n = 20000;
  for (int seed = 0; seed < n; ++seed) ++hits[pgolf::weighted_sample_without_replacement(w, 1, seed)[0]];
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(hits[i] / double(n), (i + 1) / 10.0, 0.012) << i;  // ~4 sigma
}

TEST(WeightedSample, PairsFollowSuccessiveSamplingInclusionProbabilities) {
  // P(i in a sample of 2) = w_i/W + sum_{j != i} (w_j/W) * w_i/(W - w_j), computed in Python for 1..4.
  const std::vector<double> w = {1, 2, 3, 4};
  const double want[4] = {0.234524, 0.441270, 0.608333, 0.715873};
  std::vector<int> hits(4, 0);
  const int n = 20000;
  for (int seed = 0; seed < n; ++seed) {
    const auto s = pgolf::weighted_sample_without_replacement(w, 2, 1000000 + seed);
    ASSERT_EQ(s.size(), 2u);
    ASSERT_LT(s[0], s[1]);  // sorted, distinct
    for (size_t i : s) ++hits[i];
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(hits[i] / double(n), want[i], 0.015) << i;
}

TEST(WeightedSample, EdgeCasesAndDeterminism) {
  const std::vector<double> w = {5, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(pgolf::weighted_sample_without_replacement(w, 3, 42), pgolf::weighted_sample_without_replacement(w, 3, 42));
  std::set<std::vector<size_t>> seen;
  for (int seed = 0; seed < 20; ++seed) seen.insert(pgolf::weighted_sample_without_replacement(w, 3, seed));
  EXPECT_GT(seen.size(), 5u);
  EXPECT_EQ(pgolf::weighted_sample_without_replacement(w, 8, 1), (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(pgolf::weighted_sample_without_replacement(w, 0, 1).empty());
  EXPECT_THROW(pgolf::weighted_sample_without_replacement(w, 9, 1), std::runtime_error);
  EXPECT_THROW(pgolf::weighted_sample_without_replacement({1, 0}, 1, 1), std::runtime_error);
}

class CapTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* base = std::getenv("TMPDIR");
    dir_ = std::string(base && *base ? base : "/tmp") + "/pgolf_cap_XXXXXX";
    if (!::mkdtemp(dir_.data())) throw std::runtime_error("mkdtemp failed");
    const char* words[] = {"The", "the", "Model", "model", "When", "when", "Data", "data", "Golf", "golf", "THE",
                           "DATA", "of", "and", "iPhone", "McDonald", "Then", "then", "There", "there"};
    std::string corpus;
    uint32_t x = 11;
    for (int line = 0; line < 3000; ++line) {
      for (int w = 0; w < 10; ++w) {
        x = x * 1103515245u + 12345u;
        corpus += std::string(w ? " " : "") + words[(x >> 16) % 20];
      }
      corpus += ".\n";
    }
    pgolf::write_file_atomic(dir_ + "/c.txt", corpus);
    pgolf::train_sentencepiece({dir_ + "/c.txt"}, 360, dir_ + "/base", 2);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string base() { return dir_ + "/base.model"; }

  // Writes the cap model for (p, seed) with all-zero counts and returns its path.
  static std::string make(double p, uint64_t seed, const std::string& name,
                          std::vector<int64_t> counts = {}) {
    SentencePieceModel b(base());
    if (counts.empty()) counts.assign(b.vocab_size(), 0);
    const auto cap = pgolf::build_cap_model(base(), counts, p, seed);
    pgolf::write_file_atomic(dir_ + "/" + name + ".model", cap.model_bytes);
    return dir_ + "/" + name + ".model";
  }
  static std::string dir_;
};
std::string CapTokenizer::dir_;

TEST_F(CapTokenizer, EligiblePiecesAreCapitalisedWithALowercaseCounterpart) {
  SentencePieceModel sp(base());
  const auto pieces = sp.pieces();
  auto id_of = [&](const std::string& p) {
    auto it = std::find(pieces.begin(), pieces.end(), p);
    return it == pieces.end() ? -1 : static_cast<int>(it - pieces.begin());
  };
  const auto eligible = pgolf::cap_eligible_pieces(sp);
  const std::set<int> el(eligible.begin(), eligible.end());
  // Hand-picked: frequent words of the corpus are whole pieces in both cases.
  for (const std::string w : {"The", "Model", "When", "Data", "Golf"}) {
    const int cap = id_of(S + w);
    ASSERT_GE(cap, 0) << S + w << " is not a piece";
    std::string lower = w;
    lower[0] = static_cast<char>(lower[0] + 32);
    ASSERT_GE(id_of(S + lower), 0);
    EXPECT_TRUE(el.count(cap)) << w;
  }
  // Never eligible: two capitals, a capital not first, no capital.
  for (int i = 0; i < sp.vocab_size(); ++i) {
    const std::string& p = pieces[i];
    const std::string body = p.rfind(S, 0) == 0 ? p.substr(S.size()) : p;
    const int capitals = static_cast<int>(std::count_if(body.begin(), body.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
    if (capitals != 1 || !(body[0] >= 'A' && body[0] <= 'Z')) EXPECT_FALSE(el.count(i)) << p;
  }
  if (id_of(S + "THE") >= 0) EXPECT_FALSE(el.count(id_of(S + "THE")));
}

TEST_F(CapTokenizer, ModelLayoutAndDeterminism) {
  SentencePieceModel b(base());
  const auto eligible = pgolf::cap_eligible_pieces(b);
  ASSERT_GE(eligible.size(), 8u);
  std::vector<int64_t> zeros(b.vocab_size(), 0);
  const auto m = pgolf::build_cap_model(base(), zeros, 0.5, 7);
  EXPECT_EQ(m.eligible, eligible);
  EXPECT_EQ(m.removed.size(), static_cast<size_t>(std::llround(0.5 * eligible.size())));
  EXPECT_EQ(pgolf::build_cap_model(base(), zeros, 0.5, 7).model_bytes, m.model_bytes);
  EXPECT_NE(pgolf::build_cap_model(base(), zeros, 0.5, 8).removed, m.removed);
  EXPECT_TRUE(pgolf::build_cap_model(base(), zeros, 0.0, 7).removed.empty());

  const std::string path = make(0.5, 7, "cap");
  SentencePieceModel cap(path);
  EXPECT_EQ(cap.vocab_size(), b.vocab_size() - static_cast<int>(m.removed.size()) + 1);
  EXPECT_EQ(cap.piece(cap.vocab_size() - 1), "<cap>");
  // The kept pieces in base order; specials and bytes keep their ids.
  std::vector<std::string> kept;
  const std::set<int> removed(m.removed.begin(), m.removed.end());
  for (int i = 0; i < b.vocab_size(); ++i)
    if (!removed.count(i)) kept.push_back(b.piece(i));
  auto cap_pieces = cap.pieces();
  cap_pieces.pop_back();
  EXPECT_EQ(cap_pieces, kept);
  EXPECT_EQ(cap.bos_id(), 1);
  EXPECT_EQ(cap.piece(4), "<0x00>");
}

TEST_F(CapTokenizer, FrequentPiecesAreKept) {
  // Inverse-frequency weights: with every eligible piece but one removed, the one used 10^9 times stays.
  SentencePieceModel b(base());
  const auto eligible = pgolf::cap_eligible_pieces(b);
  const double p = (eligible.size() - 1.0) / eligible.size();
  for (size_t pick = 0; pick < eligible.size(); pick += 3) {
    std::vector<int64_t> counts(b.vocab_size(), 0);
    counts[eligible[pick]] = 1000000000;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const auto m = pgolf::build_cap_model(base(), counts, p, seed);
      ASSERT_EQ(m.removed.size(), eligible.size() - 1);
      EXPECT_EQ(std::count(m.removed.begin(), m.removed.end(), eligible[pick]), 0) << "seed " << seed;
    }
  }
}

TEST_F(CapTokenizer, EncodingUsesCapPlusLowercaseAndInverts) {
  const std::string path = make(1.0, 3, "all");  // every eligible piece removed
  const pgolf::CapEncoder enc(path, base());
  const std::string text = "The Model When data Golf the THE McDonald iPhone. Then There";
  const auto base_ids = enc.base().encode(text);
  const auto cap_ids = enc.from_base(base_ids);
  int removed_uses = 0;
  for (int b : base_ids) removed_uses += enc.is_removed(b);
  EXPECT_GE(removed_uses, 5);
  EXPECT_EQ(static_cast<int>(std::count(cap_ids.begin(), cap_ids.end(), enc.cap_id())), removed_uses);
  EXPECT_EQ(cap_ids.size(), base_ids.size() + removed_uses);
  // "▁The" -> <cap> "▁the".
  const auto the = enc.base().encode("x The");
  ASSERT_EQ(the.size(), 2u);
  EXPECT_EQ(enc.cap().piece(enc.from_base(the)[1]), "<cap>");
  EXPECT_EQ(enc.cap().piece(enc.from_base(the)[2]), S + "the");
  EXPECT_EQ(enc.to_base(cap_ids), base_ids);
  EXPECT_EQ(enc.base().decode(enc.to_base(cap_ids)), text);
  EXPECT_THROW(enc.to_base({enc.cap_id()}), std::runtime_error);
  // A base model that is not the cap model's base is refused.
  EXPECT_THROW(pgolf::CapEncoder(path, path), std::runtime_error);
}

TEST_F(CapTokenizer, CapCountsZeroBytesAndIsNoBoundary) {
  const std::string path = make(1.0, 3, "bytes");
  const pgolf::CapEncoder enc(path, base());
  const std::string text = "The Model When data Golf the THE McDonald iPhone, Then There";
  auto lut_total = [](const std::string& tokenizer, std::vector<int> ids, const std::vector<std::string>& zero) {
    pgolf::ByteCounterContext ctx;
    ctx.tokenizer_path = tokenizer;
    pgolf::Config cfg(pgolf::Json{{"name", "lut"}, {"zero_byte_pieces", zero}}, "eval.byte_counter");
    auto counter = pgolf::ByteCounterRegistry::get().build(cfg, ctx);
    ids.insert(ids.begin(), 1);
    auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64);
    const int64_t n = t.numel();
    return counter->target_bytes(t.slice(0, 0, n - 1), t.slice(0, 1, n), torch::arange(1, n)).sum().item<double>();
  };
  const auto base_ids = enc.base().encode(text);
  // Plain text that SentencePiece leaves as it is: both totals are its UTF-8 length.
  EXPECT_EQ(lut_total(base(), base_ids, {}), static_cast<double>(text.size()));
  EXPECT_EQ(lut_total(path, enc.from_base(base_ids), {"<cap>"}), static_cast<double>(text.size()));
  // Without the zero-byte entry the LUT would count <cap> as 5 bytes: refused.
  try {
    lut_total(path, enc.from_base(base_ids), {});
    ADD_FAILURE() << "no error";
  } catch (const pgolf::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"<cap>\""), std::string::npos) << e.what();
  }
  // The byte sidecar of the cap encoding: <cap> 0, the rest the original bytes.
  const pgolf::DocumentEncoder doc(pgolf::Transform::Cap, path, base());
  std::vector<uint16_t> tokens, bytes;
  doc.encode("  " + text + " ", tokens, &bytes);
  std::vector<uint16_t> want = {1};
  for (int id : enc.from_base(base_ids)) want.push_back(static_cast<uint16_t>(id));
  EXPECT_EQ(tokens, want);
  int64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    sum += bytes[i];
    if (tokens[i] == enc.cap_id()) EXPECT_EQ(bytes[i], 0) << i;
  }
  EXPECT_EQ(sum, static_cast<int64_t>(text.size() + 3));
  EXPECT_THROW(pgolf::DocumentEncoder(pgolf::Transform::Cap, path), std::runtime_error);  // no base
}

}  // namespace
