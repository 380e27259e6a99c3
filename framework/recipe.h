// Recipes: JSON files that are the only home of hyperparameters.
//
// Loading: read the file, follow "extends" (a path relative to the extending file; objects merge key by
// key, anything else is replaced), apply --set key.path=value overrides, then validate every section
// against the Schema of the component that consumes it. The result is the fully resolved recipe.
#pragma once

#include <string>
#include <vector>

#include "framework/config.h"

namespace pgolf {

struct Recipe {
  Json resolved;     // every key, defaults filled in
  std::string file;  // the recipe named on the command line
  Config root() const { return Config(resolved, "", file); }
  Config section(const std::string& key) const { return root().sub(key); }
};

// The top-level keys of a recipe (data, model, optim, schedule, train, eval, artifact, ...).
const Schema& recipe_schema();

// Reads `file` with its extends chain, applies overrides ("a.b.c=value", the value parsed as JSON
// when it parses, else taken as a string) and validates. Throws ConfigError naming file and key.
Recipe load_recipe(const std::string& file, const std::vector<std::string>& overrides);

// The same from an in-memory JSON (tests); `name` stands in for the file name in messages.
Recipe resolve_recipe(const Json& raw, const std::string& name, const std::vector<std::string>& overrides);

}  // namespace pgolf
