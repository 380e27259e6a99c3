// The component registry: components are registered by kind and name, each with its Schema, and built
// from recipe sections. Adding a variant is one new file with one PGOLF_REGISTER line; nothing central
// changes. Plugins (--plugin lib.so) register more components the same way when they are loaded.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/config.h"

namespace pgolf {

// Every (kind, name) -> Schema, whatever the C++ type of the component. Recipe validation uses this
// alone, so it can check a "model.attention" section without knowing what an attention module is.
class SchemaCatalog {
 public:
  static SchemaCatalog& get();
  void add(const std::string& kind, const std::string& name, Schema schema, std::string help);
  const Schema* find(const std::string& kind, const std::string& name) const;
  std::vector<std::string> names(const std::string& kind) const;
  std::vector<std::string> kinds() const;
  std::string help(const std::string& kind, const std::string& name) const;
  // The source file (__FILE__) that registered a component: what the code accounting ships. "" if unknown.
  bool set_source(const std::string& kind, const std::string& name, std::string file);
  std::string source(const std::string& kind, const std::string& name) const;
  // Components that one builds by name without the recipe naming them (a container's compressors).
  bool add_use(const std::string& kind, const std::string& name, const std::string& used_kind, const std::string& used);
  std::vector<std::pair<std::string, std::string>> uses(const std::string& kind, const std::string& name) const;

 private:
  struct Entry {
    Schema schema;
    std::string help;
  };
  std::map<std::string, std::map<std::string, Entry>> entries_;
  std::map<std::pair<std::string, std::string>, std::string> sources_;
  std::map<std::pair<std::string, std::string>, std::vector<std::pair<std::string, std::string>>> uses_;
};

// "a, b, c" for error messages.
std::string join_names(const std::vector<std::string>& names);

// A typed registry for one kind. Base declares `static constexpr const char* kKind`.
// Factories receive the validated Config of their section plus kind-specific build arguments.
template <class Base, class... Args>
class Registry {
 public:
  using Factory = std::function<std::shared_ptr<Base>(const Config&, Args...)>;

  static Registry& get() {
    static Registry instance;
    return instance;
  }

  bool add(const std::string& name, Schema schema, Factory factory, std::string help = "") {
    SchemaCatalog::get().add(Base::kKind, name, std::move(schema), std::move(help));
    factories_[name] = std::move(factory);
    return true;
  }

  std::shared_ptr<Base> build(const Config& cfg, Args... args) const {
    const std::string name = cfg.name();
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::vector<std::string> known;
      for (const auto& [n, f] : factories_) known.push_back(n);
      throw ConfigError(cfg.key_path("name") + ": unknown " + Base::kKind + " '" + name + "'; known: " +
                        join_names(known));
    }
    return it->second(cfg, std::forward<Args>(args)...);
  }

  bool has(const std::string& name) const { return factories_.count(name) != 0; }
  static const char* kind() { return Base::kKind; }

 private:
  std::map<std::string, Factory> factories_;
};

}  // namespace pgolf

#define PGOLF_CONCAT_INNER(a, b) a##b
#define PGOLF_CONCAT(a, b) PGOLF_CONCAT_INNER(a, b)
// PGOLF_REGISTER(AttentionRegistry, "gqa", schema_fn(), factory_lambda, "one-line help");
#define PGOLF_REGISTER(REGISTRY, NAME, ...)                                              \
  static const bool PGOLF_CONCAT(pgolf_registered_, __LINE__) =                          \
      REGISTRY::get().add(NAME, __VA_ARGS__) &&                                          \
      ::pgolf::SchemaCatalog::get().set_source(REGISTRY::kind(), NAME, __FILE__)
// PGOLF_USES("container", "standard", "compressor", "brotli"): the first builds the second by name.
#define PGOLF_USES(KIND, NAME, USED_KIND, USED) \
  static const bool PGOLF_CONCAT(pgolf_uses_, __LINE__) = ::pgolf::SchemaCatalog::get().add_use(KIND, NAME, USED_KIND, USED)
