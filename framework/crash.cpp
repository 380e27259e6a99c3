#include "framework/crash.h"

#include <execinfo.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace pgolf {
namespace {

void put(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

void put_hex(uintptr_t v) {
  char buf[19] = "0x";
  int n = 2;
  for (int shift = 60; shift >= 0; shift -= 4)
    if ((v >> shift) != 0 || shift == 0 || n > 2) buf[n++] = "0123456789abcdef"[(v >> shift) & 0xF];
  buf[n] = 0;
  put(buf);
}

uintptr_t parse_hex(const char*& p) {
  uintptr_t v = 0;
  for (;; ++p) {
    const char c = *p;
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return v;
    v = v * 16 + static_cast<uintptr_t>(d);
  }
}

// The /proc/self/maps line holding `pc` (which file the faulting code is in, and its offset there), read
// with read(2) only. When no frame unwinds past the handler, this still says whose code it was.
void put_mapping(uintptr_t pc) {
  const int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return;
  char line[512];
  int n = 0;
  char c;
  while (read(fd, &c, 1) == 1) {
    if (c != '\n') {
      if (n < static_cast<int>(sizeof(line)) - 1) line[n++] = c;
      continue;
    }
    line[n] = 0;
    n = 0;
    const char* p = line;
    const uintptr_t lo = parse_hex(p);
    ++p;
    const uintptr_t hi = parse_hex(p);
    if (pc < lo || pc >= hi) continue;
    put("  pc is in: ");
    put(line);
    put("\n");
    close(fd);
    return;
  }
  put("  pc is in no mapping (a jump to a bad address)\n");
  close(fd);
}

// Async-signal-safe only: write(2), read(2) and backtrace_symbols_fd (backtrace is preloaded below, so it does
// not allocate here). Offsets are "binary(+0x...)": `addr2line -Cfe BINARY 0x...` on an unstripped copy.
extern "C" void report_fatal(int sig, siginfo_t* info, void* uc) {
  const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : "SIGILL";
  put("\nfatal signal ");
  put(name);
  put(" in thread ");
  put_hex(static_cast<uintptr_t>(syscall(SYS_gettid)));
  put(", fault address ");
  put_hex(reinterpret_cast<uintptr_t>(info->si_addr));
#if defined(__x86_64__)
  const auto* regs = static_cast<const ucontext_t*>(uc)->uc_mcontext.gregs;
  const auto pc = static_cast<uintptr_t>(regs[REG_RIP]);
  put(", pc ");
  put_hex(pc);
  put(", sp ");
  put_hex(static_cast<uintptr_t>(regs[REG_RSP]));
  put("\n");
  put_mapping(pc);
#else
  (void)uc;
  put("\n");
#endif
  put("native stack (addr2line -Cfe BINARY OFFSET resolves a frame):\n");
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
  sa.sa_sigaction = report_fatal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_SIGINFO;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigaction(sig, &sa, nullptr);
  const char* inject = std::getenv("PGOLF_INJECT_CRASH");  // the reliability test's crash
  if (inject && *inject) std::raise(SIGSEGV);
}

}  // namespace pgolf
