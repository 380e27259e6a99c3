#include "tokenizers/casefold.h"

#include <stdexcept>

#include "tokenizers/caseops.h"

#ifdef PGOLF_HAVE_ICU
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#endif

namespace pgolf {

bool casefold_available() {
#ifdef PGOLF_HAVE_ICU
  return true;
#else
  return false;
#endif
}

std::string casefold(std::string_view text) {
  if (const size_t bad = utf8_invalid_offset(text); bad != std::string::npos)
    throw std::runtime_error("casefold: the input is not valid UTF-8 at byte " + std::to_string(bad));
  bool ascii = true;
  for (unsigned char c : text) ascii = ascii && c < 0x80;
  if (ascii) {  // NFKC leaves ASCII alone: the common case needs no ICU round trip
    std::string out(text);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
  }
#ifdef PGOLF_HAVE_ICU
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCInstance(err);
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString n = U_SUCCESS(err) ? nfkc->normalize(u, err) : u;
  if (U_FAILURE(err)) throw std::runtime_error(std::string("casefold: ICU NFKC failed (") + u_errorName(err) + ")");
  n.toLower(icu::Locale::getRoot());  // root locale: no Turkish/Lithuanian rules, as Python's str.lower()
  std::string out;
  n.toUTF8String(out);
  return out;
#else
  throw std::runtime_error(
      "casefold: this pgolf-data was built without ICU, which non-ASCII text needs (NFKC); install libicu-dev "
      "and rebuild, or casefold the text with scripts/casefold_jsonl.py and prepare it with --transform none");
#endif
}

}  // namespace pgolf
