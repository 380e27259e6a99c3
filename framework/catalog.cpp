// `trainer --list`: every registered component by kind, with its keys and defaults.
#include <ostream>

#include "framework/registry.h"
#include "framework/trainer.h"

namespace pgolf {

void print_components(std::ostream& os) {
  auto& cat = SchemaCatalog::get();
  for (const auto& kind : cat.kinds()) {
    os << kind << ":\n";
    for (const auto& name : cat.names(kind)) {
      os << "  " << name;
      const std::string h = cat.help(kind, name);
      if (!h.empty()) os << " - " << h;
      os << "\n";
      for (const auto& k : cat.find(kind, name)->keys())
        os << "      " << k.name << " = "
           << (k.default_value.is_null() ? std::string("<section>") : k.default_value.dump()) << "  # " << k.help
           << "\n";
    }
  }
}

}  // namespace pgolf
