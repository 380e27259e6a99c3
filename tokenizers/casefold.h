// Casefold (spec posttrain §3.4, the Casefold-V4 text transform [inferred]): NFKC, then full Unicode
// lowercasing (Python's str.lower(): İ -> i̇, final sigma). Lossy: case is discarded.
#pragma once

#include <string>
#include <string_view>

namespace pgolf {

// False when pgolf was built without ICU (then casefold() throws saying how to get it).
bool casefold_available();
// Throws std::runtime_error naming the byte offset when `text` is not valid UTF-8.
std::string casefold(std::string_view text);

}  // namespace pgolf
