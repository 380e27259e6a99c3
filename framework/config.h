// Recipe keys: how a component declares them (Schema) and how it reads them back (Config).
//
// A component owns one Schema: every key it reads, with its type, default, range and a one-line help.
// The same Schema validates recipes (unknown key, wrong type, out of range -> ConfigError naming the file
// and key path) and fills defaults, so the resolved recipe in a run directory lists every value used.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pgolf {

using Json = nlohmann::ordered_json;

// Bad input: the message names the file (when known), the key path and what was expected.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Schema;

struct KeySpec {
  enum class Type { Int, Float, Bool, String, Choice, IntList, StringList, Section, Component, ComponentList };
  std::string name;
  Type type = Type::Int;
  Json default_value;                 // null for required keys and for sections/components
  std::optional<double> min, max;     // numeric ranges (inclusive); list elements too
  std::vector<std::string> choices;   // Type::Choice
  std::string kind;                   // Type::Component / ComponentList: the registry kind
  std::shared_ptr<const Schema> section;  // Type::Section
  std::string help;
  bool required = false;
};

class Schema {
 public:
  Schema& integer(const std::string& name, int64_t def, double min, double max, const std::string& help);
  Schema& number(const std::string& name, double def, double min, double max, const std::string& help);
  Schema& boolean(const std::string& name, bool def, const std::string& help);
  Schema& string(const std::string& name, const std::string& def, const std::string& help);
  Schema& required_string(const std::string& name, const std::string& help);
  Schema& choice(const std::string& name, const std::string& def, std::vector<std::string> choices,
                 const std::string& help);
  Schema& int_list(const std::string& name, std::vector<int64_t> def, double min, double max, const std::string& help);
  Schema& string_list(const std::string& name, std::vector<std::string> def, const std::string& help);
  // A nested object with keys of its own.
  Schema& section(const std::string& name, Schema schema, const std::string& help);
  // A nested component {"name": <registered name>, ...its keys}; def is the name used when absent.
  Schema& component(const std::string& name, const std::string& kind, const std::string& def, const std::string& help);
  // def: the list used when the key is absent (each entry a component section), empty by default.
  Schema& component_list(const std::string& name, const std::string& kind, const std::string& help,
                         Json def = Json::array());
  // Adds every key of `other` (a shared block of keys, e.g. those common to all optimizers).
  Schema& merge(const Schema& other);

  const std::vector<KeySpec>& keys() const { return keys_; }
  const KeySpec* find(const std::string& name) const;

  // Validates `in` (an object) and returns it with defaults filled, keys in declaration order.
  // `path` is the key path of this object ("model.attention"), `file` the recipe it came from.
  Json validate(const Json& in, const std::string& path, const std::string& file) const;

 private:
  KeySpec& add(KeySpec spec);
  std::vector<KeySpec> keys_;
};

// Read access to one validated section. Every getter throws ConfigError naming the key if it is
// missing or of another type, which after validation means a component read a key it never declared.
class Config {
 public:
  Config() = default;
  // `file`: the recipe the section came from, named in every message (sub() and list() pass it on).
  Config(Json value, std::string path, std::string file = "")
      : value_(std::move(value)), path_(std::move(path)), file_(std::move(file)) {}

  int64_t i(const std::string& key) const;
  double f(const std::string& key) const;
  bool b(const std::string& key) const;
  std::string s(const std::string& key) const;
  std::vector<int64_t> ints(const std::string& key) const;
  std::vector<std::string> strings(const std::string& key) const;
  Config sub(const std::string& key) const;
  std::vector<Config> list(const std::string& key) const;

  // The one helper for checks the Schema cannot make (a key against another key, against the model's
  // shape, ...), run before anything is built from the section: unless `ok`, throws ConfigError
  // "FILE: PATH.key: expected EXPECTED, got VALUE" (exit 2), `expected` naming the other keys and their
  // values. For example model.check(dim % heads == 0, "dim", "a multiple of model.heads (8)").
  void check(bool ok, const std::string& key, const std::string& expected) const;

  // The registered name of a component section ("name" key).
  std::string name() const { return s("name"); }
  const Json& json() const { return value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  const Json& at(const std::string& key) const;
  Json value_ = Json::object();
  std::string path_;
  std::string file_;
};

}  // namespace pgolf
