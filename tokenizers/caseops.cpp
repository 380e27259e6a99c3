#include "tokenizers/caseops.h"

#include <stdexcept>

namespace pgolf {

namespace {

bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool is_letter(unsigned char c) { return is_upper(c) || (c >= 'a' && c <= 'z'); }
char lower(unsigned char c) { return static_cast<char>(is_upper(c) ? c + 32 : c); }
char upper(unsigned char c) { return static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c); }

// U+E001..U+E004 are EE 80 81..84: the operator a valid 3-byte character at p is, or 0.
char32_t operator_at(const unsigned char* p, int len) {
  if (len == 3 && p[0] == 0xEE && p[1] == 0x80 && p[2] >= 0x81 && p[2] <= 0x84) return 0xE000 + (p[2] - 0x80);
  return 0;
}

// The string to process: a character held back from the last chunk, then the new bytes.
std::string_view with_carry(std::string& carry, std::string_view in, std::string& joined) {
  if (carry.empty()) return in;
  joined = carry;
  joined.append(in.data(), in.size());
  carry.clear();
  return joined;
}

}  // namespace

std::string caseops::utf8(char32_t op) {
  return std::string{'\xEE', '\x80', static_cast<char>(0x80 + (op - 0xE000))};
}

int utf8_char_len(const unsigned char* p, size_t avail) {
  if (avail == 0) return -1;
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte, narrowed to exclude invalid forms
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (int k = 1; k < len; ++k) {
    if (static_cast<size_t>(k) >= avail) return -1;
    const unsigned char b = p[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return len;
}

size_t utf8_invalid_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const int len = utf8_char_len(p + i, s.size() - i);
    if (len <= 0) return i;
    i += len;
  }
  return std::string::npos;
}

// ---- encoder ------------------------------------------------------------------------------------

void CaseOpsEncoder::flush_word(std::string& out) {
  if (word_.empty()) return;
  size_t uppers = 0;
  for (unsigned char c : word_) uppers += is_upper(c);
  const size_t n = word_.size();
  if (uppers == 0) {
    out += word_;
  } else if (n >= 2 && (uppers == n || (uppers == 1 && is_upper(word_[0])))) {
    out += caseops::utf8(uppers == n ? caseops::kAllCaps : caseops::kTitle);
    for (unsigned char c : word_) out += lower(c);
  } else {
    // Mixed case, or a one-letter capital ("I"): a TITLE for the first letter, CAPNEXT for each later one.
    if (is_upper(word_[0])) out += caseops::utf8(caseops::kTitle);
    out += lower(word_[0]);
    for (size_t i = 1; i < n; ++i) {
      if (is_upper(word_[i])) out += caseops::utf8(caseops::kCapNext);
      out += lower(word_[i]);
    }
  }
  word_.clear();
}

void CaseOpsEncoder::process(std::string_view in, bool last, std::string& out) {
  std::string joined;
  const std::string_view s = with_carry(carry_, in, joined);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (is_letter(c)) {
      word_ += static_cast<char>(c);
      ++i;
      continue;
    }
    flush_word(out);  // anything but an ASCII letter ends a word
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    const int len = utf8_char_len(p + i, n - i);
    if (len < 0 && !last) {
      carry_.assign(s.substr(i));
      offset_ += i;
      return;
    }
    if (len <= 0)
      throw std::runtime_error("caseops encode: the input is not valid UTF-8 at byte " + std::to_string(offset_ + i) +
                               (len < 0 ? " (truncated character at the end)" : ""));
    if (operator_at(p + i, len)) out += caseops::utf8(caseops::kEsc);  // a literal operator character
    out.append(s.data() + i, len);
    i += len;
  }
  offset_ += n;
  if (last) flush_word(out);
}

void CaseOpsEncoder::feed(std::string_view in, std::string& out) { process(in, false, out); }
void CaseOpsEncoder::finish(std::string& out) { process({}, true, out); }

// ---- decoder ------------------------------------------------------------------------------------

void CaseOpsDecoder::fail(uint64_t at, const std::string& what) const {
  throw std::runtime_error("caseops decode: byte " + std::to_string(at) + ": " + what +
                           " (the input is not the output of caseops encode)");
}

void CaseOpsDecoder::process(std::string_view in, bool last, std::string& out) {
  std::string joined;
  const std::string_view s = with_carry(carry_, in, joined);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  auto end_word = [&] {
    in_word_ = false;
    allcaps_word_ = false;
  };
  auto no_pending = [&](size_t i, const char* what) {
    if (pending_ || capnext_) fail(offset_ + i, std::string("a case operator is followed by ") + what);
  };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    int len = 1;
    char32_t op = 0;
    if (c >= 0x80) {
      len = utf8_char_len(p + i, n - i);
      if (len < 0 && !last) {
        carry_.assign(s.substr(i));
        offset_ += i;
        return;
      }
      if (len <= 0) fail(offset_ + i, "not valid UTF-8");
      op = operator_at(p + i, len);
    }
    if (esc_) {
      if (!op) fail(offset_ + i, "ESC (U+E004) is not followed by one of U+E001..U+E004");
      esc_ = false;
      end_word();  // a literal operator character is not a letter
      out.append(s.data() + i, len);
    } else if (op == caseops::kEsc) {
      no_pending(i, "ESC");
      esc_ = true;
      end_word();
    } else if (op == caseops::kTitle || op == caseops::kAllCaps) {
      if (in_word_) fail(offset_ + i, "TITLE/ALLCAPS inside a word");
      no_pending(i, "another operator");
      pending_ = op;
    } else if (op == caseops::kCapNext) {
      no_pending(i, "another operator");
      capnext_ = true;
    } else if (len == 1 && is_letter(c)) {
      bool up = capnext_;
      if (!in_word_) {
        up = up || pending_;
        allcaps_word_ = pending_ == caseops::kAllCaps;
      } else {
        up = up || allcaps_word_;
      }
      out += up ? upper(c) : static_cast<char>(c);
      pending_ = 0;
      capnext_ = false;
      in_word_ = true;
    } else {
      no_pending(i, "a character that is not an ASCII letter");
      end_word();
      out.append(s.data() + i, len);
    }
    i += len;
  }
  offset_ += n;
  if (last && (pending_ || capnext_ || esc_)) fail(offset_, "a case operator dangles at the end of the input");
}

void CaseOpsDecoder::feed(std::string_view in, std::string& out) { process(in, false, out); }
void CaseOpsDecoder::finish(std::string& out) { process({}, true, out); }

std::string caseops_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  CaseOpsEncoder e;
  e.feed(text, out);
  e.finish(out);
  return out;
}

std::string caseops_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  CaseOpsDecoder d;
  d.feed(text, out);
  d.finish(out);
  return out;
}

// ---- sidecar byte count -------------------------------------------------------------------------

int64_t CaseOpsByteCounter::count(std::string_view span) {
  const auto* p = reinterpret_cast<const unsigned char*>(span.data());
  int64_t bytes = 0;
  size_t i = 0;
  while (i < span.size()) {
    int len = utf8_char_len(p + i, span.size() - i);
    if (len <= 0) len = 1;  // not reached for encoder output; a stray byte counts as itself
    const char32_t op = operator_at(p + i, len);
    if (esc_) {
      bytes += len;
      esc_ = false;
    } else if (op) {
      esc_ = op == caseops::kEsc;  // operators and ESC stand for no original byte
    } else {
      bytes += len;
    }
    i += len;
  }
  return bytes;
}

}  // namespace pgolf
