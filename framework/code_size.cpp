#include "framework/code_size.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "framework/artifact.h"
#include "framework/io.h"
#include "framework/log.h"
#include "framework/recipe.h"

#ifndef PGOLF_SOURCE_DIR
#define PGOLF_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace pgolf {

namespace {

// The bundle's root CMakeLists.txt: always this text (never read from disk), so a bundle counts as its source.
constexpr const char* kBundleRoot =
    "cmake_minimum_required(VERSION 3.25)\nproject(pgolf LANGUAGES CXX)\ninclude(apps/bundle.cmake)\n";
// Besides the framework core and the recipe's components: the trainer's entry point and the build files.
// quant/brotli_compressor.cpp: the code count itself is brotli-11, whatever the recipe compresses with.
const std::vector<std::string> kBundleAlways = {"apps/trainer_main.cpp", "apps/bundle.cmake", "quant/brotli_compressor.cpp",
                                                "third_party/cmake/FindLibTorch.cmake",
                                                "third_party/cmake/FindBrotli.cmake"};

const fs::path& root_dir() {
  static const fs::path r = fs::path(PGOLF_SOURCE_DIR);
  return r;
}

// A registration's __FILE__ (absolute, or relative where ccache rewrote it) as "dir/file.cpp" in the tree.
std::string tree_path(const std::string& file) {
  const fs::path p(file);
  return (p.parent_path().filename() / p.filename()).generic_string();
}

void collect_components(const Schema& schema, const Json& v, std::set<std::pair<std::string, std::string>>& out);

void collect_component(const std::string& kind, const Json& section, std::set<std::pair<std::string, std::string>>& out) {
  if (!section.is_object() || !section.contains("name")) return;
  const std::string name = section["name"].get<std::string>();
  if (!out.insert({kind, name}).second) return;
  for (const auto& [k, n] : SchemaCatalog::get().uses(kind, name)) collect_component(k, Json{{"name", n}}, out);
  if (const Schema* s = SchemaCatalog::get().find(kind, name)) collect_components(*s, section, out);
}

// Every (kind, name) the resolved section names, at any depth.
void collect_components(const Schema& schema, const Json& v, std::set<std::pair<std::string, std::string>>& out) {
  for (const auto& k : schema.keys()) {
    if (!v.is_object() || !v.contains(k.name)) continue;
    const Json& x = v[k.name];
    if (k.type == KeySpec::Type::Section) collect_components(*k.section, x, out);
    if (k.type == KeySpec::Type::Component) collect_component(k.kind, x, out);
    if (k.type == KeySpec::Type::ComponentList)
      for (const auto& e : x) collect_component(k.kind, e, out);
  }
}

// Adds `rel` and, transitively, the project files it includes ("dir/x.h", and dir/x.cpp beside a header).
void add_with_includes(const std::string& rel, std::set<std::string>& files) {
  if (!files.insert(rel).second || !(rel.size() > 2 && (rel.rfind(".h") == rel.size() - 2 || rel.rfind(".cpp") == rel.size() - 4)))
    return;
  std::istringstream in(read_file((root_dir() / rel).string()));
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find("#include \"");
    if (a == std::string::npos || line.find_first_not_of(" \t") != a) continue;
    const size_t b = line.find('"', a + 10);
    const std::string inc = line.substr(a + 10, b - a - 10);
    if (!fs::is_regular_file(root_dir() / inc)) continue;  // a system or third-party header
    add_with_includes(inc, files);
    if (inc.size() > 2 && inc.compare(inc.size() - 2, 2, ".h") == 0) {
      const std::string cpp = inc.substr(0, inc.size() - 2) + ".cpp";
      if (fs::is_regular_file(root_dir() / cpp)) add_with_includes(cpp, files);
    }
  }
}

bool is_cmake(const std::string& rel) {
  return rel.size() >= 6 && (rel.compare(rel.size() - 6, 6, ".cmake") == 0 || fs::path(rel).filename() == "CMakeLists.txt");
}

std::string stripped(const std::string& rel) {
  const std::string text = read_file((root_dir() / rel).string());
  return is_cmake(rel) ? strip_cmake(text) : strip_cpp(text);
}

