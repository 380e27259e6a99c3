// Debian's lrzip program as a byte codec (posttrain §7.3 step 4): bytes go through temp files and one lrzip
// process per call, so several calls on threads compress in parallel.
#pragma once

#include <string>

namespace pgolf {

// The full path of `program` (a name looked up on PATH, or a path); "" when it is not there or not executable.
std::string find_program(const std::string& program);

// `lrzip -z -L 9 -o OUT IN` (compress) or `lrzip -d -f -o OUT IN`; throws std::runtime_error with lrzip's own
// message when it fails (a damaged stream: lrzip checks its MD5).
std::string lrzip_compress(const std::string& program, const std::string& raw);
std::string lrzip_decompress(const std::string& program, const std::string& packed);

}  // namespace pgolf
