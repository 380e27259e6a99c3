#include "framework/log.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace pgolf::log {
namespace {

// The run's log file, written and flushed line by line; a failed write is recorded (not swallowed, as
// spdlog's own file sink would after printing to stderr) so the next log call stops the run naming the file.
class CheckedFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CheckedFileSink(const std::string& path) : path_(path) {
    const char* inject = std::getenv("PGOLF_INJECT_WRITE_FAILURE");  // as io.h's writable_path (no torch here)
    const bool full = inject && *inject && path.substr(path.find_last_of('/') + 1) == inject;
    f_ = std::fopen(full ? "/dev/full" : path.c_str(), "a");
    if (!f_) throw std::runtime_error(path + ": cannot open for appending (" + std::strerror(errno) + ")");
  }
  ~CheckedFileSink() override { std::fclose(f_); }
  // The failed write's errno, 0 while every write succeeded.
  int error() const { return error_; }
  const std::string& path() const { return path_; }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    if (std::fwrite(buf.data(), 1, buf.size(), f_) != buf.size() && error_ == 0) error_ = errno ? errno : EIO;
  }
  void flush_() override {
    if (std::fflush(f_) != 0 && error_ == 0) error_ = errno ? errno : EIO;
  }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  int error_ = 0;
};

// The console: progress (info) on stdout, warnings and errors on stderr, so a caller that keeps only stdout
// (a pipe, a results file) still sees every problem on the terminal. stdout is flushed before each stderr
// line, so the two streams interleave in the order the messages were logged.
class ConsoleSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const bool problem = msg.level >= spdlog::level::warn;
    if (problem) std::fflush(stdout);
    FILE* to = problem ? stderr : stdout;
    std::fwrite(buf.data(), 1, buf.size(), to);
    std::fflush(to);
  }
  void flush_() override {
    std::fflush(stdout);
    std::fflush(stderr);
  }
};

struct State {
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<CheckedFileSink> file;
  std::shared_ptr<ConsoleSink> console;
  std::string prefix;  // "[rank N] " on the errors of ranks other than 0
  bool quiet = false;
  State() {
    console = std::make_shared<ConsoleSink>();
    logger = std::make_shared<spdlog::logger>("pgolf", console);
    logger->set_pattern("%v");
    logger->flush_on(spdlog::level::info);
  }
};

State& state() {
  static State s;
  return s;
}


// After a message: when the log file's write failed, stop writing it and say which file (the console still
// works). `raise`: throw, so the run stops at once; error() does not, being on the way out already.
void check_file(bool raise) {
  auto& s = state();
  if (!s.file || s.file->error() == 0) return;
  const std::string what = s.file->path() + ": write failed (" + std::strerror(s.file->error()) + ")";
  close_file();
  if (raise) throw std::runtime_error(what + "; the run stops here");
  s.logger->error("error: " + what);
}

}  // namespace

void info(const std::string& msg) {
  if (!state().quiet) state().logger->info(msg);
  check_file(true);
}
void warn(const std::string& msg) {
  if (!state().quiet) state().logger->warn("warning: " + msg);
  check_file(true);
}
void error(const std::string& msg) {
  state().logger->error(state().prefix + "error: " + msg);
  check_file(false);
}

namespace {
void to_file_only(spdlog::level::level_enum level, const std::string& msg) {
  auto& s = state();
  if (!s.file) return;
  spdlog::logger file_only("pgolf-file", s.file);
  file_only.set_level(spdlog::level::trace);
  file_only.log(level, msg);
  file_only.flush();
  check_file(false);
}
}  // namespace

void error_to_file(const std::string& msg) { to_file_only(spdlog::level::err, state().prefix + "error: " + msg); }
void info_to_file(const std::string& msg) { to_file_only(spdlog::level::info, msg); }

void to_file(const std::string& path) {
  auto& s = state();
  s.file = std::make_shared<CheckedFileSink>(path);
  s.file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %v");
  s.logger->sinks().push_back(s.file);
}

void close_file() {
  auto& s = state();
  if (!s.file) return;
  auto& sinks = s.logger->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), s.file), sinks.end());
  s.file.reset();
}

void set_rank(int rank) {
  auto& s = state();
  s.prefix = rank != 0 ? "[rank " + std::to_string(rank) + "] " : "";
  const bool quiet = rank != 0 && std::getenv("PGOLF_LOG_ALL_RANKS") == nullptr;
  s.console->set_level(quiet ? spdlog::level::err : spdlog::level::trace);  // the rank's log file gets everything
}

}  // namespace pgolf::log

namespace pgolf {
std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::vector<char> buf(static_cast<size_t>(n) + 1);
  std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
  va_end(ap2);
  return std::string(buf.data(), static_cast<size_t>(n));
}
}  // namespace pgolf
