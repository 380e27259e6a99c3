// Plugins: the ABI stamp read from the file before dlopen (a plugin built against other headers would crash
// inside its static initialisers, so none of its code runs until the stamps match), duplicate names caught by
// the RegistrationLog, and a warning for a plugin that registered nothing.
#include "framework/plugin.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/registry.h"

namespace fs = std::filesystem;

namespace pgolf {

RegistrationLog& RegistrationLog::get() {
  static RegistrationLog log;
  return log;
}

bool RegistrationLog::claim(const std::string& kind, const std::string& name, const std::string& file) {
  const std::string source = loading_plugin.empty() ? file : "plugin " + loading_plugin + " (" + file + ")";
  const std::string key = kind + " '" + name + "'";
  auto it = sources_.find(key);
  if (it != sources_.end()) {
    errors_.push_back(key + " is registered twice: first by " + it->second + ", again by " + source +
                      "; rename one of them");
    return false;
  }
  sources_.emplace(key, source);
  ++count_;
  return true;
}

std::vector<std::string> RegistrationLog::take_errors() {
  std::vector<std::string> e;
  e.swap(errors_);
  return e;
}

std::string abi_stamp() { return PGOLF_ABI_STAMP; }

std::string read_abi_stamp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str(), open = "PGOLF_ABI_STAMP{";
  const size_t at = bytes.find(open);
  if (at == std::string::npos) return "";
  const size_t end = bytes.find('}', at);
  return end == std::string::npos ? "" : bytes.substr(at + open.size(), end - at - open.size());
}

namespace {

void throw_if_duplicates() {
  const std::vector<std::string> errors = RegistrationLog::get().take_errors();
  if (errors.empty()) return;
  std::string msg;
  for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
  throw ConfigError(msg);
}

// The working directory first; a bare name is then looked for in LD_LIBRARY_PATH.
std::string resolve(const std::string& path) {
  if (fs::exists(path)) return fs::absolute(path).lexically_normal().string();
  if (path.find('/') == std::string::npos)
    if (const char* llp = std::getenv("LD_LIBRARY_PATH")) {
      std::stringstream dirs(llp);
      std::string d;
      while (std::getline(dirs, d, ':'))
        if (!d.empty() && fs::exists(fs::path(d) / path)) return (fs::path(d) / path).string();
    }
  throw ConfigError("--plugin " + path + ": no such file (looked in the working directory " + fs::current_path().string() +
                    (path.find('/') == std::string::npos ? " and LD_LIBRARY_PATH)" : ")"));
}

}  // namespace

void check_registrations() { throw_if_duplicates(); }

void load_plugin(const std::string& path) {
  const std::string file = resolve(path);
  if (fs::is_directory(file)) throw ConfigError("--plugin " + path + ": is a directory, expected a shared library");
  const std::string stamp = read_abi_stamp(file);
  if (stamp.empty())
    throw ConfigError("--plugin " + path + ": not a pgolf plugin (no ABI stamp; a plugin includes framework/registry.h "
                      "and links pgolf::plugin from find_package(pgolf))");
  if (stamp != abi_stamp())
    throw ConfigError("--plugin " + path + ": built against another pgolf (" + stamp + "); this trainer is " + abi_stamp() +
                      "; rebuild the plugin against this pgolf's install prefix");
  auto& reg = RegistrationLog::get();
  const int64_t before = reg.count();
  reg.loading_plugin = file;
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
  reg.loading_plugin.clear();
  if (!handle) throw ConfigError("--plugin " + path + ": cannot load (" + dlerror() + ")");
  throw_if_duplicates();
  if (reg.count() == before)
    std::fprintf(stderr, "trainer: warning: --plugin %s: registered no components (does it use PGOLF_REGISTER? "
                         "were its .cpp files compiled into it?)\n", path.c_str());
}

}  // namespace pgolf
