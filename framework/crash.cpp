#include "framework/crash.h"

#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace pgolf {
namespace {

// Async-signal-safe only: write(2) and backtrace_symbols_fd (backtrace is preloaded below, so it does not
// allocate here). Offsets are "binary(+0x...)": `addr2line -Cfe BINARY 0x...` on an unstripped copy.
extern "C" void report_fatal(int sig) {
  const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : "SIGILL";
  const char head[] = "\nfatal signal ";
  const char tail[] = ": native stack (addr2line -Cfe BINARY OFFSET resolves a frame):\n";
  (void)!write(STDERR_FILENO, head, sizeof(head) - 1);
  (void)!write(STDERR_FILENO, name, std::strlen(name));
  (void)!write(STDERR_FILENO, tail, sizeof(tail) - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void install_crash_report() {
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc's unwinder now, outside any signal handler
  struct sigaction sa {};
  sa.sa_handler = report_fatal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigaction(sig, &sa, nullptr);
  const char* inject = std::getenv("PGOLF_INJECT_CRASH");  // the reliability test's crash
  if (inject && *inject) std::raise(SIGSEGV);
}

}  // namespace pgolf