// path NUL text, for every file in order, then the bundle's root CMakeLists.txt.
std::string bundle_text(const std::vector<std::string>& files) {
  std::string all;
  for (const auto& f : files) all += f + '\0' + stripped(f);
  return all + "CMakeLists.txt" + '\0' + kBundleRoot;
}

std::vector<std::string> listed_sources(const Config& code) {
  std::vector<std::string> files;
  for (const auto& entry : code.strings("sources")) {
    const fs::path p = root_dir() / entry;
    if (fs::is_regular_file(p)) {
      files.push_back(entry);
    } else if (fs::is_directory(p)) {
      for (const auto& f : fs::recursive_directory_iterator(p))
        if (f.is_regular_file()) files.push_back(fs::relative(f.path(), root_dir()).generic_string());
    } else {
      throw ConfigError(code.key_path("sources") + ": '" + entry + "' is not in the source tree " + root_dir().string() +
                        "; fix the list or set " + code.key_path("count") + "=none");
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

int64_t brotli11(const std::string& text, const std::string& key) {
  if (!SchemaCatalog::get().find("compressor", "brotli"))
    throw ConfigError(key + ": code is counted with brotli-11, and this build has no brotli (install libbrotli-dev, "
                      "re-run cmake), or set it to none");
  return static_cast<int64_t>(make_compressor(Json{{"name", "brotli"}, {"quality", 11}}, key)->compress(text).size());
}

}  // namespace

Schema code_count_schema() {
  Schema code;
  code.choice("count", "bundle", {"bundle", "sources", "raw", "none"},
              "bundle: the recipe's minimal source bundle (framework core + its components), stripped, brotli-11; "
              "sources: the listed sources, stripped, brotli-11; raw: the listed sources as they are; none: 0")
      .string_list("sources", {"framework", "models", "optim", "quant", "tokenizers", "ttt", "apps", "CMakeLists.txt"},
                   "files and directories (relative to the source tree) counted by count=sources or raw");
  return code;
}

Json budget_summary(int64_t model_bytes, const CodeCount& code, int64_t budget) {
  const int64_t total = model_bytes + code.bytes;
  return Json{{"artifact_bytes", total},         {"artifact_model_bytes", model_bytes},
              {"artifact_code_bytes", code.bytes}, {"code_counting", code.how},
              {"budget_bytes", budget},           {"within_budget", total <= budget}};
}

std::vector<std::string> bundle_files(const Json& recipe, const std::string& key) {
  std::set<std::pair<std::string, std::string>> chosen;
  collect_components(recipe_schema(), recipe, chosen);
  std::set<std::string> registering, wanted;
  for (const auto& kind : SchemaCatalog::get().kinds())
    for (const auto& name : SchemaCatalog::get().names(kind)) {
      const std::string src = SchemaCatalog::get().source(kind, name);
      if (src.empty()) continue;
      registering.insert(tree_path(src));
      // A component registered outside the tree (a plugin) is not part of the bundle: it ships on its own.
      if (chosen.count({kind, name}) && fs::is_regular_file(root_dir() / tree_path(src))) wanted.insert(tree_path(src));
    }
  std::vector<std::string> seeds(kBundleAlways);
  for (const auto& f : fs::directory_iterator(root_dir() / "framework")) {
    const std::string rel = "framework/" + f.path().filename().string(), ext = f.path().extension().string();
    if ((ext == ".h" || ext == ".cpp") && !registering.count(rel)) seeds.push_back(rel);
  }
  // The fused ops' CPU forms (kernels/*.cpp): the models call them through kernels/ops.h, whose functions
  // live in one file per op rather than in ops.cpp.
  for (const auto& f : fs::directory_iterator(root_dir() / "kernels"))
    if (f.path().extension() == ".cpp") seeds.push_back("kernels/" + f.path().filename().string());
  seeds.insert(seeds.end(), wanted.begin(), wanted.end());
  std::set<std::string> files;
  for (const auto& s : seeds) {
    if (!fs::is_regular_file(root_dir() / s))
      throw ConfigError(key + ": the code bundle needs " + s + ", which is not in the source tree " + root_dir().string() +
                        " (a component registered outside it, e.g. by a plugin, cannot be counted; set it to none)");
    add_with_includes(s, files);
  }
  return {files.begin(), files.end()};
}

void check_code_sources(const Config& code, const Json& recipe) {
  const std::string mode = code.s("count");
  if (mode == "bundle") bundle_files(recipe, code.key_path("count"));
  if (mode == "sources" || mode == "raw") listed_sources(code);
  if (mode == "bundle" || mode == "sources") brotli11("", code.key_path("count"));
}

CodeCount count_code(const Config& code, const Json& recipe) {
  const std::string mode = code.s("count");
  if (mode == "none") return {0, "none (not counted)"};
  const std::vector<std::string> files = mode == "bundle" ? bundle_files(recipe, code.key_path("count")) : listed_sources(code);
  if (mode == "raw") {
    int64_t n = 0;
    for (const auto& f : files) n += static_cast<int64_t>(fs::file_size(root_dir() / f));
    return {n, "raw: " + std::to_string(files.size()) + " listed source files as they are"};
  }
  const std::string text = mode == "bundle" ? bundle_text(files) : [&] {
    std::string all;
    for (const auto& f : files) all += f + '\0' + stripped(f);
    return all;
  }();
  const int64_t n = brotli11(text, code.key_path("count"));
  return {n, strf("%s: %zu files (%s), comments and blank lines stripped (%zu bytes), brotli-11, not byte-shuffled",
                  mode.c_str(), files.size() + (mode == "bundle"),
                  mode == "bundle" ? "framework core + the recipe's components, trainer_main, build files" : "listed",
                  text.size())};
}

CodeCount export_code(const Json& recipe, const std::string& dir) {
  if (fs::exists(dir)) throw ConfigError("--export-code " + dir + ": already exists; name a new directory");
  const std::vector<std::string> files = bundle_files(recipe, "--export-code");
  const fs::path tmp = dir + ".tmp";
  fs::remove_all(tmp);
  for (const auto& f : files) {
    fs::create_directories((tmp / f).parent_path());
    std::ofstream(tmp / f, std::ios::binary) << stripped(f);
  }
  std::ofstream(tmp / "CMakeLists.txt", std::ios::binary) << kBundleRoot;
  fs::rename(tmp, dir);
  Config code(Json{{"count", "bundle"}, {"sources", Json::array()}}, "--export-code");
  return count_code(code, recipe);
}

std::string strip_cpp(const std::string& s) {
  std::string out;
  const size_t n = s.size();
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t i = 0; i < n;) {
    const char c = s[i];
    if (c == '/' && i + 1 < n && s[i + 1] == '/') {
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      const size_t e = s.find("*/", i + 2);
      i = e == std::string::npos ? n : e + 2;
      out += ' ';
    } else if (c == 'R' && i + 1 < n && s[i + 1] == '"' && (i == 0 || !ident(s[i - 1]))) {
      const size_t open = s.find('(', i + 2);
      const std::string close = ")" + s.substr(i + 2, open - i - 2) + "\"";
      const size_t e = s.find(close, open);
      const size_t end = e == std::string::npos ? n : e + close.size();
      out.append(s, i, end - i);
      i = end;
    } else if (c == '"' || (c == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(s[i - 1])) && i + 1 < n &&
                                          std::isxdigit(static_cast<unsigned char>(s[i + 1]))))) {
      size_t j = i + 1;  // a string or character literal, escapes included; a digit separator is not one
      while (j < n && s[j] != c && s[j] != '\n') j += s[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, n);
      out.append(s, i, j - i);
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  std::istringstream in(out);
  std::string result;
  for (std::string line; std::getline(in, line);) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty()) result += line + '\n';
  }
  return result;
}

std::string strip_cmake(const std::string& text) {
  std::istringstream in(text);
  std::string result;
  for (std::string line; std::getline(in, line);) {
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) quoted = !quoted;
      if (line[i] == '#' && !quoted) {
        line.erase(i);
        break;
      }
    }
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty()) result += line + '\n';
  }
  return result;
}

}  // namespace pgolf
