// The pgolf-data program, run as a subprocess: train-tokenizer, prepare (shard layout, determinism over
// thread counts, input formats, errors that leave nothing behind), inspect, and the CaseOps / sidecar /
// cap paths: caseops encode|decode, train-tokenizer --transform caseops, prepare --sidecar,
// make-cap-tokenizer + prepare --transform cap, and non-UTF-8 input.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "framework/shard.h"
#include "tokenizers/cap_tokenizer.h"
#include "tokenizers/caseops.h"
#include "tokenizers/sentencepiece_model.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(PGOLF_BIN_DIR) + "/pgolf-data";

using RunResult = pgolf::testing::CommandResult;

RunResult run(const std::string& args) { return pgolf::testing::run_command(kBin + " " + args); }

// Deterministic documents: several lines of words and numbers, some non-ASCII, some empty.
std::vector<std::string> make_docs(int n, uint32_t seed) {
  static const char* words[] = {"data", "model", "token", "the", "of", "and", "shard", "loss", "bits",
                                "byte", "train", "val", "golf", "caf\xC3\xA9", "na\xC3\xAFve", "to", "is"};
  std::vector<std::string> docs;
  uint32_t x = seed;
  auto next = [&] {
    x = x * 1664525u + 1013904223u;
    return x >> 8;
  };
  for (int d = 0; d < n; ++d) {
    std::string doc;
    const int lines = next() % 4;  // 0 lines: an empty document
    for (int l = 0; l < lines; ++l) {
      const int w = 3 + next() % 12;
      for (int i = 0; i < w; ++i) {
        if (i) doc += ' ';
        doc += next() % 6 == 0 ? std::to_string(next() % 5000) : words[next() % 17];
      }
      doc += ".\n";
    }
    docs.push_back(doc);
  }
  return docs;
}

std::string to_jsonl(const std::vector<std::string>& docs) {
  std::string s;
  for (size_t i = 0; i < docs.size(); ++i) {
    s += pgolf::Json{{"id", i}, {"text", docs[i]}}.dump() + "\n";
    if (i == 3) s += "\n";  // blank lines are skipped
  }
  return s;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class PgolfData : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* base = std::getenv("TMPDIR");
    dir_ = std::string(base && *base ? base : "/tmp") + "/pgolf_data_XXXXXX";
    if (!::mkdtemp(dir_.data())) throw std::runtime_error("mkdtemp failed");
    train_docs_ = make_docs(120, 1);
    val_docs_ = make_docs(15, 2);
    pgolf::write_file_atomic(dir_ + "/train.jsonl", to_jsonl(train_docs_));
    pgolf::write_file_atomic(dir_ + "/val.jsonl", to_jsonl(val_docs_));
    if (!fs::exists(kBin)) return;  // each test reports the missing program
    train_rc_ = run("train-tokenizer --input " + dir_ + "/train.jsonl --vocab 300 --out " + dir_ +
                    "/tok/sp --threads 2");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  void SetUp() override {
    ASSERT_TRUE(fs::exists(kBin)) << kBin << " is missing: build it (ninja pgolf-data)";
    ASSERT_EQ(train_rc_.code, 0) << train_rc_.out;
  }

  static std::string model() { return dir_ + "/tok/sp.model"; }

  // [BOS] + ids for every document, in order: the stream prepare must write.
  static std::vector<uint16_t> expected_stream(const std::vector<std::string>& docs) {
    pgolf::SentencePieceModel sp(model());
    std::vector<uint16_t> out;
    for (const auto& d : docs) {
      out.push_back(1);
      for (int id : sp.encode(d)) out.push_back(static_cast<uint16_t>(id));
    }
    return out;
  }

  // The concatenated shards of one split, checking names and that all but the last are full.
  static std::vector<uint16_t> read_split(const std::string& out, const std::string& prefix, const std::string& split,
                                          int64_t shard_tokens) {
    std::vector<uint16_t> stream;
    const auto files = pgolf::glob_shards(out + "/" + prefix + "_" + split + "_*.bin");
    for (size_t i = 0; i < files.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "/%s_%s_%06zu.bin", prefix.c_str(), split.c_str(), i);
      EXPECT_EQ(files[i], out + name);
      pgolf::ShardView v(files[i]);
      if (i + 1 < files.size()) EXPECT_EQ(v.size(), shard_tokens) << files[i];
      else EXPECT_LE(v.size(), shard_tokens) << files[i];
      stream.insert(stream.end(), v.data(), v.data() + v.size());
    }
    return stream;
  }

  static std::string dir_;
  static std::vector<std::string> train_docs_, val_docs_;
  static RunResult train_rc_;
};
std::string PgolfData::dir_;
std::vector<std::string> PgolfData::train_docs_, PgolfData::val_docs_;
RunResult PgolfData::train_rc_;

