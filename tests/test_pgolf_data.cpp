// The pgolf-data program, run as a subprocess: train-tokenizer, prepare (shard layout, determinism over
// thread counts, input formats, errors that leave nothing behind) and inspect.
#include <gtest/gtest.h>
#include <lzma.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/io.h"
#include "framework/shard.h"
#include "tokenizers/sentencepiece_model.h"

namespace fs = std::filesystem;

namespace {

const std::string kBin = std::string(PGOLF_BIN_DIR) + "/pgolf-data";

struct RunResult {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

RunResult run(const std::string& args) {
  RunResult r;
  FILE* p = ::popen((kBin + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

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
    ASSERT_EQ(train_rc_.rc, 0) << train_rc_.out;
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
  ASSERT_EQ(r.rc, 0) << r.out;
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
  ASSERT_EQ(a.rc, 0) << a.out;
  ASSERT_EQ(b.rc, 0) << b.out;
  ASSERT_EQ(c.rc, 0) << c.out;
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
  std::string xz(text.size() + 1024, '\0');
  size_t pos = 0;
  ASSERT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(text.data()),
                                    text.size(), reinterpret_cast<uint8_t*>(xz.data()), &pos, xz.size()),
            LZMA_OK);
  xz.resize(pos);
  pgolf::write_file_atomic(dir_ + "/val.jsonl.xz", xz);
  const RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl.xz --val " + dir_ +
                    "/val.jsonl.xz --out " + dir_ + "/xz --threads 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(list_dir(dir_ + "/xz"), (std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_val_000000.bin"}));
  EXPECT_EQ(read_split(dir_ + "/xz", "fineweb", "train", 100000000), expected_stream(val_docs_));
}

TEST_F(PgolfData, BadJsonLineNamesFileAndLineAndLeavesNothing) {
  // Line 1 fine, line 2 blank, line 3 lacks "text".
  pgolf::write_file_atomic(dir_ + "/bad.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"no text\"}\n");
  const std::string out = dir_ + "/bad_out";
  RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/train.jsonl " + dir_ + "/bad.jsonl --val " +
              dir_ + "/val.jsonl --out " + out + " --threads 2 --shard-tokens 100");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find(dir_ + "/bad.jsonl:3:"), std::string::npos) << r.out;
  EXPECT_TRUE(list_dir(out).empty()) << "left behind: " << (list_dir(out).empty() ? "" : list_dir(out)[0]);

  pgolf::write_file_atomic(dir_ + "/bad2.jsonl", "{\"text\": \"ok\"}\nnot json at all\n");
  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/bad2.jsonl --val " + dir_ + "/val.jsonl --out " +
          out);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find(dir_ + "/bad2.jsonl:2: not valid JSON"), std::string::npos) << r.out;
  EXPECT_TRUE(list_dir(out).empty());
}

TEST_F(PgolfData, FailureKeepsAnEarlierRunAndRerunReplacesStaleShards) {
  const std::string out = dir_ + "/keep";
  const std::string ok = "prepare --tokenizer " + model() + " --val " + dir_ + "/val.jsonl --out " + out + " --train ";
  ASSERT_EQ(run(ok + dir_ + "/train.jsonl --shard-tokens 300").rc, 0);
  const auto before = list_dir(out);
  ASSERT_GT(before.size(), 4u);
  pgolf::write_file_atomic(dir_ + "/bad3.jsonl", "[1, 2]\n");
  EXPECT_NE(run(ok + dir_ + "/bad3.jsonl --shard-tokens 300").rc, 0);
  EXPECT_EQ(list_dir(out), before);  // untouched, no temporary directory left
  // A rerun with bigger shards leaves only its own shards, not the earlier run's extra ones.
  pgolf::write_file_atomic(out + "/notes.txt", "mine");
  ASSERT_EQ(run(ok + dir_ + "/train.jsonl").rc, 0);
  EXPECT_EQ(list_dir(out),
            (std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_val_000000.bin", "notes.txt"}));
}

TEST_F(PgolfData, EmptyCorpusAndBadOutputAreErrors) {
  pgolf::write_file_atomic(dir_ + "/empty.jsonl", "\n  \n");
  RunResult r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/empty.jsonl --val " + dir_ +
              "/val.jsonl --out " + dir_ + "/e_out");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("no documents in the --train inputs"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/e_out"));

  pgolf::write_file_atomic(dir_ + "/a_file", "x");
  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl --val " + dir_ + "/val.jsonl --out " +
          dir_ + "/a_file/sub");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find(dir_ + "/a_file/sub: cannot create the output directory"), std::string::npos) << r.out;

  r = run("prepare --tokenizer " + dir_ + "/none.model --train " + dir_ + "/val.jsonl --val " + dir_ +
          "/val.jsonl --out " + dir_ + "/n_out");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("pgolf-data train-tokenizer"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/n_out"));

  r = run("prepare --tokenizer " + model() + " --train " + dir_ + "/missing.jsonl --val " + dir_ +
          "/val.jsonl --out " + dir_ + "/m_out");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find(dir_ + "/missing.jsonl: input file does not exist"), std::string::npos) << r.out;
}

TEST_F(PgolfData, InspectReportsCounts) {
  const std::string out = dir_ + "/insp";
  ASSERT_EQ(run("prepare --tokenizer " + model() + " --train " + dir_ + "/val.jsonl --val " + dir_ +
                "/val.jsonl --out " + out + " --prefix i")
                .rc,
            0);
  const auto stream = expected_stream(val_docs_);
  const uint16_t lo = *std::min_element(stream.begin(), stream.end());
  const uint16_t hi = *std::max_element(stream.begin(), stream.end());
  const RunResult r = run("inspect " + out + "/i_val_000000.bin");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string want = "magic 20240520 version 1 tokens " + std::to_string(stream.size()) + " documents 15 min_id " +
                           std::to_string(lo) + " max_id " + std::to_string(hi);
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out << "\nwanted: " << want;
  EXPECT_EQ(lo, 1);
  const RunResult both = run("inspect " + out + "/i_val_000000.bin " + out + "/i_train_000000.bin");
  EXPECT_NE(both.out.find("total: 2 files tokens " + std::to_string(2 * stream.size()) + " documents 30"),
            std::string::npos)
      << both.out;
  EXPECT_NE(run("inspect " + dir_ + "/val.jsonl").rc, 0);  // not a shard
}

TEST_F(PgolfData, HelpAndUsageErrors) {
  for (const std::string cmd : {"train-tokenizer", "prepare", "inspect"}) {
    const RunResult r = run(cmd + " --help");
    EXPECT_EQ(r.rc, 0) << cmd;
    EXPECT_EQ(r.out.rfind("usage: pgolf-data " + cmd, 0), 0u) << r.out;
  }
  EXPECT_EQ(run("--help").rc, 0);
  EXPECT_EQ(run("frobnicate").rc, 2);
  const RunResult r = run("prepare --tokenizer x --bogus");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find("unknown argument '--bogus'"), std::string::npos) << r.out;
  const RunResult v = run("train-tokenizer --input a.txt --vocab many --out p");
  EXPECT_EQ(v.rc, 2);
  EXPECT_NE(v.out.find("--vocab many: expected an integer"), std::string::npos) << v.out;
}

}  // namespace
