// File helpers: whole-file reads, atomic writes (temp file + rename, so nothing is ever half-written).
#pragma once

#include <string>

namespace pgolf {

// Reads a whole file; throws std::runtime_error naming the file if it cannot (a directory: "PATH is a
// directory, expected a file").
std::string read_file(const std::string& path);
// Every reader of a file checks this first, so a directory given where a file is expected is reported as
// such, not as "does not exist", "not valid JSON" or "mmap failed": "PATH is a directory, expected WHAT"
// when `path` names a directory, "" otherwise.
std::string directory_problem(const std::string& path, const std::string& what = "a file");
// Writes `bytes` to `path` through `path.tmp.<pid>` and rename(2); on failure removes the temp file and
// throws naming the file.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Where a write to `path` goes: `path` itself, or /dev/full when PGOLF_INJECT_WRITE_FAILURE names its file
// name (fault injection for the tests of failed writes: every write to it fails with ENOSPC).
std::string writable_path(const std::string& path);

}  // namespace pgolf
