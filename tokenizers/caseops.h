// CaseOps (spec posttrain §3.2): a lossless transform that moves the case of ASCII words into four
// Private-Use operator characters, so that a tokenizer trained on the result needs no capitalised pieces.
// Also the UTF-8 helpers that the text transforms share, and the byte count of the §3.3 sidecar.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgolf {

// The operators: single code points U+E001..U+E004, three UTF-8 bytes each (EE 80 81..84).
namespace caseops {
constexpr char32_t kTitle = 0xE001;    // the next word: one capital, then lowercase
constexpr char32_t kAllCaps = 0xE002;  // the next word: all capitals
constexpr char32_t kCapNext = 0xE003;  // the next letter: a capital
constexpr char32_t kEsc = 0xE004;      // the next character is a literal U+E001..U+E004
// Their UTF-8 forms, for piece strings ("\xEE\x80\x81" ...).
std::string utf8(char32_t op);
}  // namespace caseops

// Length of the UTF-8 character at p (1..4) when it is valid; 0 when p[0..avail) cannot start a valid
// character; -1 when the available bytes are a valid but incomplete prefix. Strict: no overlong forms,
// no surrogates, nothing above U+10FFFF.
int utf8_char_len(const unsigned char* p, size_t avail);
// Offset of the first byte that is not part of valid UTF-8, or std::string::npos when all of s is valid.
size_t utf8_invalid_offset(std::string_view s);

// Streaming encoder: feed() any split of the input, then finish(). A word (a run of ASCII letters) or a
// character cut by a chunk boundary is held back until it is complete. Throws std::runtime_error naming
// the byte offset on input that is not valid UTF-8.
class CaseOpsEncoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  void process(std::string_view in, bool last, std::string& out);
  void flush_word(std::string& out);
  std::string word_, carry_;
  uint64_t offset_ = 0;  // stream offset of the first byte of the next chunk (of carry_ when non-empty)
};

// Streaming decoder, the state machine of §3.2: TITLE/ALLCAPS are illegal inside a word or while another
// operator is pending, an operator must be followed by a letter, ESC by one of the four operators; any
// violation, or an operator dangling at the end, throws naming the byte offset.
class CaseOpsDecoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);

 private:
  void process(std::string_view in, bool last, std::string& out);
  [[noreturn]] void fail(uint64_t at, const std::string& what) const;
  std::string carry_;
  uint64_t offset_ = 0;
  char32_t pending_ = 0;  // kTitle or kAllCaps waiting for the first letter of a word
  bool capnext_ = false, esc_ = false, in_word_ = false, allcaps_word_ = false;
};

// Whole-string forms of the two.
std::string caseops_encode(std::string_view text);
std::string caseops_decode(std::string_view text);

// The §3.3 byte count of consecutive spans of CaseOps text: TITLE/ALLCAPS/CAPNEXT and ESC count 0, the
// character after an ESC its UTF-8 length, every other character its UTF-8 length (an ASCII letter is one
// byte whatever its case). Keeps the ESC state across spans, as a piece boundary may fall after an ESC.
class CaseOpsByteCounter {
 public:
  int64_t count(std::string_view span);

 private:
  bool esc_ = false;
};

}  // namespace pgolf
