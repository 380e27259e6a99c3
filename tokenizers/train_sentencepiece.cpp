#include "tokenizers/train_sentencepiece.h"

#include <lzma.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "framework/io.h"
#include "framework/shard.h"
#include "tokenizers/caseops.h"

namespace pgolf {

namespace {
constexpr size_t kChunk = 1 << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

struct LineReader::Xz {
  lzma_stream strm = LZMA_STREAM_INIT;
  std::vector<uint8_t> in = std::vector<uint8_t>(kChunk);
  bool in_eof = false;
  ~Xz() { lzma_end(&strm); }
};

LineReader::LineReader(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw std::runtime_error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  if (ends_with(path, ".xz")) {
    xz_ = std::make_unique<Xz>();
    // CONCATENATED: files made by `cat a.xz b.xz` are valid xz too.
    if (lzma_stream_decoder(&xz_->strm, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      std::fclose(file_);
      throw std::runtime_error(path + ": cannot start the xz decoder");
    }
  }
}

LineReader::~LineReader() {
  if (file_) std::fclose(file_);
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {  // drop what was already returned so the buffer holds at most one partial line + a chunk
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (!xz_) {
    const size_t old = buf_.size();
    buf_.resize(old + kChunk);
    const size_t n = std::fread(buf_.data() + old, 1, kChunk, file_);
    buf_.resize(old + n);
    if (n == 0) {
      if (std::ferror(file_)) throw std::runtime_error(path_ + ": read failed (" + std::strerror(errno) + ")");
      eof_ = true;
      return false;
    }
    return true;
  }
  lzma_stream& s = xz_->strm;
  while (true) {
    if (s.avail_in == 0 && !xz_->in_eof) {
      const size_t n = std::fread(xz_->in.data(), 1, xz_->in.size(), file_);
      if (n == 0 && std::ferror(file_))
        throw std::runtime_error(path_ + ": read failed (" + std::strerror(errno) + ")");
      if (n == 0) xz_->in_eof = true;
      s.next_in = xz_->in.data();
      s.avail_in = n;
    }
    const size_t old = buf_.size();
    buf_.resize(old + kChunk);
    s.next_out = reinterpret_cast<uint8_t*>(buf_.data() + old);
    s.avail_out = kChunk;
    const lzma_ret ret = lzma_code(&s, xz_->in_eof ? LZMA_FINISH : LZMA_RUN);
    const size_t produced = kChunk - s.avail_out;
    buf_.resize(old + produced);
    if (ret == LZMA_STREAM_END) {
      eof_ = true;
      return produced > 0;
    }
    if (ret != LZMA_OK) {
      const std::string why = ret == LZMA_BUF_ERROR    ? "the file is truncated"
                              : ret == LZMA_FORMAT_ERROR ? "not in .xz format"
                              : ret == LZMA_DATA_ERROR   ? "corrupt data"
                              : ret == LZMA_MEM_ERROR    ? "out of memory"
                                                         : "lzma error " + std::to_string(static_cast<int>(ret));
      throw std::runtime_error(path_ + ": cannot decompress (" + why + ")");
    }
    if (produced > 0) return true;
  }
}

bool LineReader::next(std::string& line) {
  size_t scan = pos_;
  while (true) {
    const size_t nl = buf_.find('\n', scan);
    if (nl != std::string::npos) {
      line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      ++line_no_;
      return true;
    }
    const size_t scanned = buf_.size() - pos_;  // fill() moves the unread part to the front
    if (!fill()) {
      if (pos_ >= buf_.size()) return false;
      line.assign(buf_, pos_, std::string::npos);
      pos_ = buf_.size();
      ++line_no_;
      return true;
    }
    scan = pos_ + scanned;
  }
}

std::string LineReader::read_all() {
  while (fill()) {
  }
  std::string out = buf_.substr(pos_);
  pos_ = buf_.size();
  return out;
}

bool is_jsonl(const std::string& path) { return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.xz"); }

bool is_blank(const std::string& line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

std::string jsonl_text(const std::string& line, const std::string& file, int64_t line_no) {
  const std::string where = file + ":" + std::to_string(line_no) + ": ";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(where + "not valid JSON (" + e.what() +
                             "); expected one object per line with a string field \"text\"");
  }
  if (!j.is_object()) throw std::runtime_error(where + "expected a JSON object with a string field \"text\"");
  auto it = j.find("text");
  if (it == j.end()) throw std::runtime_error(where + "the object has no field \"text\"");
  if (!it->is_string()) throw std::runtime_error(where + "field \"text\" is not a string");
  return it->get<std::string>();
}

namespace {

// Training sentences: lines of text files, lines of each JSON document's `text`; blank ones skipped.
class InputSentences : public sentencepiece::SentenceIterator {
 public:
  InputSentences(std::vector<std::string> files, std::function<std::string(std::string_view)> transform)
      : files_(std::move(files)), transform_(std::move(transform)) {
    advance();
  }

  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return sentencepiece::util::Status();
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, error_);
  }
  const std::string& error() const { return error_; }
  int64_t count() const { return count_; }

 private:
  void advance() {
    try {
      done_ = !next_sentence();
      if (!done_) ++count_;
    } catch (const std::exception& e) {
      error_ = e.what();
      done_ = true;
    }
  }

  bool next_sentence() {
    while (true) {
      // Lines left from the current JSON document.
      while (doc_pos_ < doc_.size()) {
        size_t nl = doc_.find('\n', doc_pos_);
        if (nl == std::string::npos) nl = doc_.size();
        value_.assign(doc_, doc_pos_, nl - doc_pos_);
        doc_pos_ = nl + 1;
        if (!is_blank(value_)) return true;
      }
      if (!reader_) {
        if (file_idx_ >= files_.size()) return false;
        reader_ = std::make_unique<LineReader>(files_[file_idx_++]);
        jsonl_ = is_jsonl(reader_->path());
      }
      if (!reader_->next(line_)) {
        reader_.reset();
        continue;
      }
      if (is_blank(line_)) continue;
      doc_ = jsonl_ ? jsonl_text(line_, reader_->path(), reader_->line_number()) : std::move(line_);
      const std::string where = reader_->path() + ":" + std::to_string(reader_->line_number()) + ": ";
      if (const size_t bad = utf8_invalid_offset(doc_); bad != std::string::npos)
        throw std::runtime_error(where + "the text is not valid UTF-8 (byte " + std::to_string(bad) +
                                 (jsonl_ ? " of the \"text\" field)" : " of the line)"));
      if (transform_) {
        try {
          doc_ = transform_(doc_);
        } catch (const std::exception& e) {
          throw std::runtime_error(where + e.what());
        }
      }
      doc_pos_ = 0;
    }
  }

  std::vector<std::string> files_;
  std::function<std::string(std::string_view)> transform_;
  size_t file_idx_ = 0;
  std::unique_ptr<LineReader> reader_;
  bool jsonl_ = false;
  std::string line_, doc_, value_, error_;
  size_t doc_pos_ = 0;
  bool done_ = false;
  int64_t count_ = 0;
};

}  // namespace

int64_t train_sentencepiece(const std::vector<std::string>& inputs, int vocab_size, const std::string& out_prefix,
                            int threads, const SpTrainOptions& options) {
  if (inputs.empty()) throw std::runtime_error("SentencePiece training: no input files given");
  if (out_prefix.empty()) throw std::runtime_error("SentencePiece training: empty output prefix");
  for (const auto& f : inputs)
    if (!std::filesystem::is_regular_file(f))
      throw std::runtime_error(f + ": input file does not exist");
  std::string symbols;
  for (const auto& u : options.user_defined_symbols) {
    if (u.empty() || u.find(',') != std::string::npos)
      throw std::runtime_error("SentencePiece training: user-defined symbol '" + u + "' is empty or has a comma");
    symbols += (symbols.empty() ? "" : ",") + u;
  }
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"character_coverage", "0.999"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "nmt_nfkc"},
      {"add_dummy_prefix", "false"},
      {"pad_id", "0"},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"hard_vocab_limit", "false"},
      {"num_threads", std::to_string(threads < 1 ? 1 : threads)},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"minloglevel", options.verbose ? "0" : "1"},
  };
  if (!symbols.empty()) args["user_defined_symbols"] = symbols;
  sentencepiece::SetRandomGeneratorSeed(options.seed);  // the sentence sample is the same on every run
  InputSentences sentences(inputs, options.transform);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &model);
  if (!sentences.error().empty()) throw std::runtime_error(sentences.error());
  if (sentences.count() == 0)
    throw std::runtime_error("SentencePiece training: the inputs hold no text (every line is blank)");
  if (!status.ok())
    throw std::runtime_error("SentencePiece training failed: " + status.ToString());

  // Reload what was trained: a check that it is a usable model, and the source of the .vocab listing.
  sentencepiece::SentencePieceProcessor sp;
  const auto loaded = sp.LoadFromSerializedProto(model);
  if (!loaded.ok()) throw std::runtime_error("SentencePiece training: the trained model does not load: " + loaded.ToString());
  // Created only now, so that a failed training leaves nothing behind.
  const std::filesystem::path parent = std::filesystem::path(out_prefix).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) throw std::runtime_error(parent.string() + ": cannot create output directory (" + ec.message() + ")");
  }

  std::ostringstream vocab;
  for (int i = 0; i < sp.GetPieceSize(); ++i)
    vocab << sp.IdToPiece(i) << '\t' << (sp.GetScore(i) + 0.0f) << '\n';  // + 0: "-0" prints as "0"
  write_file_atomic(out_prefix + ".vocab", vocab.str());
  write_file_atomic(out_prefix + ".model", model);  // last: a .model implies a complete pair
  return sentences.count();
}

}  // namespace pgolf
