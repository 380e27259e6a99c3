// pgolf-data: trains SentencePiece tokenizers (plain, CaseOps, casefold, cap), turns text into token
// shards with optional byte sidecars, applies the CaseOps transform, and inspects shards.
//
//   pgolf-data train-tokenizer --input FILE... --vocab N --out PREFIX [--transform T] [--threads N]
//   pgolf-data make-cap-tokenizer --base MODEL --input FILE... --out PREFIX [--p P] [--seed S]
//   pgolf-data prepare --tokenizer MODEL --train FILE... --val FILE... --out DIR [--transform T]
//                      [--sidecar] [--base-tokenizer MODEL] [--shard-tokens N] [--prefix NAME] [--threads N]
//   pgolf-data caseops encode|decode          (stdin -> stdout)
//   pgolf-data inspect FILE...
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <queue>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "framework/io.h"
#include "framework/shard.h"
#include "tokenizers/cap_tokenizer.h"
#include "tokenizers/casefold.h"
#include "tokenizers/caseops.h"
#include "tokenizers/document_encoder.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/train_sentencepiece.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const char* kMainUsage =
    "usage: pgolf-data COMMAND [options]   (pgolf-data COMMAND --help for its options)\n"
    "  train-tokenizer     train a SentencePiece BPE model with the challenge's settings\n"
    "  make-cap-tokenizer  derive a cap tokenizer (<cap> + lowercase pieces) from a base model\n"
    "  prepare             encode documents into token shards (<prefix>_{train,val}_NNNNNN.bin) and byte\n"
    "                      sidecars (<prefix>_val_bytes_NNNNNN.bin)\n"
    "  caseops             the CaseOps transform, stdin to stdout (encode | decode)\n"
    "  inspect             print the header, token count, document count and id range of shards, and the\n"
    "                      byte total of sidecars\n";

const char* kTrainUsage =
    "usage: pgolf-data train-tokenizer --input FILE... --vocab N --out PREFIX [--transform T] [--threads N]\n"
    "                                  [--max-sentences N] [--verbose]\n"
    "  --input FILE...     .txt (one sentence per line), .jsonl or .jsonl.xz (field \"text\"; each line\n"
    "                      of a document is a sentence); UTF-8\n"
    "  --vocab N           vocabulary size (byte fallback takes 256 + 4 ids; at least ~300)\n"
    "  --out PREFIX        writes PREFIX.model and PREFIX.vocab\n"
    "  --transform T       none (default), caseops (the text is CaseOps-encoded and the operators\n"
    "                      U+E001..U+E004 become user-defined pieces, ids 4-7) or casefold (NFKC + lowercase)\n"
    "  --threads N         trainer threads (default: all cores)\n"
    "  --max-sentences N   sample at most N sentences (default 10000000)\n"
    "  --verbose           show SentencePiece's own log\n"
    "Settings (spec posttrain 3.1): BPE, character_coverage 0.999, byte_fallback, split_digits, nmt_nfkc,\n"
    "no dummy prefix, pad/bos/eos/unk = 0/1/2/3, hard_vocab_limit false.\n";

const char* kCapUsage =
    "usage: pgolf-data make-cap-tokenizer --base MODEL --input FILE... --out PREFIX [--p P] [--seed S]\n"
    "                                     [--threads N] [--batch-bytes N]\n"
    "  --base MODEL        the SentencePiece model to start from (e.g. the challenge's SP8192)\n"
    "  --input FILE...     training text (same formats as prepare) for the piece frequencies\n"
    "  --out PREFIX        writes PREFIX.model and PREFIX.vocab\n"
    "  --p P               share of the eligible capitalised pieces to remove (default 0.2)\n"
    "  --seed S            seed of the inverse-frequency weighted removal (default 1337)\n"
    "Eligible: a piece ([U+2581]X...) with one ASCII capital, first, whose lowercase form is a piece too.\n"
    "The cap model = the base pieces minus the removed ones, plus a user-defined piece <cap> at the end.\n"
    "Prepare with --transform cap --tokenizer PREFIX.model --base-tokenizer MODEL; score with the lut\n"
    "byte counter and zero_byte_pieces [\"<cap>\"].\n";

