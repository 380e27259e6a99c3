// File helpers: whole-file reads, atomic writes (temp file + rename, so nothing is ever half-written).
#pragma once

#include <string>

namespace pgolf {

// Reads a whole file; throws std::runtime_error naming the file if it cannot.
std::string read_file(const std::string& path);
// Writes `bytes` to `path` through `path.tmp.<pid>` and rename(2); on failure removes the temp file and
// throws naming the file.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Expands ${VAR} and ${VAR:-default} in a recipe string.
std::string expand_env(const std::string& s);

}  // namespace pgolf
