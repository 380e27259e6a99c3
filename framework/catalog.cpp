// `trainer --list`: every registered component by kind, with the file that registers it, its keys and defaults.
#include <ostream>
#include <string>

#include "framework/registry.h"
#include "framework/trainer.h"

namespace pgolf {

namespace {

// A registration's __FILE__ as a path in the source tree ("models/gqa_attention.cpp"), or as recorded when it
// lies outside it (a plugin's source).
// (The build gives the compiler paths relative to the build directory, "../models/gqa_attention.cpp", or
// absolute ones; either way the tree's own part is shown.)
std::string shown_source(std::string file) {
#ifdef PGOLF_SOURCE_DIR
  const std::string root = std::string(PGOLF_SOURCE_DIR) + "/";
  if (file.rfind(root, 0) == 0) return file.substr(root.size());
#endif
  while (file.rfind("../", 0) == 0 || file.rfind("./", 0) == 0) file.erase(0, file.find('/') + 1);
  return file;
}

}  // namespace

void print_components(std::ostream& os) {
  auto& cat = SchemaCatalog::get();
  for (const auto& kind : cat.kinds()) {
    os << kind << ":\n";
    for (const auto& name : cat.names(kind)) {
      os << "  " << name;
      const std::string h = cat.help(kind, name);
      if (!h.empty()) os << " - " << h;
      os << "\n";
      const std::string src = cat.source(kind, name);
      if (!src.empty()) os << "      in " << shown_source(src) << "\n";
      for (const auto& k : cat.find(kind, name)->keys())
        os << "      " << k.name << " = "
           << (k.default_value.is_null() ? std::string("<section>") : k.default_value.dump()) << "  # " << k.help
           << "\n";
    }
  }
}

}  // namespace pgolf
