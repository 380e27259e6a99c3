#include "framework/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgolf {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot create (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed (" + why + ")");
  }
}

std::string expand_env(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t end = s.find('}', i + 2);
      if (end == std::string::npos) throw std::runtime_error("unterminated ${ in '" + s + "'");
      std::string body = s.substr(i + 2, end - i - 2), name = body, def;
      size_t d = body.find(":-");
      if (d != std::string::npos) {
        name = body.substr(0, d);
        def = body.substr(d + 2);
      }
      const char* v = std::getenv(name.c_str());
      out += (v && *v) ? std::string(v) : def;
      i = end + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

}  // namespace pgolf