const char* kPrepareUsage =
    "usage: pgolf-data prepare --tokenizer MODEL --train FILE... --val FILE... --out DIR [--transform T]\n"
    "                          [--sidecar] [--base-tokenizer MODEL] [--shard-tokens N] [--prefix NAME]\n"
    "                          [--threads N] [--batch-bytes N]\n"
    "  --tokenizer MODEL   SentencePiece .model (ids must fit uint16)\n"
    "  --train FILE...     training documents: .jsonl / .jsonl.xz (one JSON object per line, string field\n"
    "                      \"text\"), or plain text files (one document per file); UTF-8\n"
    "  --val FILE...       validation documents, same formats\n"
    "  --out DIR           output directory (created if missing)\n"
    "  --transform T       none (default), caseops, casefold, or cap (needs --base-tokenizer)\n"
    "  --sidecar           also write NAME_val_bytes_NNNNNN.bin, aligned 1:1 with the val tokens: the\n"
    "                      original UTF-8 bytes of each token (BOS, CaseOps operators and <cap> 0); not\n"
    "                      with casefold\n"
    "  --base-tokenizer M  the base model a cap tokenizer was made from (--transform cap)\n"
    "  --shard-tokens N    tokens per shard (default 100000000)\n"
    "  --prefix NAME       shard name prefix (default fineweb): DIR/NAME_train_000000.bin, NAME_val_...\n"
    "  --threads N         encoding threads (default: all cores); the output does not depend on it\n"
    "  --batch-bytes N     JSON-line bytes per encoding batch (default 1048576)\n"
    "Each document becomes [BOS=1] + its ids (no EOS), in input order. Shards of a previous run with the\n"
    "same prefix are replaced; on failure nothing is left in DIR.\n";

const char* kCaseOpsUsage =
    "usage: pgolf-data caseops encode|decode < IN > OUT\n"
    "  encode: UTF-8 text -> CaseOps text (spec posttrain 3.2: TITLE U+E001, ALLCAPS U+E002, CAPNEXT\n"
    "          U+E003, ESC U+E004 before a literal U+E001..U+E004)\n"
    "  decode: the inverse; decode(encode(x)) == x byte for byte. Errors name the byte offset.\n";

const char* kInspectUsage =
    "usage: pgolf-data inspect FILE...\n"
    "  prints, per token shard: magic, version, tokens, documents (count of BOS=1), min and max id;\n"
    "  per byte sidecar (a name with _bytes_): magic, version, entries, byte total, largest entry\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Flags of one subcommand: multi-valued ones take every following argument up to the next "--flag".
struct Args {
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> switches;
  std::vector<std::string> positional;
  bool help = false;

  bool has(const std::string& f) const { return values.count(f) != 0; }
  const std::vector<std::string>& list(const std::string& f) const {
    auto it = values.find(f);
    if (it == values.end() || it->second.empty()) throw UsageError(f + " is required");
    return it->second;
  }
  std::string one(const std::string& f) const { return list(f).front(); }
  int64_t integer(const std::string& f, int64_t def, int64_t lo, int64_t hi) const {
    if (!has(f)) return def;
    const std::string v = one(f);
    size_t used = 0;
    int64_t x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v.empty() || x < lo || x > hi)
      throw UsageError(f + " " + v + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "]");
    return x;
  }
  double number(const std::string& f, double def, double lo, double hi) const {
    if (!has(f)) return def;
    const std::string v = one(f);
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v.empty() || !(x >= lo && x <= hi))
      throw UsageError(f + " " + v + ": expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  pgolf::Transform transform() const {
    if (!has("--transform")) return pgolf::Transform::None;
    try {
      return pgolf::parse_transform(one("--transform"));
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string("--transform: ") + e.what());
    }
  }
};