TEST_F(PgolfData, TrainTokenizerWritesAModel) {
  pgolf::SentencePieceModel sp(model());
  EXPECT_EQ(sp.vocab_size(), 300);
  EXPECT_EQ(sp.piece(1), "<s>");
  EXPECT_TRUE(fs::exists(dir_ + "/tok/sp.vocab"));
}

TEST_F(PgolfData, PrepareWritesBosPlusIdsPerDocument) {
  const std::string out = dir_ + "/p1";
  const RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/train.jsonl --val " + dir_ +
                    "/val.jsonl --out " + out + " --prefix t --shard-tokens 500 --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto want_train = expected_stream(train_docs_), want_val = expected_stream(val_docs_);
  const auto train = read_split(out, "t", "train", 500), val = read_split(out, "t", "val", 500);
  EXPECT_EQ(train, want_train);
  EXPECT_EQ(val, want_val);
  // Token count = sum over documents of 1 + len(ids); one BOS per document, the stream starts with one.
  size_t total = 0;
  pgolf::SentencePieceModel sp(model());
  for (const auto& d : train_docs_) total += 1 + sp.encode(d).size();
  EXPECT_EQ(train.size(), total);
  EXPECT_EQ(std::count(train.begin(), train.end(), 1), 120);
  EXPECT_EQ(train.front(), 1);
  EXPECT_EQ(list_dir(out).size(), (train.size() + 499) / 500 + (val.size() + 499) / 500);  // nothing else
  EXPECT_NE(r.out.find("train: 120 documents, " + std::to_string(total) + " tokens"), std::string::npos) << r.out;
}

TEST_F(PgolfData, OutputDoesNotDependOnThreads) {
  // Small batches so that two threads really encode batches side by side; two train files keep order.
  pgolf::write_file_atomic(dir_ + "/doc.txt", train_docs_[5]);
  const std::string common = "prepare --tokenizer " + model() + " --train " + dir_ + "/train.jsonl " + dir_ +
                             "/doc.txt " + dir_ + "/val.jsonl --val " + dir_ + "/val.jsonl --shard-tokens 700 " +
                             "--batch-bytes 300 --prefix d --out ";
  const RunResult a = run(common + dir_ + "/t1 --threads 1");
  const RunResult b = run(common + dir_ + "/t2 --threads 2");
  const RunResult c = run(common + dir_ + "/t3 --threads 3");
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  ASSERT_EQ(c.code, 0) << c.out;
  const auto names = list_dir(dir_ + "/t1");
  ASSERT_GT(names.size(), 3u);
  EXPECT_EQ(list_dir(dir_ + "/t2"), names);
  EXPECT_EQ(list_dir(dir_ + "/t3"), names);
  for (const auto& n : names) {
    const std::string one = pgolf::read_file(dir_ + "/t1/" + n);
    EXPECT_EQ(pgolf::read_file(dir_ + "/t2/" + n), one) << n;
    EXPECT_EQ(pgolf::read_file(dir_ + "/t3/" + n), one) << n;
  }
  // The plain-text file is one document, between the two JSON-lines files.
  std::vector<std::string> docs = train_docs_;
  docs.push_back(train_docs_[5]);
  docs.insert(docs.end(), val_docs_.begin(), val_docs_.end());
  EXPECT_EQ(read_split(dir_ + "/t1", "d", "train", 700), expected_stream(docs));
}

