// The code counted against the artifact budget (spec posttrain §7.4). By default what a submission would
// really ship: the minimal source bundle of the recipe — the framework core (framework/ files that register
// no component), the files that register the components the resolved recipe names (and those they build by
// name, PGOLF_USES), the project headers they include with each header's .cpp, the trainer's main and the
// build files — with comments and blank lines stripped, compressed with brotli-11 (never byte-shuffled).
// `trainer --export-code DIR` writes exactly that bundle; it builds and trains the recipe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/config.h"

namespace pgolf {

// The keys of a "code" section (count, sources), declared once for whichever stage counts code.
Schema code_count_schema();

struct CodeCount {
  int64_t bytes = 0;
  std::string how;  // summary.json's code_counting
};

// The summary's accounting keys (spec §7.4): artifact_bytes = model + code, artifact_model_bytes,
// artifact_code_bytes, code_counting, within_budget (total <= budget, decimal bytes).
Json budget_summary(int64_t model_bytes, const CodeCount& code, int64_t budget);

// The bundle's files, relative to the source tree, sorted (components registered outside the tree, by a
// plugin, are left out). Throws ConfigError naming `key` when one is missing.
std::vector<std::string> bundle_files(const Json& recipe, const std::string& key);
// Checks what count_code will read (every listed source exists); throws ConfigError naming the key.
void check_code_sources(const Config& code, const Json& recipe);
// Counts per the section: bundle (default), sources (the listed ones, stripped, brotli-11), raw (the listed
// ones, as they are), none (0).
CodeCount count_code(const Config& code, const Json& recipe);
// Writes the recipe's bundle (stripped) into `dir` (which must not exist yet); returns its count.
CodeCount export_code(const Json& recipe, const std::string& dir);

// C/C++ text without comments, trailing blanks and blank lines (strings, characters and raw strings kept).
std::string strip_cpp(const std::string& text);
// CMake text without # comments and blank lines.
std::string strip_cmake(const std::string& text);

}  // namespace pgolf
