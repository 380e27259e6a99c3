#include "framework/config.h"

#include <cmath>
#include <sstream>

#include "framework/registry.h"

namespace pgolf {

namespace {

std::string where(const std::string& file, const std::string& path) {
  return (file.empty() ? std::string() : file + ": ") + (path.empty() ? std::string("<top level>") : path);
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string show(const Json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

std::string range_text(const KeySpec& k) {
  std::ostringstream o;
  if (k.min && k.max) o << " in [" << *k.min << ", " << *k.max << "]";
  else if (k.min) o << " >= " << *k.min;
  else if (k.max) o << " <= " << *k.max;
  return o.str();
}

bool in_range(const KeySpec& k, double x) {
  return std::isfinite(x) && (!k.min || x >= *k.min) && (!k.max || x <= *k.max);
}

// Integers may be written as 3 or 3.0 but not 3.5; numbers as any JSON number.
bool as_int(const Json& v, int64_t& out) {
  if (v.is_number_integer()) { out = v.get<int64_t>(); return true; }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) { out = static_cast<int64_t>(d); return true; }
  }
  return false;
}

Json validate_component(const Json& in, const std::string& kind, const std::string& path, const std::string& file,
                        const Json& default_name = Json()) {
  Json obj = in;
  if (obj.is_string()) obj = Json{{"name", obj}};
  // A section that only sets keys ({"rope_base": 500}) configures the default component.
  if (obj.is_object() && !obj.contains("name") && default_name.is_string()) obj["name"] = default_name;
  if (!obj.is_object())
    throw ConfigError(where(file, path) + ": expected a " + kind + " section {\"name\": ...}, got " + show(in));
  auto& catalog = SchemaCatalog::get();
  if (!obj.contains("name") || !obj["name"].is_string())
    throw ConfigError(where(file, join_path(path, "name")) + ": expected the name of a " + kind + "; known: " +
                      join_names(catalog.names(kind)));
  const std::string name = obj["name"].get<std::string>();
  const Schema* schema = catalog.find(kind, name);
  if (!schema)
    throw ConfigError(where(file, join_path(path, "name")) + ": unknown " + kind + " '" + name + "'; known: " +
                      join_names(catalog.names(kind)) +
                      " (a plugin that provides it must be loaded with --plugin)");
  Json rest = obj;
  rest.erase("name");
  Json out = Json{{"name", name}};
  const Json filled = schema->validate(rest, path, file);  // named: items() would dangle on a temporary
  for (auto& [k, v] : filled.items()) out[k] = v;
  return out;
}

}  // namespace

KeySpec& Schema::add(KeySpec spec) {
  if (find(spec.name)) throw std::logic_error("Schema declares key '" + spec.name + "' twice");
  keys_.push_back(std::move(spec));
  return keys_.back();
}

// A key of `type` with its default; the callers fill in what their type adds (range, choices, kind...).
static KeySpec key_spec(const std::string& name, KeySpec::Type type, Json def) {
  KeySpec k;
  k.name = name;
  k.type = type;
  k.default_value = std::move(def);
  return k;
}

const KeySpec* Schema::find(const std::string& name) const {
  for (const auto& k : keys_)
    if (k.name == name) return &k;
  return nullptr;
}

Schema& Schema::integer(const std::string& name, int64_t def, double min, double max, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Int, Json(def));
  k.min = min; k.max = max; k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::number(const std::string& name, double def, double min, double max, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Float, Json(def));
  k.min = min; k.max = max; k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::boolean(const std::string& name, bool def, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Bool, Json(def));
  k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::string(const std::string& name, const std::string& def, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::String, Json(def));
  k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::required_string(const std::string& name, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::String, Json());
  k.help = help; k.required = true;
  add(std::move(k));
  return *this;
}

Schema& Schema::choice(const std::string& name, const std::string& def, std::vector<std::string> choices,
                       const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Choice, Json(def));
  k.choices = std::move(choices); k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::int_list(const std::string& name, std::vector<int64_t> def, double min, double max,
                         const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::IntList, Json(def));
  k.min = min; k.max = max; k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::string_list(const std::string& name, std::vector<std::string> def, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::StringList, Json(def));
  k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::section(const std::string& name, Schema schema, const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Section, Json());
  k.section = std::make_shared<const Schema>(std::move(schema)); k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::component(const std::string& name, const std::string& kind, const std::string& def,
                          const std::string& help) {
  KeySpec k = key_spec(name, KeySpec::Type::Component, def.empty() ? Json() : Json(def));
  k.kind = kind; k.help = help; k.required = def.empty();
  add(std::move(k));
  return *this;
}

