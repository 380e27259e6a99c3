#include "framework/io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgolf {

// stat(2), not std::filesystem: this runs on the container's threads too (quant/lrzip.cpp says why).
std::string directory_problem(const std::string& path, const std::string& what) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? path + " is a directory, expected " + what : "";
}

std::string read_file(const std::string& path) {
  if (const std::string dir = directory_problem(path); !dir.empty()) throw std::runtime_error(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(writable_path(tmp).c_str(), "wb");
  if (!f) throw std::runtime_error(path + ": cannot create (" + std::strerror(errno) + ")");
  int err = 0;  // the first failure's errno: later calls on a failed stream report other things
  auto check = [&err](bool ok) {
    if (!ok && err == 0) err = errno ? errno : EIO;
  };
  check(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  check(std::fflush(f) == 0);
  if (err == 0) check(::fsync(::fileno(f)) == 0);
  check(std::fclose(f) == 0);
  if (err == 0) check(std::rename(tmp.c_str(), path.c_str()) == 0);
  if (err != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed (" + std::strerror(err) + ")");
  }
}

std::string writable_path(const std::string& path) {
  const char* inject = std::getenv("PGOLF_INJECT_WRITE_FAILURE");
  if (!inject || !*inject) return path;
  const std::string base = path.substr(path.find_last_of('/') + 1), name = inject;
  return base == name || base.rfind(name + ".tmp.", 0) == 0 ? "/dev/full" : path;
}

}  // namespace pgolf