Args parse_args(int argc, char** argv, int start, const std::set<std::string>& multi,
                const std::set<std::string>& single, const std::set<std::string>& switches, bool positional_ok) {
  Args a;
  for (int i = start; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "-h" || s == "--help") {
      a.help = true;
    } else if (switches.count(s)) {
      a.switches.insert(s);
    } else if (multi.count(s) || single.count(s)) {
      auto& vals = a.values[s];
      if (single.count(s)) {
        if (i + 1 >= argc) throw UsageError(s + " needs a value");
        vals = {argv[++i]};
      } else {
        while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) vals.push_back(argv[++i]);
        if (vals.empty()) throw UsageError(s + " needs at least one value");
      }
    } else if (s.rfind("--", 0) == 0 || !positional_ok) {
      throw UsageError("unknown argument '" + s + "'");
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// "12.3" (decimal megabytes, one decimal).
std::string mb(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", bytes / 1e6);
  return b;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_inputs_exist(const std::vector<std::string>& files) {
  for (const auto& f : files)
    if (!fs::is_regular_file(f)) throw std::runtime_error(f + ": input file does not exist");
}

// ---- documents, read in order and processed in parallel ---------------------------------------

struct Item {
  std::string payload;  // a raw JSON line, or a whole text file
  int64_t line = 0;
};
struct Batch {
  std::string file;
  bool jsonl = false;
  std::vector<Item> items;
  size_t bytes = 0;
};

// Calls fn(document text, "file:line") for each document of the batch, parsing JSON lines; errors that fn
// throws are prefixed with the document's location.
template <class Fn>
void for_each_document(const Batch& b, Fn&& fn) {
  std::string text;
  for (const Item& item : b.items) {
    const std::string where = b.jsonl ? b.file + ":" + std::to_string(item.line) : b.file;
    if (b.jsonl) text = pgolf::jsonl_text(item.payload, b.file, item.line);
    const std::string& doc = b.jsonl ? text : item.payload;
    try {
      fn(doc);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
  }
}

// A fixed set of threads running batch jobs; results come back through futures drained in input order.
template <class R>
class Workers {
 public:
  explicit Workers(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      while (!queue_.empty()) queue_.pop();  // on an error, pending batches are abandoned
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::future<R> submit(std::function<R()> fn) {
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto fut = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push([task] { (*task)(); });
    }
    cv_.notify_one();
    return fut;
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::queue<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Reads the documents of `files` in order (JSON lines in batches of ~batch_bytes; a text file is one
// document), runs work(batch) on `threads` threads and hands the results to consume() in input order.
// At most 2 * threads batches are in flight, so memory does not grow with the corpus.
template <class R>
void process_batches(const std::vector<std::string>& files, int threads, int64_t batch_bytes,
                     const std::function<R(const Batch&)>& work, const std::function<void(R&&)>& consume) {
  Workers<R> workers(threads);
  std::deque<std::future<R>> pending;
  auto drain_one = [&] {
    R r = pending.front().get();  // rethrows a worker's error: the first in input order wins
    pending.pop_front();
    consume(std::move(r));
  };
  auto submit = [&](Batch&& b) {
    auto shared = std::make_shared<Batch>(std::move(b));
    pending.push_back(workers.submit([&work, shared] { return work(*shared); }));
    while (pending.size() > static_cast<size_t>(2 * threads)) drain_one();
  };
  for (const auto& file : files) {
    pgolf::LineReader reader(file);
    Batch batch;
    batch.file = file;
    batch.jsonl = pgolf::is_jsonl(file);
    if (!batch.jsonl) {
      batch.items.push_back({reader.read_all(), 0});
      submit(std::move(batch));
      continue;
    }
    std::string line;
    while (reader.next(line)) {
      if (pgolf::is_blank(line)) continue;
      batch.bytes += line.size();
      batch.items.push_back({std::move(line), reader.line_number()});
      line.clear();
      if (batch.bytes >= static_cast<size_t>(batch_bytes)) {
        Batch next;
        next.file = batch.file;
        next.jsonl = true;
        submit(std::move(batch));
        batch = std::move(next);
      }
    }
    if (!batch.items.empty()) submit(std::move(batch));
  }
  while (!pending.empty()) drain_one();
}

// ---- train-tokenizer ---------------------------------------------------------------------------

int cmd_train_tokenizer(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--input"}, {"--vocab", "--out", "--threads", "--max-sentences", "--transform"},
                      {"--verbose"}, false);
  if (a.help) {
    std::fputs(kTrainUsage, stdout);
    return 0;
  }
  const auto inputs = a.list("--input");
  const int vocab = static_cast<int>(a.integer("--vocab", -1, 1, 1 << 20));
  if (!a.has("--vocab")) throw UsageError("--vocab is required");
  const std::string out = a.one("--out");
  const int threads = static_cast<int>(a.integer("--threads", default_threads(), 1, 1024));
  const pgolf::Transform transform = a.transform();
  pgolf::SpTrainOptions opt;
  opt.max_sentences = a.integer("--max-sentences", opt.max_sentences, 1, int64_t(1) << 40);
  opt.verbose = a.switches.count("--verbose") != 0;
  if (transform == pgolf::Transform::Cap)
    throw UsageError("--transform cap: a cap tokenizer is derived from a trained model; use make-cap-tokenizer");
  if (transform == pgolf::Transform::Casefold && !pgolf::casefold_available())
    throw std::runtime_error("--transform casefold: this pgolf-data was built without ICU (NFKC); install "
                             "libicu-dev and rebuild");
  if (transform != pgolf::Transform::None)
    opt.transform = [transform](std::string_view doc) { return pgolf::transform_text(transform, doc); };
  if (transform == pgolf::Transform::CaseOps)
    for (char32_t op : {pgolf::caseops::kTitle, pgolf::caseops::kAllCaps, pgolf::caseops::kCapNext, pgolf::caseops::kEsc})
      opt.user_defined_symbols.push_back(pgolf::caseops::utf8(op));
  std::fprintf(stderr, "[train-tokenizer] training BPE vocab %d on %zu file(s), transform %s, %d thread(s)\n", vocab,
               inputs.size(), pgolf::transform_name(transform), threads);
  const auto t0 = Clock::now();
  const int64_t sentences = pgolf::train_sentencepiece(inputs, vocab, out, threads, opt);
  pgolf::SentencePieceModel sp(out + ".model");
  std::fprintf(stderr, "[train-tokenizer] %lld sentences read, %d pieces, %.1f s -> %s.model, %s.vocab\n",
               static_cast<long long>(sentences), sp.vocab_size(), seconds_since(t0), out.c_str(), out.c_str());
  return 0;
}

// ---- make-cap-tokenizer ------------------------------------------------------------------------

int cmd_make_cap_tokenizer(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--input"}, {"--base", "--out", "--p", "--seed", "--threads", "--batch-bytes"},
                      {}, false);
  if (a.help) {
    std::fputs(kCapUsage, stdout);
    return 0;
  }
  const std::string base_path = a.one("--base");
  const auto inputs = a.list("--input");
  const std::string out = a.one("--out");
  const double p = a.number("--p", 0.2, 0.0, 1.0);
  const uint64_t seed = static_cast<uint64_t>(a.integer("--seed", 1337, 0, INT64_MAX));
  const int threads = static_cast<int>(a.integer("--threads", default_threads(), 1, 1024));
  const int64_t batch_bytes = a.integer("--batch-bytes", 1 << 20, 1, int64_t(1) << 32);
  check_inputs_exist(inputs);
  const pgolf::SentencePieceModel base(base_path);
  if (pgolf::is_caseops_tokenizer(base))
    throw std::runtime_error(base_path + " is a CaseOps tokenizer; a cap tokenizer starts from a plain one");

  // Piece frequencies of the base encoding of the text: the removal weights.
  const auto t0 = Clock::now();
  std::vector<int64_t> counts(base.vocab_size(), 0);
  int64_t docs = 0, text_bytes = 0;
  struct Counted {
    std::vector<int64_t> counts;
    int64_t docs = 0, bytes = 0;
  };
  process_batches<Counted>(
      inputs, threads, batch_bytes,
      [&](const Batch& b) {
        Counted c;
        c.counts.assign(base.vocab_size(), 0);
        for_each_document(b, [&](const std::string& doc) {
          for (int id : base.encode(pgolf::transform_text(pgolf::Transform::None, doc))) ++c.counts[id];
          ++c.docs;
          c.bytes += static_cast<int64_t>(doc.size());
        });
        return c;
      },
      [&](Counted&& c) {
        for (size_t i = 0; i < counts.size(); ++i) counts[i] += c.counts[i];
        docs += c.docs;
        text_bytes += c.bytes;
      });
  if (docs == 0) throw std::runtime_error("no documents in the --input files (every line is blank)");
  const pgolf::CapModel cap = pgolf::build_cap_model(base_path, counts, p, seed);

  // Check that the model loads and pairs with its base before anything is written.
  const std::string tmp =
      (fs::temp_directory_path() / ("pgolf-cap-check.tmp." + std::to_string(::getpid()) + ".model")).string();
  std::ostringstream vocab;
  {
    pgolf::write_file_atomic(tmp, cap.model_bytes);
    struct Remove {
      std::string f;
      ~Remove() { std::remove(f.c_str()); }
    } remove{tmp};
    pgolf::CapEncoder check(tmp, base_path);
    for (int i = 0; i < check.cap().vocab_size(); ++i) vocab << check.cap().piece(i) << '\n';
  }
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  pgolf::write_file_atomic(out + ".vocab", vocab.str());
  pgolf::write_file_atomic(out + ".model", cap.model_bytes);  // last: a .model implies a complete pair
  std::fprintf(stderr,
               "[make-cap-tokenizer] %lld docs, %s MB counted in %.1f s; %zu eligible capitalised pieces, %zu "
               "removed (p %.3g, seed %llu) -> %s.model (%d pieces)\n",
               static_cast<long long>(docs), mb(text_bytes).c_str(), seconds_since(t0), cap.eligible.size(),
               cap.removed.size(), p, static_cast<unsigned long long>(seed), out.c_str(),
               base.vocab_size() - static_cast<int>(cap.removed.size()) + 1);
  return 0;
}

// ---- prepare -----------------------------------------------------------------------------------

struct Encoded {
  std::vector<uint16_t> tokens, bytes;
  int64_t docs = 0;
  int64_t text_bytes = 0;
};

// Cuts the ordered token stream of one split into shards of exactly shard_tokens (the last one shorter).
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string prefix, std::string split, int64_t shard_tokens)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), split_(std::move(split)), shard_tokens_(shard_tokens) {}

  void add(const std::vector<uint16_t>& tokens) {
    size_t off = 0;
    while (off < tokens.size()) {
      const size_t take = std::min<size_t>(tokens.size() - off, shard_tokens_ - buf_.size());
      buf_.insert(buf_.end(), tokens.begin() + off, tokens.begin() + off + take);
      off += take;
      if (static_cast<int64_t>(buf_.size()) == shard_tokens_) flush();
    }
  }
  void flush() {
    if (buf_.empty()) return;
    if (index_ > 999999) throw std::runtime_error("more than 1,000,000 " + split_ + " shards; raise --shard-tokens");
    char name[64];
    std::snprintf(name, sizeof name, "_%s_%06d.bin", split_.c_str(), index_++);
    const std::string file = prefix_ + name;
    pgolf::write_shard(dir_ + "/" + file, buf_);
    files_.push_back(file);
    buf_.clear();
  }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::string dir_, prefix_, split_;
  int64_t shard_tokens_;
  std::vector<uint16_t> buf_;
  int index_ = 0;
  std::vector<std::string> files_;
};

struct SplitStats {
  int64_t docs = 0, tokens = 0, text_bytes = 0, sidecar_bytes = 0;
  size_t shards = 0;
};

// sidecar: the byte writer (val with --sidecar), cut at the same positions as the tokens.
SplitStats encode_split(const std::string& split, const std::vector<std::string>& files,
                        const pgolf::DocumentEncoder& enc, int threads, int64_t batch_bytes, ShardWriter& writer,
                        ShardWriter* sidecar) {
  SplitStats st;
  const auto t0 = Clock::now();
  auto last_report = t0;
  auto report = [&](bool final) {
    const double secs = seconds_since(t0);
    char tail[96] = "";
    if (final) std::snprintf(tail, sizeof tail, ", %zu shard(s), %.1f s", writer.files().size(), secs);
    std::fprintf(stderr, "[prepare] %s: %lld docs, %lld tokens, %s MB text, %s MB/s%s\n", split.c_str(),
                 static_cast<long long>(st.docs), static_cast<long long>(st.tokens), mb(st.text_bytes).c_str(),
                 mb(secs > 0 ? st.text_bytes / secs : 0).c_str(), tail);
  };
  const bool with_bytes = sidecar != nullptr;
  process_batches<Encoded>(
      files, threads, batch_bytes,
      [&](const Batch& b) {
        Encoded e;
        for_each_document(b, [&](const std::string& doc) {
          enc.encode(doc, e.tokens, with_bytes ? &e.bytes : nullptr);
          ++e.docs;
          e.text_bytes += static_cast<int64_t>(doc.size());
        });
        return e;
      },
      [&](Encoded&& e) {
        writer.add(e.tokens);
        if (sidecar) {
          sidecar->add(e.bytes);
          for (uint16_t v : e.bytes) st.sidecar_bytes += v;
        }
        st.docs += e.docs;
        st.tokens += static_cast<int64_t>(e.tokens.size());
        st.text_bytes += e.text_bytes;
        if (seconds_since(last_report) >= 2.0) {
          last_report = Clock::now();
          report(false);
        }
      });
  if (st.docs == 0)
    throw std::runtime_error("no documents in the --" + split + " inputs (every line is blank); nothing to encode");
  writer.flush();
  if (sidecar) sidecar->flush();
  st.shards = writer.files().size();
  report(true);
  return st;
}

// <prefix>_train_NNNNNN.bin, <prefix>_val_NNNNNN.bin, <prefix>_val_bytes_NNNNNN.bin: what a previous run
// with this prefix left (a stale sidecar would no longer match the new val shards).
bool is_own_shard(const std::string& name, const std::string& prefix) {
  for (const std::string split : {"_train_", "_val_", "_val_bytes_"}) {
    const std::string head = prefix + split;
    if (name.size() != head.size() + 10 || name.compare(0, head.size(), head) != 0) continue;
    if (name.compare(name.size() - 4, 4, ".bin") != 0) continue;
    if (std::all_of(name.begin() + head.size(), name.end() - 4, [](char c) { return c >= '0' && c <= '9'; }))
      return true;
  }
  return false;
}

int cmd_prepare(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {"--train", "--val"},
                      {"--tokenizer", "--out", "--shard-tokens", "--prefix", "--threads", "--batch-bytes",
                       "--transform", "--base-tokenizer"},
                      {"--sidecar"}, false);
  if (a.help) {
    std::fputs(kPrepareUsage, stdout);
    if (!pgolf::casefold_available())
      std::fputs("This build lacks ICU: --transform casefold is unavailable (scripts/casefold_jsonl.py).\n", stdout);
    return 0;
  }
  const std::string model_path = a.one("--tokenizer");
  const auto train = a.list("--train");
  const auto val = a.list("--val");
  const std::string out = a.one("--out");
  const int64_t shard_tokens = a.integer("--shard-tokens", 100000000, 1, INT32_MAX);
  const std::string prefix = a.has("--prefix") ? a.one("--prefix") : "fineweb";
  const int threads = static_cast<int>(a.integer("--threads", default_threads(), 1, 1024));
  const int64_t batch_bytes = a.integer("--batch-bytes", 1 << 20, 1, int64_t(1) << 32);
  const pgolf::Transform transform = a.transform();
  const bool sidecar = a.switches.count("--sidecar") != 0;
  const std::string base = a.has("--base-tokenizer") ? a.one("--base-tokenizer") : "";
  if (prefix.empty() || prefix.find('/') != std::string::npos)
    throw UsageError("--prefix '" + prefix + "': expected a file-name prefix without '/'");
  if (transform == pgolf::Transform::Cap && base.empty())
    throw UsageError("--transform cap needs --base-tokenizer (the model the cap tokenizer was made from)");
  if (transform != pgolf::Transform::Cap && !base.empty())
    throw UsageError("--base-tokenizer is only used with --transform cap");
  if (sidecar && transform == pgolf::Transform::Casefold)
    throw UsageError("--sidecar: casefold text no longer maps to the original bytes; it is scored with the lut "
                     "byte counter (spec posttrain 3.4)");
  if (transform == pgolf::Transform::Casefold && !pgolf::casefold_available())
    throw std::runtime_error("--transform casefold: this pgolf-data was built without ICU (NFKC); install "
                             "libicu-dev and rebuild, or casefold the text with scripts/casefold_jsonl.py");
  check_inputs_exist(train);
  check_inputs_exist(val);

  const pgolf::DocumentEncoder enc(transform, model_path, base);

  std::error_code ec;
  const bool created_out = !fs::exists(out, ec);
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out))
    throw std::runtime_error(out + ": cannot create the output directory" + (ec ? " (" + ec.message() + ")" : ""));
  // Shards are written to a private directory inside DIR and moved in only when every one is complete.
  const std::string tmp = out + "/.pgolf-data." + prefix + ".tmp." + std::to_string(::getpid());
  if (!fs::create_directory(tmp, ec) || ec)
    throw std::runtime_error(out + ": output directory is not writable (cannot create " + tmp +
                             (ec ? ": " + ec.message() : "") + ")");
  auto cleanup = [&] {
    std::error_code ignore;
    fs::remove_all(tmp, ignore);
    if (created_out && fs::is_empty(out, ignore)) fs::remove(out, ignore);
  };
  try {
    std::fprintf(stderr, "[prepare] %s (%d pieces), transform %s%s, %d thread(s), %lld tokens per shard -> %s/%s_*\n",
                 model_path.c_str(), enc.tokenizer().vocab_size(), pgolf::transform_name(transform),
                 sidecar ? " + val byte sidecar" : "", threads, static_cast<long long>(shard_tokens), out.c_str(),
                 prefix.c_str());
    ShardWriter val_writer(tmp, prefix, "val", shard_tokens), train_writer(tmp, prefix, "train", shard_tokens);
    ShardWriter bytes_writer(tmp, prefix, "val_bytes", shard_tokens);
    const SplitStats vs =
        encode_split("val", val, enc, threads, batch_bytes, val_writer, sidecar ? &bytes_writer : nullptr);
    const SplitStats ts = encode_split("train", train, enc, threads, batch_bytes, train_writer, nullptr);
    for (const auto& entry : fs::directory_iterator(out)) {
      const std::string name = entry.path().filename().string();
      if (is_own_shard(name, prefix)) fs::remove(entry.path());
    }
    for (const auto* w : {&val_writer, &bytes_writer, &train_writer})
      for (const auto& f : w->files()) fs::rename(tmp + "/" + f, out + "/" + f);
    fs::remove_all(tmp);
    std::printf("val: %lld documents, %lld tokens in %zu shard(s)\n", static_cast<long long>(vs.docs),
                static_cast<long long>(vs.tokens), vs.shards);
    if (sidecar)
      std::printf("val sidecar: %lld bytes (the documents hold %lld UTF-8 bytes) in %zu shard(s)\n",
                  static_cast<long long>(vs.sidecar_bytes), static_cast<long long>(vs.text_bytes),
                  bytes_writer.files().size());
    std::printf("train: %lld documents, %lld tokens in %zu shard(s)\n", static_cast<long long>(ts.docs),
                static_cast<long long>(ts.tokens), ts.shards);
  } catch (...) {
    cleanup();
    throw;
  }
  return 0;
}

