// The code counted against the artifact budget (spec posttrain §7.4): the sources named by the recipe.
#pragma once

#include <cstdint>

#include "framework/artifact.h"
#include "framework/config.h"

namespace pgolf {

// The keys of a "code" section (count, sources), declared once for whichever stage counts code.
Schema code_count_schema();
// Bytes of the code: the listed files and directories of the source tree, concatenated in sorted path order
// (each file's path, a NUL, its bytes), compressed with `compressor` (count = compressed), raw, or 0 (none).
// Throws ConfigError naming the key when a listed source does not exist.
int64_t count_code_bytes(const Config& code, const Compressor& compressor);

}  // namespace pgolf
