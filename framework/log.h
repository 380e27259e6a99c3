// Logging: console plus the run's log file. Implemented over spdlog in log.cpp, which includes no torch
// header (torch bundles its own fmt; keeping them apart avoids mixing two fmt versions).
#pragma once

#include <string>

namespace pgolf::log {

void info(const std::string& msg);
void warn(const std::string& msg);
void error(const std::string& msg);
// Also write every message to `path` (appending); called once the run directory exists.
void to_file(const std::string& path);
// `msg` to the log file alone (no console), as error() would write it there: the error that stops a run is
// printed by the caller once the file is closed, and belongs in the file as well. A no-op without a file.
void error_to_file(const std::string& msg);
void info_to_file(const std::string& msg);
void close_file();
// Only rank 0 prints all; other ranks print their errors (prefixed "[rank N] ") unless PGOLF_LOG_ALL_RANKS is
// set, and log everything to their own file (to_file).
void set_rank(int rank);

}  // namespace pgolf::log

namespace pgolf {
// printf-style formatting into a std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
}  // namespace pgolf