Schema& Schema::component_list(const std::string& name, const std::string& kind, const std::string& help, Json def) {
  KeySpec k = key_spec(name, KeySpec::Type::ComponentList, std::move(def));
  k.kind = kind; k.help = help;
  add(std::move(k));
  return *this;
}

Schema& Schema::merge(const Schema& other) {
  for (const auto& k : other.keys_) add(k);
  return *this;
}

Json Schema::validate(const Json& in, const std::string& path, const std::string& file) const {
  if (!in.is_object()) throw ConfigError(where(file, path) + ": expected an object, got " + show(in));
  for (auto& [key, v] : in.items()) {
    if (!find(key)) {
      std::vector<std::string> names;
      for (const auto& k : keys_) names.push_back(k.name);
      throw ConfigError(where(file, join_path(path, key)) + ": unknown key; expected one of: " + join_names(names));
    }
  }
  Json out = Json::object();
  for (const auto& k : keys_) {
    const std::string kp = join_path(path, k.name);
    const bool present = in.contains(k.name);
    if (!present && k.required) throw ConfigError(where(file, kp) + ": required key is missing (" + k.help + ")");
    const Json v = present ? in.at(k.name) : k.default_value;
    auto fail = [&](const std::string& expected) {
      throw ConfigError(where(file, kp) + ": expected " + expected + ", got " + show(v));
    };
    switch (k.type) {
      case KeySpec::Type::Int: {
        int64_t x;
        if (!as_int(v, x) || !in_range(k, static_cast<double>(x))) fail("an integer" + range_text(k));
        out[k.name] = x;
        break;
      }
      case KeySpec::Type::Float: {
        if (!v.is_number() || !in_range(k, v.get<double>())) fail("a number" + range_text(k));
        out[k.name] = v.get<double>();
        break;
      }
      case KeySpec::Type::Bool:
        if (!v.is_boolean()) fail("true or false");
        out[k.name] = v;
        break;
      case KeySpec::Type::String:
        if (!v.is_string()) fail("a string");
        out[k.name] = v;
        break;
      case KeySpec::Type::Choice: {
        bool ok = v.is_string();
        if (ok) {
          ok = false;
          for (const auto& c : k.choices) ok = ok || c == v.get<std::string>();
        }
        if (!ok) fail("one of: " + join_names(k.choices));
        out[k.name] = v;
        break;
      }
      case KeySpec::Type::IntList: {
        if (!v.is_array()) fail("a list of integers" + range_text(k));
        Json arr = Json::array();
        for (const auto& e : v) {
          int64_t x;
          if (!as_int(e, x) || !in_range(k, static_cast<double>(x))) fail("a list of integers" + range_text(k));
          arr.push_back(x);
        }
        out[k.name] = arr;
        break;
      }
      case KeySpec::Type::StringList:
        if (!v.is_array()) fail("a list of strings");
        for (const auto& e : v)
          if (!e.is_string()) fail("a list of strings");
        out[k.name] = v;
        break;
      case KeySpec::Type::Section:
        out[k.name] = k.section->validate(present ? v : Json::object(), kp, file);
        break;
      case KeySpec::Type::Component:
        out[k.name] = validate_component(v, k.kind, kp, file, k.default_value);
        break;
      case KeySpec::Type::ComponentList: {
        if (!v.is_array()) fail("a list of " + k.kind + " sections");
        Json arr = Json::array();
        for (size_t i = 0; i < v.size(); ++i)
          arr.push_back(validate_component(v[i], k.kind, kp + "[" + std::to_string(i) + "]", file));
        out[k.name] = arr;
        break;
      }
    }
  }
  return out;
}

// ---- Config ------------------------------------------------------------------------------------

const Json& Config::at(const std::string& key) const {
  if (!value_.is_object() || !value_.contains(key))
    throw ConfigError(key_path(key) + ": key not present (the component reads a key its Schema does not declare)");
  return value_.at(key);
}

int64_t Config::i(const std::string& key) const {
  const Json& v = at(key);
  int64_t x;
  if (!as_int(v, x)) throw ConfigError(key_path(key) + ": expected an integer, got " + show(v));
  return x;
}

