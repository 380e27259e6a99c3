// Training a SentencePiece model with the challenge's trainer settings (spec posttrain §3.1), and the text
// inputs that training and `pgolf-data prepare` read: plain text, JSON lines (field `text`), either
// optionally xz-compressed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

// Lines of a file, decompressing it on the fly when its name ends in ".xz".
class LineReader {
 public:
  // Throws naming the file if it cannot be opened.
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (a final line without '\n' counts too); false at the end.
  bool next(std::string& line);
  // 1-based number of the line last returned.
  int64_t line_number() const { return line_no_; }
  // Whole (decompressed) contents; only before any next().
  std::string read_all();
  const std::string& path() const { return path_; }

 private:
  bool fill();  // appends more decompressed bytes to buf_; false at end of input
  std::string path_;
  std::FILE* file_ = nullptr;
  struct Xz;
  std::unique_ptr<Xz> xz_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_no_ = 0;
};

// .jsonl and .jsonl.xz hold one JSON document per line; anything else is plain text.
bool is_jsonl(const std::string& path);
// The string field `text` of one JSON line; throws "<file>:<line>: ..." when the line is not a JSON object
// with a string `text`.
std::string jsonl_text(const std::string& line, const std::string& file, int64_t line_no);
// True for lines with nothing but whitespace (JSON-lines readers skip them).
bool is_blank(const std::string& line);

struct SpTrainOptions {
  // At most this many sentences are sampled from the input (SentencePiece input_sentence_size), so memory
  // stays bounded on large corpora; the sample is shuffled with a fixed seed.
  int64_t max_sentences = 10'000'000;
  uint32_t seed = 1337;
  bool verbose = false;  // SentencePiece's own progress log on stderr
  // Applied to each document (each line of a text file) before it is split into sentences: the CaseOps
  // or casefold transform. Empty: none. Its errors are reported with the file and line.
  std::function<std::string(std::string_view)> transform;
  // SentencePiece user_defined_symbols: always single pieces, ids right after pad/bos/eos/unk (CaseOps).
  std::vector<std::string> user_defined_symbols;
};

// Trains a BPE model on `inputs` and writes PREFIX.model and PREFIX.vocab atomically. Training sentences
// are lines: the lines of text files, and the lines of each JSON document's `text` (blank lines skipped);
// text that is not valid UTF-8 is an error naming the file and line.
// Settings: BPE, vocab_size, character_coverage 0.999, byte_fallback, split_digits, nmt_nfkc without a
// dummy prefix, pad/bos/eos/unk = 0/1/2/3, hard_vocab_limit false. Returns the number of sentences read.
int64_t train_sentencepiece(const std::vector<std::string>& inputs, int vocab_size, const std::string& out_prefix,
                            int threads, const SpTrainOptions& options = {});

}  // namespace pgolf