TEST_F(PgolfData, XzInputGivesTheSameShards) {
  const std::string text = pgolf::read_file(dir_ + "/val.jsonl");
  pgolf::write_file_atomic(dir_ + "/val.jsonl.xz", pgolf::testing::xz_compress(text));
  const RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl.xz --val " + dir_ +
                    "/val.jsonl.xz --out " + dir_ + "/xz --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(list_dir(dir_ + "/xz"), (std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_val_000000.bin"}));
  EXPECT_EQ(read_split(dir_ + "/xz", "fineweb", "train", 100000000), expected_stream(val_docs_));
}

TEST_F(PgolfData, BadJsonLineNamesFileAndLineAndLeavesNothing) {
  // Line 1 fine, line 2 blank, line 3 lacks "text".
  pgolf::write_file_atomic(dir_ + "/bad.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"no text\"}\n");
  const std::string out = dir_ + "/bad_out";
  RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/train.jsonl " + dir_ + "/bad.jsonl --val " +
              dir_ + "/val.jsonl --out " + out + " --threads 2 --shard-tokens 100");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(dir_ + "/bad.jsonl:3:"), std::string::npos) << r.out;
  EXPECT_TRUE(list_dir(out).empty()) << "left behind: " << (list_dir(out).empty() ? "" : list_dir(out)[0]);

  pgolf::write_file_atomic(dir_ + "/bad2.jsonl", "{\"text\": \"ok\"}\nnot json at all\n");
  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/bad2.jsonl --val " + dir_ + "/val.jsonl --out " +
          out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(dir_ + "/bad2.jsonl:2: not valid JSON"), std::string::npos) << r.out;
  EXPECT_TRUE(list_dir(out).empty());
}

TEST_F(PgolfData, FailureKeepsAnEarlierRunAndRerunReplacesStaleShards) {
  const std::string out = dir_ + "/keep";
  const std::string ok = "prepare --tokenizer " + model() + " --val " + dir_ + "/val.jsonl --out " + out + " --train ";
  ASSERT_EQ(run(ok + dir_ + "/train.jsonl --shard-tokens 300").code, 0);
  const auto before = list_dir(out);
  ASSERT_GT(before.size(), 4u);
  pgolf::write_file_atomic(dir_ + "/bad3.jsonl", "[1, 2]\n");
  EXPECT_NE(run(ok + dir_ + "/bad3.jsonl --shard-tokens 300").code, 0);
  EXPECT_EQ(list_dir(out), before);  // untouched, no temporary directory left
  // A rerun with bigger shards leaves only its own shards, not the earlier run's extra ones.
  pgolf::write_file_atomic(out + "/notes.txt", "mine");
  ASSERT_EQ(run(ok + dir_ + "/train.jsonl").code, 0);
  EXPECT_EQ(list_dir(out),
            (std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_val_000000.bin", "notes.txt"}));
}

TEST_F(PgolfData, EmptyCorpusAndBadOutputAreErrors) {
  pgolf::write_file_atomic(dir_ + "/empty.jsonl", "\n  \n");
  RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/empty.jsonl --val " + dir_ +
              "/val.jsonl --out " + dir_ + "/e_out");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("no documents in the --train inputs"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/e_out"));

  pgolf::write_file_atomic(dir_ + "/a_file", "x");
  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl --val " + dir_ + "/val.jsonl --out " +
          dir_ + "/a_file/sub");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(dir_ + "/a_file/sub: cannot create the output directory"), std::string::npos) << r.out;

  r = run("prepare --tokenizer " + dir_ + "/none.model --train " + dir_ + "/val.jsonl --val " + dir_ +
          "/val.jsonl --out " + dir_ + "/n_out");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("pgolf-data train-tokenizer"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/n_out"));

  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/missing.jsonl --val " + dir_ +
          "/val.jsonl --out " + dir_ + "/m_out");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find(dir_ + "/missing.jsonl: input file does not exist"), std::string::npos) << r.out;
}

