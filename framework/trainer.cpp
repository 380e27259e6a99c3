#include "framework/trainer.h"

#include <iostream>

#include "framework/log.h"
#include "framework/model.h"
#include "framework/registry.h"

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
        os << "      " << k.name << " = " << (k.default_value.is_null() ? std::string("<section>") : k.default_value.dump())
           << "  # " << k.help << "\n";
    }
  }
}

int run_trainer(const TrainerOptions& opt) {
  Recipe recipe = load_recipe(opt.recipe, opt.overrides);
  auto model = ModelRegistry::get().build(recipe.section("model"));
  log::info("recipe: " + recipe.file);
  log::info("params: " + std::to_string(count_parameters(*model)));
  return 0;
}

}  // namespace pgolf