// ---- caseops -----------------------------------------------------------------------------------

int cmd_caseops(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {}, {}, {}, true);
  if (a.help) {
    std::fputs(kCaseOpsUsage, stdout);
    return 0;
  }
  if (a.positional.size() != 1 || (a.positional[0] != "encode" && a.positional[0] != "decode"))
    throw UsageError("expected one of: encode, decode");
  const bool encode = a.positional[0] == "encode";
  pgolf::CaseOpsEncoder enc;
  pgolf::CaseOpsDecoder dec;
  std::vector<char> buf(1 << 20);
  std::string out;
  auto write = [&] {
    if (!out.empty() && std::fwrite(out.data(), 1, out.size(), stdout) != out.size())
      throw std::runtime_error("cannot write to standard output");
    out.clear();
  };
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), stdin)) > 0) {
    const std::string_view chunk(buf.data(), n);
    encode ? enc.feed(chunk, out) : dec.feed(chunk, out);
    write();
  }
  if (std::ferror(stdin)) throw std::runtime_error("cannot read standard input");
  encode ? enc.finish(out) : dec.finish(out);
  write();
  if (std::fflush(stdout) != 0) throw std::runtime_error("cannot write to standard output");
  return 0;
}

// ---- inspect -----------------------------------------------------------------------------------

