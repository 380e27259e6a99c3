#include "quant/lrzip.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "framework/io.h"

extern char** environ;

namespace pgolf {

namespace {

bool regular_file(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool executable(const std::string& p) { return regular_file(p) && access(p.c_str(), X_OK) == 0; }

// A private temp directory holding the few files one lrzip run makes, removed with them when the call ends.
// Plain POSIX calls, not std::filesystem: the groups run on threads, and on the GPU machine the binary binds
// std::filesystem::remove_all to the copy libtorch.so exports, which jumped to address 0 when threads called
// it at once (cuda-gdb backtrace, 2026-12-03).
struct TempDir {
  TempDir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/pgolf-lrzip-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("lrzip: cannot create a temp directory in " + tmpl);
    path = tmpl;
  }
  ~TempDir() {
    if (DIR* d = ::opendir(path.c_str())) {  // flat: the input, lrzip's output and its log
      while (const dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ::unlink((path + "/" + e->d_name).c_str());
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
  std::string path;
};

// Runs program with args (stdin /dev/null, stdout and stderr to `log`), LRZIP=NOCONFIG so no user lrzip.conf
// changes the stream. Returns the exit status (-1 when it could not start or died by a signal).
int run(const std::string& program, const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_s = {"LRZIP=NOCONFIG"};
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("LRZIP=", 0) != 0) env_s.emplace_back(*e);
  std::vector<char*> env;
  for (auto& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, program.c_str(), &fa, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string through_lrzip(const std::string& program, const std::string& in, bool compress) {
  const std::string exe = find_program(program);
  if (exe.empty())
    throw std::runtime_error("lrzip: the program '" + program + "' is not on PATH (install the Debian package lrzip)");
  TempDir dir;
  const std::string src = dir.path + (compress ? "/in.bin" : "/in.lrz"), dst = dir.path + "/out", log = dir.path + "/log";
  write_file_atomic(src, in);
  const std::vector<std::string> args = compress ? std::vector<std::string>{"-q", "-z", "-L", "9", "-o", dst, src}
                                                 : std::vector<std::string>{"-q", "-d", "-f", "-o", dst, src};
  const int status = run(exe, args, log);
  if (status != 0 || !regular_file(dst)) {
    std::string said = regular_file(log) ? read_file(log) : "";
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    throw std::runtime_error(std::string("lrzip ") + (compress ? "compress" : "decompress") + " failed (exit " +
                             std::to_string(status) + ")" + (said.empty() ? "" : ": " + said));
  }
  return read_file(dst);
}

}  // namespace

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return executable(program) ? program : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  size_t start = 0;
  while (start <= p.size()) {
    const size_t end = std::min(p.find(':', start), p.size());
    const std::string dir = end > start ? p.substr(start, end - start) : ".";
    if (executable(dir + "/" + program)) return dir + "/" + program;
    start = end + 1;
  }
  return "";
}

std::string lrzip_compress(const std::string& program, const std::string& raw) { return through_lrzip(program, raw, true); }

std::string lrzip_decompress(const std::string& program, const std::string& packed) {
  return through_lrzip(program, packed, false);
}

}  // namespace pgolf
