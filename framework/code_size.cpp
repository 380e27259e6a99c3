#include "framework/code_size.h"

#include <algorithm>
#include <filesystem>

#include "framework/io.h"

#ifndef PGOLF_SOURCE_DIR
#define PGOLF_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace pgolf {

Schema code_count_schema() {
  Schema code;
  code.choice("count", "compressed", {"compressed", "raw", "none"},
              "how the code is counted: the project's sources compressed with the artifact compressor, raw, or not")
      .string_list("sources", {"framework", "models", "optim", "quant", "tokenizers", "ttt", "apps", "CMakeLists.txt"},
                   "files and directories (relative to the source tree) that make up the submitted code");
  return code;
}

int64_t count_code_bytes(const Config& code, const Compressor& compressor) {
  const std::string mode = code.s("count");
  if (mode == "none") return 0;
  std::vector<std::string> files;
  for (const auto& entry : code.strings("sources")) {
    const fs::path p = fs::path(PGOLF_SOURCE_DIR) / entry;
    if (fs::is_regular_file(p)) {
      files.push_back(p.string());
    } else if (fs::is_directory(p)) {
      for (const auto& f : fs::recursive_directory_iterator(p))
        if (f.is_regular_file()) files.push_back(f.path().string());
    } else {
      throw ConfigError(code.key_path("sources") + ": '" + entry + "' is not in the source tree " + PGOLF_SOURCE_DIR +
                        "; fix the list or set " + code.key_path("count") + "=none");
    }
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    all += fs::relative(f, PGOLF_SOURCE_DIR).string() + '\0';
    all += read_file(f);
  }
  return mode == "raw" ? static_cast<int64_t>(all.size()) : static_cast<int64_t>(compressor.compress(all).size());
}

}  // namespace pgolf