int cmd_inspect(int argc, char** argv) {
  Args a = parse_args(argc, argv, 2, {}, {}, {}, true);
  if (a.help) {
    std::fputs(kInspectUsage, stdout);
    return 0;
  }
  if (a.positional.empty()) throw UsageError("no shard files given");
  int64_t all_tokens = 0, all_docs = 0, all_bytes = 0;
  size_t sidecars = 0;
  for (const auto& path : a.positional) {
    pgolf::ShardView v(path);
    const std::string name = fs::path(path).filename().string();
    if (name.find("_bytes_") != std::string::npos) {  // a byte sidecar: entries are byte counts, not ids
      int64_t total = 0;
      uint16_t hi = 0;
      for (int64_t i = 0; i < v.size(); ++i) {
        total += v.data()[i];
        hi = std::max(hi, v.data()[i]);
      }
      ++sidecars;
      all_bytes += total;
      std::printf("%s: magic %d version %d sidecar entries %lld bytes %lld max_entry %d\n", path.c_str(),
                  pgolf::kShardMagic, pgolf::kShardVersion, static_cast<long long>(v.size()),
                  static_cast<long long>(total), hi);
      continue;
    }
    int64_t docs = 0;
    uint16_t lo = 65535, hi = 0;
    for (int64_t i = 0; i < v.size(); ++i) {
      const uint16_t t = v.data()[i];
      docs += t == 1;
      lo = std::min(lo, t);
      hi = std::max(hi, t);
    }
    all_tokens += v.size();
    all_docs += docs;
    if (v.size() == 0)
      std::printf("%s: magic %d version %d tokens 0 documents 0 min_id - max_id -\n", path.c_str(), pgolf::kShardMagic,
                  pgolf::kShardVersion);
    else
      std::printf("%s: magic %d version %d tokens %lld documents %lld min_id %d max_id %d\n", path.c_str(),
                  pgolf::kShardMagic, pgolf::kShardVersion, static_cast<long long>(v.size()),
                  static_cast<long long>(docs), lo, hi);
  }
  const size_t token_files = a.positional.size() - sidecars;
  if (token_files > 1)
    std::printf("total: %zu files tokens %lld documents %lld\n", token_files, static_cast<long long>(all_tokens),
                static_cast<long long>(all_docs));
  if (sidecars > 1)
    std::printf("sidecar total: %zu files bytes %lld\n", sidecars, static_cast<long long>(all_bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kMainUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kMainUsage, stdout);
    return 0;
  }
  const std::map<std::string, std::pair<int (*)(int, char**), const char*>> commands = {
      {"train-tokenizer", {cmd_train_tokenizer, kTrainUsage}},
      {"make-cap-tokenizer", {cmd_make_cap_tokenizer, kCapUsage}},
      {"prepare", {cmd_prepare, kPrepareUsage}},
      {"caseops", {cmd_caseops, kCaseOpsUsage}},
      {"inspect", {cmd_inspect, kInspectUsage}},
  };
  auto it = commands.find(cmd);
  if (it == commands.end()) {
    std::fprintf(stderr, "pgolf-data: unknown command '%s'\n%s", cmd.c_str(), kMainUsage);
    return 2;
  }
  try {
    return it->second.first(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pgolf-data %s: %s\n%s", cmd.c_str(), e.what(), it->second.second);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf-data %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