TEST_F(PgolfData, InspectReportsCounts) {
  const std::string out = dir_ + "/insp";
  ASSERT_EQ(run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl --val " + dir_ +
                "/val.jsonl --out " + out + " --prefix i")
                .code,
            0);
  const auto stream = expected_stream(val_docs_);
  const uint16_t lo = *std::min_element(stream.begin(), stream.end());
  const uint16_t hi = *std::max_element(stream.begin(), stream.end());
  const RunResult r = run("inspect " + out + "/i_val_000000.bin");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string want = "magic 20240520 version 1 tokens " + std::to_string(stream.size()) + " documents 15 min_id " +
                           std::to_string(lo) + " max_id " + std::to_string(hi);
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out << "\nwanted: " << want;
  EXPECT_EQ(lo, 1);
  const RunResult both = run("inspect " + out + "/i_val_000000.bin " + out + "/i_train_000000.bin");
  EXPECT_NE(both.out.find("total: 2 files tokens " + std::to_string(2 * stream.size()) + " documents 30"),
            std::string::npos)
      << both.out;
  EXPECT_NE(run("inspect " + dir_ + "/val.jsonl").code, 0);  // not a shard
}

TEST_F(PgolfData, HelpAndUsageErrors) {
  for (const std::string cmd : {"train-tokenizer", "prepare", "inspect", "caseops", "make-cap-tokenizer"}) {
    const RunResult r = run(cmd + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_EQ(r.out.rfind("usage: pgolf-data " + cmd, 0), 0u) << r.out;
  }
  EXPECT_EQ(run("--help").code, 0);
  EXPECT_EQ(run("frobnicate").code, 2);
  const RunResult r = run("prepare --tokenizer x --bogus");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown argument '--bogus'"), std::string::npos) << r.out;
  const RunResult v = run("train-tokenizer --input a.txt --vocab many --out p");
  EXPECT_EQ(v.code, 2);
  EXPECT_NE(v.out.find("--vocab many: expected an integer"), std::string::npos) << v.out;
}


// ---- CaseOps, sidecars, cap ----------------------------------------------------------------------

const std::string kT = "\xEE\x80\x81", kA = "\xEE\x80\x82", kC = "\xEE\x80\x83", kE = "\xEE\x80\x84";

// Mixed-case documents with the CaseOps trouble makers, literal operators, non-ASCII text and whitespace
// that SentencePiece rewrites or drops (leading, trailing, runs, tabs, newlines).
std::vector<std::string> make_mixed_docs(int n, uint32_t seed) {
  static const std::vector<std::string> words = {
      "The", "the", "NASA", "iPhone", "McDonald", "I", "a", "model", "Model", "MODEL", "token", "Data", "don't",
      "IT'S", "x86", "COVID19", "caf\xC3\xA9", "\xC3\x89" "cole", "\xE6\x97\xA5\xE6\x9C\xAC", "\xEF\xAC\x81ne",
      "\xEF\xBC\xA1\xEF\xBC\xA2", "x\xC2\xB2", "\xF0\x9F\x98\x80", kT, kE, "ABCdef", "Golf", "of", "and", "2024"};
  static const std::vector<std::string> gaps = {" ", " ", " ", "  ", "\t", "\n", " \n\n ", ", ", ". "};
  std::mt19937 rng(seed);
  std::vector<std::string> docs;
  for (int d = 0; d < n; ++d) {
    std::string doc = rng() % 4 == 0 ? "  " : "";
    const int len = 3 + rng() % 40;
    for (int i = 0; i < len; ++i) {
      if (i) doc += gaps[rng() % gaps.size()];
      doc += words[rng() % words.size()];
    }
    if (rng() % 3 == 0) doc += " \n";
    docs.push_back(doc);
  }
  return docs;
}

class PgolfDataCaseOps : public PgolfData {
 protected:
  static void SetUpTestSuite() {
    PgolfData::SetUpTestSuite();
    mixed_train_ = make_mixed_docs(300, 3);
    mixed_val_ = make_mixed_docs(40, 4);
    pgolf::write_file_atomic(dir_ + "/mtrain.jsonl", to_jsonl(mixed_train_));
    pgolf::write_file_atomic(dir_ + "/mval.jsonl", to_jsonl(mixed_val_));
    if (!fs::exists(kBin)) return;
    co_rc_ = run("train-tokenizer --transform caseops --input " + dir_ + "/mtrain.jsonl --vocab 400 --out " + dir_ +
                 "/co/sp --threads 2");
    plain_rc_ = run("train-tokenizer --input " + dir_ + "/mtrain.jsonl --vocab 400 --out " + dir_ + "/mplain/sp --threads 2");
  }
  void SetUp() override {
    PgolfData::SetUp();
    ASSERT_EQ(co_rc_.code, 0) << co_rc_.out;
    ASSERT_EQ(plain_rc_.code, 0) << plain_rc_.out;
  }
  static std::string co_model() { return dir_ + "/co/sp.model"; }
  static std::string plain_model() { return dir_ + "/mplain/sp.model"; }

  // Splits a val token stream at BOS and sums the aligned sidecar per document.
  static std::vector<int64_t> per_doc_sums(const std::vector<uint16_t>& tokens, const std::vector<uint16_t>& bytes) {
    std::vector<int64_t> sums;
    EXPECT_EQ(tokens.size(), bytes.size());
    for (size_t i = 0; i < tokens.size() && i < bytes.size(); ++i) {
      if (tokens[i] == 1) {
        EXPECT_EQ(bytes[i], 0) << "BOS at " << i;
        sums.push_back(0);
      }
      if (!sums.empty()) sums.back() += bytes[i];
    }
    return sums;
  }
  static std::vector<int64_t> utf8_lengths(const std::vector<std::string>& docs) {
    std::vector<int64_t> out;
    for (const auto& d : docs) out.push_back(static_cast<int64_t>(d.size()));
    return out;
  }

  static std::vector<std::string> mixed_train_, mixed_val_;
  static RunResult co_rc_, plain_rc_;
};
std::vector<std::string> PgolfDataCaseOps::mixed_train_, PgolfDataCaseOps::mixed_val_;
RunResult PgolfDataCaseOps::co_rc_, PgolfDataCaseOps::plain_rc_;

TEST_F(PgolfDataCaseOps, CaseOpsEncodeDecodeReproducesTheInputByteForByte) {
  // ~2.5 MB, so that the 1 MiB read chunks cut words, 3- and 4-byte characters and ESC pairs.
  std::mt19937 rng(5);
  static const std::vector<std::string> atoms = {"a", "Z", "I", "The ", "NASA", "iPhone", "McDonald", "'", "7", " ",
                                                 "\n", kT, kA, kC, kE, "\xC3\x89", "\xE6\x97\xA5", "\xF0\x9F\x98\x80"};
  std::string text;
  while (text.size() < 2500000) text += atoms[rng() % atoms.size()];
  pgolf::write_file_atomic(dir_ + "/cx.txt", text);
  const std::string enc = dir_ + "/cx.enc", dec = dir_ + "/cx.dec";
  RunResult r = run("caseops encode < " + dir_ + "/cx.txt > " + enc);
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("caseops decode < " + enc + " > " + dec);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string encoded = pgolf::read_file(enc);
  EXPECT_EQ(encoded, pgolf::caseops_encode(text));
  EXPECT_EQ(std::count_if(encoded.begin(), encoded.end(), [](char c) { return c >= 'A' && c <= 'Z'; }), 0);
  EXPECT_TRUE(pgolf::read_file(dec) == text) << "decode(encode(x)) != x";
  // The spec vector through the program.
  pgolf::write_file_atomic(dir_ + "/nasa.txt", "The NASA iPhone");
  ASSERT_EQ(run("caseops encode < " + dir_ + "/nasa.txt > " + enc).code, 0);
  EXPECT_EQ(pgolf::read_file(enc), kT + "the " + kA + "nasa i" + kC + "phone");
  // Errors: invalid UTF-8 in, and a dangling operator.
  pgolf::write_file_atomic(dir_ + "/bad.txt", "ok \xC3\x28");
  r = run("caseops encode < " + dir_ + "/bad.txt");  // stdout and stderr both come back in r.out
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not valid UTF-8 at byte 3"), std::string::npos) << r.out;
  pgolf::write_file_atomic(dir_ + "/dangling.txt", "ab " + kT);
  r = run("caseops decode < " + dir_ + "/dangling.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("caseops decode: byte 6"), std::string::npos) << r.out;
  EXPECT_EQ(run("caseops").code, 2);
  EXPECT_EQ(run("caseops rot13").code, 2);
}

TEST_F(PgolfDataCaseOps, TrainTokenizerCaseOpsReservesTheOperators) {
  pgolf::SentencePieceModel sp(co_model());
  EXPECT_EQ(sp.vocab_size(), 400);
  EXPECT_EQ(sp.piece(4), kT);
  EXPECT_EQ(sp.piece(5), kA);
  EXPECT_EQ(sp.piece(6), kC);
  EXPECT_EQ(sp.piece(7), kE);
  EXPECT_EQ(sp.piece(8), "<0x00>");
  const RunResult r = run("train-tokenizer --transform upper --input x --vocab 300 --out y");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown transform 'upper'"), std::string::npos) << r.out;
}

TEST_F(PgolfDataCaseOps, PrepareWithSidecarCountsEachDocumentsUtf8Bytes) {
  const std::string common = "prepare --transform caseops --sidecar --tokenizer " + co_model() + " --train " + dir_ +
                             "/mtrain.jsonl --val " + dir_ + "/mval.jsonl --shard-tokens 900 --batch-bytes 2000 --out ";
  const RunResult a = run(common + dir_ + "/s1 --threads 1");
  const RunResult b = run(common + dir_ + "/s3 --threads 3");
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_EQ(b.code, 0) << b.out;
  const auto names = list_dir(dir_ + "/s1");
  EXPECT_EQ(list_dir(dir_ + "/s3"), names);
  for (const auto& n : names) EXPECT_TRUE(pgolf::read_file(dir_ + "/s1/" + n) == pgolf::read_file(dir_ + "/s3/" + n)) << n;

  // Sidecar shards pair with the val shards one to one, same lengths.
  const auto val_files = pgolf::glob_shards(dir_ + "/s1/fineweb_val_*.bin");
  const auto side_files = pgolf::glob_shards(dir_ + "/s1/fineweb_val_bytes_*.bin", false);
  ASSERT_EQ(side_files.size(), val_files.size());
  ASSERT_GE(val_files.size(), 2u);
  std::vector<uint16_t> tokens, bytes;
  for (size_t i = 0; i < val_files.size(); ++i) {
    char want[64];
    std::snprintf(want, sizeof want, "/fineweb_val_bytes_%06zu.bin", i);
    EXPECT_EQ(side_files[i], dir_ + "/s1" + want);
    pgolf::ShardView t(val_files[i]), s(side_files[i]);
    EXPECT_EQ(t.size(), s.size()) << val_files[i];
    tokens.insert(tokens.end(), t.data(), t.data() + t.size());
    bytes.insert(bytes.end(), s.data(), s.data() + s.size());
  }
  EXPECT_EQ(per_doc_sums(tokens, bytes), utf8_lengths(mixed_val_));
  // The tokens are SentencePiece's over the CaseOps text.
  pgolf::SentencePieceModel sp(co_model());
  std::vector<uint16_t> want = {};
  int64_t total = 0;
  for (const auto& d : mixed_val_) {
    want.push_back(1);
    for (int id : sp.encode(pgolf::caseops_encode(d))) want.push_back(static_cast<uint16_t>(id));
    total += static_cast<int64_t>(d.size());
  }
  EXPECT_EQ(tokens, want);
  EXPECT_NE(a.out.find("val sidecar: " + std::to_string(total) + " bytes (the documents hold " +
                       std::to_string(total) + " UTF-8 bytes)"),
            std::string::npos)
      << a.out;
  // inspect: a sidecar reports its byte total, several add up.
  std::string args;
  for (const auto& f : side_files) args += " " + f;
  const RunResult r = run("inspect" + args);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("sidecar total: " + std::to_string(side_files.size()) + " files bytes " + std::to_string(total)),
            std::string::npos)
      << r.out;
  pgolf::ShardView s0(side_files[0]);
  int64_t first = 0;
  for (int64_t i = 0; i < s0.size(); ++i) first += s0.data()[i];
  EXPECT_NE(r.out.find(side_files[0] + ": magic 20240520 version 1 sidecar entries " + std::to_string(s0.size()) +
                       " bytes " + std::to_string(first)),
            std::string::npos)
      << r.out;
  // A rerun without --sidecar removes the old sidecars, which would no longer match.
  ASSERT_EQ(run("prepare --transform caseops --tokenizer " + co_model() + " --train " + dir_ + "/mtrain.jsonl --val " +
                dir_ + "/mval.jsonl --out " + dir_ + "/s1")
                .code,
            0);
  EXPECT_EQ(list_dir(dir_ + "/s1"), (std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_val_000000.bin"}));
}

TEST_F(PgolfDataCaseOps, PlainSidecarAndTransformMismatches) {
  const RunResult r = run("prepare --sidecar --tokenizer " + plain_model() + " --train " + dir_ + "/mtrain.jsonl --val " +
                          dir_ + "/mval.jsonl --out " + dir_ + "/pl --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  pgolf::ShardView t(dir_ + "/pl/fineweb_val_000000.bin"), s(dir_ + "/pl/fineweb_val_bytes_000000.bin");
  EXPECT_EQ(per_doc_sums(std::vector<uint16_t>(t.data(), t.data() + t.size()),
                         std::vector<uint16_t>(s.data(), s.data() + s.size())),
            utf8_lengths(mixed_val_));

  RunResult m = run("prepare --tokenizer " + co_model() + " --train " + dir_ + "/mval.jsonl --val " + dir_ +
                    "/mval.jsonl --out " + dir_ + "/mm");
  EXPECT_EQ(m.code, 1);
  EXPECT_NE(m.out.find("is a CaseOps tokenizer"), std::string::npos) << m.out;
  EXPECT_FALSE(fs::exists(dir_ + "/mm"));
  m = run("prepare --transform caseops --tokenizer " + plain_model() + " --train " + dir_ + "/mval.jsonl --val " + dir_ +
          "/mval.jsonl --out " + dir_ + "/mm");
  EXPECT_EQ(m.code, 1);
  EXPECT_NE(m.out.find("has no CaseOps operator pieces"), std::string::npos) << m.out;
  m = run("prepare --transform casefold --sidecar --tokenizer " + plain_model() + " --train " + dir_ +
          "/mval.jsonl --val " + dir_ + "/mval.jsonl --out " + dir_ + "/mm");
  EXPECT_EQ(m.code, 2);
  EXPECT_NE(m.out.find("--sidecar: casefold"), std::string::npos) << m.out;
  m = run("prepare --transform cap --tokenizer " + plain_model() + " --train " + dir_ + "/mval.jsonl --val " + dir_ +
          "/mval.jsonl --out " + dir_ + "/mm");
  EXPECT_EQ(m.code, 2);
  EXPECT_NE(m.out.find("--transform cap needs --base-tokenizer"), std::string::npos) << m.out;
  EXPECT_FALSE(fs::exists(dir_ + "/mm"));
}

TEST_F(PgolfDataCaseOps, NonUtf8TextIsAnErrorThatLeavesNothing) {
  pgolf::write_file_atomic(dir_ + "/latin1.txt", "caf\xE9 au lait\n");  // Latin-1, not UTF-8
  RunResult r = run("prepare --tokenizer " + plain_model() + " --train " + dir_ + "/mtrain.jsonl " + dir_ +
                    "/latin1.txt --val " + dir_ + "/mval.jsonl --out " + dir_ + "/nu --threads 2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(dir_ + "/latin1.txt: the text is not valid UTF-8 at byte 3"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/nu"));
  r = run("prepare --transform caseops --tokenizer " + co_model() + " --train " + dir_ + "/latin1.txt --val " + dir_ +
          "/mval.jsonl --out " + dir_ + "/nu");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(dir_ + "/latin1.txt: caseops encode: the input is not valid UTF-8 at byte 3"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/nu"));
  r = run("train-tokenizer --input " + dir_ + "/latin1.txt --vocab 300 --out " + dir_ + "/nu/sp");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(dir_ + "/latin1.txt:1: the text is not valid UTF-8 (byte 3"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/nu"));
  // In JSON lines the parser rejects it, naming the line.
  pgolf::write_file_atomic(dir_ + "/latin1.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"caf\xE9\"}\n");
  r = run("prepare --tokenizer " + plain_model() + " --train " + dir_ + "/latin1.jsonl --val " + dir_ +
          "/mval.jsonl --out " + dir_ + "/nu");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(dir_ + "/latin1.jsonl:2: not valid JSON"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/nu"));
}

TEST_F(PgolfDataCaseOps, MakeCapTokenizerAndPrepareCap) {
  RunResult r = run("make-cap-tokenizer --base " + plain_model() + " --input " + dir_ + "/mtrain.jsonl --p 1 --seed 9 " +
                    "--out " + dir_ + "/cap/cap --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  pgolf::SentencePieceModel base(plain_model());
  const size_t eligible = pgolf::cap_eligible_pieces(base).size();
  ASSERT_GE(eligible, 2u) << r.out;
  const size_t removed = eligible;  // p = 1: every eligible piece goes, so the val text surely has a <cap>
  EXPECT_NE(r.out.find(std::to_string(eligible) + " eligible capitalised pieces, " + std::to_string(removed) + " removed"),
            std::string::npos)
      << r.out;
  const pgolf::CapEncoder cap(dir_ + "/cap/cap.model", plain_model());
  EXPECT_EQ(cap.cap().vocab_size(), base.vocab_size() - static_cast<int>(removed) + 1);
  EXPECT_TRUE(fs::exists(dir_ + "/cap/cap.vocab"));

  r = run("prepare --transform cap --sidecar --tokenizer " + dir_ + "/cap/cap.model --base-tokenizer " + plain_model() +
          " --train " + dir_ + "/mtrain.jsonl --val " + dir_ + "/mval.jsonl --out " + dir_ + "/cp --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  pgolf::ShardView t(dir_ + "/cp/fineweb_val_000000.bin"), s(dir_ + "/cp/fineweb_val_bytes_000000.bin");
  const std::vector<uint16_t> tokens(t.data(), t.data() + t.size()), bytes(s.data(), s.data() + s.size());
  std::vector<uint16_t> want;
  for (const auto& d : mixed_val_) {
    want.push_back(1);
    for (int id : cap.from_base(base.encode(d))) want.push_back(static_cast<uint16_t>(id));
  }
  EXPECT_EQ(tokens, want);
  EXPECT_GT(std::count(tokens.begin(), tokens.end(), static_cast<uint16_t>(cap.cap_id())), 0);
  EXPECT_EQ(per_doc_sums(tokens, bytes), utf8_lengths(mixed_val_));
}

}  // namespace
