// A loaded SentencePiece model: encode text to ids, read piece strings and piece types.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace pgolf {

// The piece types the byte counters care about (user-defined pieces count as Normal).
enum class PieceType { Normal, Control, Unknown, Unused, Byte };

// One piece of an encoding with the byte span [begin, end) of the input it covers (SentencePiece's
// "surface"; byte-fallback pieces of one character: the last carries the span, the others are empty).
struct PieceSpan {
  int id = 0;
  uint32_t begin = 0, end = 0;
};

class SentencePieceModel {
 public:
  // Throws std::runtime_error naming `path` (and how to make a model) if it is missing or not a model.
  explicit SentencePieceModel(const std::string& path);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  const std::string& path() const { return path_; }
  int vocab_size() const;
  // Safe to call from several threads at once (the processor is immutable after loading).
  std::vector<int> encode(const std::string& text) const;
  std::vector<std::string> encode_pieces(const std::string& text) const;
  // Ids with the spans of `text` they cover (slower than encode(): the sidecar needs the spans).
  std::vector<PieceSpan> encode_spans(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;

  // Accessors take 0 <= id < vocab_size(); others throw naming the id.
  const std::string& piece(int id) const;
  PieceType type(int id) const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  bool is_unused(int id) const;
  bool is_byte(int id) const;
  int bos_id() const;
  int eos_id() const;
  int pad_id() const;
  int unk_id() const;

  // Every piece string and type, index = id (what the byte LUT is built from).
  std::vector<std::string> pieces() const;
  std::vector<PieceType> types() const;

 private:
  void check_id(int id) const;
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace pgolf
