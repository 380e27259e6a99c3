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
#if __has_include(<torch/headeronly/version.h>)  // TORCH_VERSION, without the rest of torch
#include <torch/headeronly/version.h>
#elif __has_include(<torch/version.h>)
#include <torch/version.h>
#endif
#ifndef TORCH_VERSION
#define TORCH_VERSION "none"
#endif

// The plugin ABI stamp: a plugin built against other pgolf headers (or another LibTorch or C++ ABI) is refused
// before it is loaded. Bump PGOLF_ABI_VERSION whenever a header a plugin sees changes a layout or a signature.
#define PGOLF_VERSION "0.16.0"
#define PGOLF_ABI_VERSION 2
#define PGOLF_STRINGIFY_INNER(x) #x
#define PGOLF_STRINGIFY(x) PGOLF_STRINGIFY_INNER(x)
#define PGOLF_ABI_STAMP                                                                                   \
  "pgolf " PGOLF_VERSION " abi " PGOLF_STRINGIFY(PGOLF_ABI_VERSION) "; torch " TORCH_VERSION "; gxx-abi " \
  PGOLF_STRINGIFY(__GXX_ABI_VERSION) "; cxx11-abi " PGOLF_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)

namespace pgolf {

// The stamp as bytes in every binary that includes this header, between markers, so the plugin loader can read
// a .so's stamp from the file without running any of its code (framework/plugin.cpp).
namespace {
[[gnu::used]] const char kPgolfAbiStampBytes[] = "PGOLF_ABI_STAMP{" PGOLF_ABI_STAMP "}";
}  // namespace

// Who registered what: each PGOLF_REGISTER's file (and, while a plugin loads, the plugin's path), so a name
// registered twice names both sources. A duplicate is recorded, not thrown: an exception must not cross a
// static initialiser (it would abort the program, or unwind through dlopen).
class RegistrationLog {
 public:
  static RegistrationLog& get();
  // Records kind/name from `file`; false (and an error naming both sources) when the name is taken.
  bool claim(const std::string& kind, const std::string& name, const std::string& file);
  std::vector<std::string> take_errors();  // the duplicates recorded since the last call
  int64_t count() const { return count_; }  // successful registrations so far
  std::string loading_plugin;               // set by load_plugin while its dlopen runs

 private:
  std::map<std::string, std::string> sources_;  // "kind 'name'" -> where it was registered
  std::vector<std::string> errors_;
  int64_t count_ = 0;
};

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
    return add_from("(unnamed source)", name, std::move(schema), std::move(factory), std::move(help));
  }
  // PGOLF_REGISTER's form: `file` is the registering source file. A taken name keeps its first registration.
  bool add_from(const std::string& file, const std::string& name, Schema schema, Factory factory, std::string help = "") {
    if (!RegistrationLog::get().claim(Base::kKind, name, file)) return false;
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
      REGISTRY::get().add_from(__FILE__, NAME, __VA_ARGS__) &&                           \
      ::pgolf::SchemaCatalog::get().set_source(REGISTRY::kind(), NAME, __FILE__)
// PGOLF_USES("container", "standard", "compressor", "brotli"): the first builds the second by name.
#define PGOLF_USES(KIND, NAME, USED_KIND, USED) \
  static const bool PGOLF_CONCAT(pgolf_uses_, __LINE__) = ::pgolf::SchemaCatalog::get().add_use(KIND, NAME, USED_KIND, USED)