double Config::f(const std::string& key) const {
  const Json& v = at(key);
  if (!v.is_number()) throw ConfigError(key_path(key) + ": expected a number, got " + show(v));
  return v.get<double>();
}

bool Config::b(const std::string& key) const {
  const Json& v = at(key);
  if (!v.is_boolean()) throw ConfigError(key_path(key) + ": expected true or false, got " + show(v));
  return v.get<bool>();
}

std::string Config::s(const std::string& key) const {
  const Json& v = at(key);
  if (!v.is_string()) throw ConfigError(key_path(key) + ": expected a string, got " + show(v));
  return v.get<std::string>();
}

std::vector<int64_t> Config::ints(const std::string& key) const {
  std::vector<int64_t> out;
  for (const auto& e : at(key)) {
    int64_t x;
    if (!as_int(e, x)) throw ConfigError(key_path(key) + ": expected a list of integers");
    out.push_back(x);
  }
  return out;
}

std::vector<std::string> Config::strings(const std::string& key) const {
  std::vector<std::string> out;
  for (const auto& e : at(key)) out.push_back(e.get<std::string>());
  return out;
}

Config Config::sub(const std::string& key) const { return Config(at(key), key_path(key), file_); }

void Config::check(bool ok, const std::string& key, const std::string& expected) const {
  if (ok) return;
  const bool present = value_.is_object() && value_.contains(key);
  throw ConfigError(where(file_, key_path(key)) + ": expected " + expected +
                    (present ? ", got " + show(value_.at(key)) : std::string()));
}

std::vector<Config> Config::list(const std::string& key) const {
  std::vector<Config> out;
  const Json& arr = at(key);
  for (size_t i = 0; i < arr.size(); ++i) out.emplace_back(arr[i], key_path(key) + "[" + std::to_string(i) + "]", file_);
  return out;
}

// ---- SchemaCatalog -----------------------------------------------------------------------------

SchemaCatalog& SchemaCatalog::get() {
  static SchemaCatalog instance;
  return instance;
}

void SchemaCatalog::add(const std::string& kind, const std::string& name, Schema schema, std::string help) {
  auto& by_name = entries_[kind];
  if (by_name.count(name))
    throw std::logic_error("pgolf: two components register " + kind + " '" + name + "'; rename one of them");
  by_name.emplace(name, Entry{std::move(schema), std::move(help)});
}

const Schema* SchemaCatalog::find(const std::string& kind, const std::string& name) const {
  auto k = entries_.find(kind);
  if (k == entries_.end()) return nullptr;
  auto n = k->second.find(name);
  return n == k->second.end() ? nullptr : &n->second.schema;
}

std::vector<std::string> SchemaCatalog::names(const std::string& kind) const {
  std::vector<std::string> out;
  auto k = entries_.find(kind);
  if (k != entries_.end())
    for (const auto& [n, e] : k->second) out.push_back(n);
  return out;
}

std::vector<std::string> SchemaCatalog::kinds() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : entries_) out.push_back(k);
  return out;
}

std::string SchemaCatalog::help(const std::string& kind, const std::string& name) const {
  auto k = entries_.find(kind);
  if (k == entries_.end()) return "";
  auto n = k->second.find(name);
  return n == k->second.end() ? "" : n->second.help;
}

bool SchemaCatalog::set_source(const std::string& kind, const std::string& name, std::string file) {
  sources_[{kind, name}] = std::move(file);
  return true;
}

std::string SchemaCatalog::source(const std::string& kind, const std::string& name) const {
  auto it = sources_.find({kind, name});
  return it == sources_.end() ? "" : it->second;
}

bool SchemaCatalog::add_use(const std::string& kind, const std::string& name, const std::string& used_kind,
                            const std::string& used) {
  uses_[{kind, name}].emplace_back(used_kind, used);
  return true;
}

std::vector<std::pair<std::string, std::string>> SchemaCatalog::uses(const std::string& kind, const std::string& name) const {
  auto it = uses_.find({kind, name});
  return it == uses_.end() ? std::vector<std::pair<std::string, std::string>>{} : it->second;
}

std::string join_names(const std::vector<std::string>& names) {
  if (names.empty()) return "(none registered)";
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

}  // namespace pgolf
