#include "framework/log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace pgolf::log {
namespace {

struct State {
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<spdlog::sinks::basic_file_sink_mt> file;
  std::shared_ptr<spdlog::sinks::stdout_sink_mt> console;
  std::string prefix;  // "[rank N] " on the errors of ranks other than 0
  State() {
    console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    logger = std::make_shared<spdlog::logger>("pgolf", console);
    logger->set_pattern("%v");
    logger->flush_on(spdlog::level::info);
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

void info(const std::string& msg) { state().logger->info(msg); }
void warn(const std::string& msg) { state().logger->warn("warning: " + msg); }
void error(const std::string& msg) { state().logger->error(state().prefix + "error: " + msg); }

void to_file(const std::string& path) {
  auto& s = state();
  s.file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
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
