// Helpers the test files share: a temporary directory that cleans up after itself, and running one of
// the project's binaries with its output captured.
#pragma once

#include <lzma.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace pgolf::testing {

// A fresh directory under $TMPDIR (mkdtemp, so unique across the parallel ctest processes), removed with
// everything in it when the object goes.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag = "test") {
    const char* base = std::getenv("TMPDIR");
    path = std::string(base && *base ? base : "/tmp") + "/pgolf_" + tag + "_XXXXXX";
    if (!::mkdtemp(path.data())) throw std::runtime_error("mkdtemp failed for " + path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
  // Writes `text` to `name` in the directory and returns the file's path.
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }
};

// `text` compressed as .xz (preset 6, CRC-64), for inputs the readers must decompress.
inline std::string xz_compress(const std::string& text) {
  std::string xz(text.size() + 1024, '\0');
  size_t pos = 0;
  if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(text.data()),
                              text.size(), reinterpret_cast<uint8_t*>(xz.data()), &pos, xz.size()) != LZMA_OK)
    throw std::runtime_error("xz compression failed");
  xz.resize(pos);
  return xz;
}

// The tiny trainer run the reliability and message tests share: a 1-layer dim-32 model of the default
// recipe on one thread, 2 sequences of 128 per step, a 1k-token validation, no artifact.
inline const std::string kTinyRun =
    "--recipe recipes/default.json --set model.layers=1 --set model.dim=32 --set model.heads=2 --set model.kv_heads=1 "
    "--set data.seq_len=128 --set data.batch_tokens=256 --set data.val_max_tokens=1024 --set eval.batch_tokens=1024 "
    "--set train.threads=1 --set train.val_every=0 --set train.log_every=1 "
    "--set 'pipeline=[{\"name\":\"evaluate\"}]' ";

struct CommandResult {
  int code;         // the exit status; -1 when the process did not exit normally (killed by a signal)
  std::string out;  // stdout and stderr together
};

// Runs `command` through the shell with stderr folded into stdout.
inline CommandResult run_command(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace pgolf::testing
